"""The run's prompt bootstrap: every metric's replicates, drawn and written once, read by the leaderboard.

Resampling unit: the prompts (record ids) of a metric's subset, drawn with replacement; every sample of a drawn
prompt comes along, and every object crop of a drawn image. Each metric recomputes itself on a replicate
through the resampler its ``compute`` returned (``MetricValue.resample``, :mod:`tise_bench.resampling`).

Draws of a subset come from ``np.random.default_rng([seed, crc32(draw key)])`` with the draw key
``<subset>:<sha256 of the prompt ids in manifest order>[:16]``: two runs on the same prompts with the same
``bootstrap.seed`` draw the same replicates — their differences are paired — whatever else they contain.
Replicate ``b`` is the same draw for every count of replicates (the draws of a larger count start with those of
a smaller one), so a metric with ``bootstrap.replicates_features`` replicates pairs with the first ones of a
metric with ``bootstrap.replicates``.

A metric gets replicates only if recomputing it on the identity resample (every prompt once) reproduces its
value (relative :data:`IDENTITY_RTOL`); otherwise — and for metrics that define no resampling — the reason is
recorded under ``bootstrap.skipped`` in ``metrics.json``. Replicates go to ``bootstrap.npz`` (one float64 array
per metric id) beside ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .data.manifest import Record
from .errors import ConfigError
from .resampling import draw_prompts
from .results import BOOTSTRAP_FILE
from .types import MetricValue

log = logging.getLogger(__name__)
FILE = BOOTSTRAP_FILE
METHOD = "percentile, resampling prompts"
#: Identity-resample tolerance per resampler kind. FID replicates use the exact low-rank formula
#: (``FidReplicator``); on 2048-d features with a dominant eigenvalue ~1e9 (random weights) FID is a difference
#: of large terms and two algebraically equal formulas agree only to ~1e-4 relative: round-off, not bias.
IDENTITY_RTOL = {"mean": 1e-6, "is": 1e-6, "fid": 1e-3}


@dataclass(frozen=True)
class BootstrapSpec:
    """``bootstrap.*`` of the run config."""

    replicates: int = 1000  # mean-type metrics
    replicates_features: int = 200  # metrics recomputed from features (IS family, FID family)
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "BootstrapSpec":
        c = dict(cfg or {})
        unknown = sorted(set(c) - {"replicates", "replicates_features", "seed"})
        if unknown:
            raise ConfigError(
                f"bootstrap.{unknown[0]} is not a bootstrap option; valid: replicates, replicates_features, seed"
            )
        spec = cls(**{k: int(v) for k, v in c.items() if v is not None})
        if spec.replicates < 0 or spec.replicates_features < 0:
            raise ConfigError(
                f"bootstrap.replicates={spec.replicates}, bootstrap.replicates_features="
                f"{spec.replicates_features}: counts must be ≥ 0 (0 = no replicates)"
            )
        return spec

    def count(self, kind: str) -> int:
        return self.replicates if kind == "mean" else self.replicates_features


def draw_key(subset: str, records: list[Record]) -> str:
    """Identity of a subset's prompts: runs whose subsets share it are resampled with the same draws."""
    return subset + ":" + hashlib.sha256("\n".join(r.id for r in records).encode()).hexdigest()[:16]


def draws(key: str, n_prompts: int, n: int, seed: int) -> np.ndarray:
    """``(n, n_prompts)`` prompt indices of the subset with draw key ``key`` (row b is the same for any n > b)."""
    return draw_prompts(n_prompts, n, np.random.default_rng([seed, zlib.crc32(key.encode())]))


#: Resampler kinds whose replicates are kept in the cache (each replicate recomputes IS / FID from features);
#: ``mean`` replicates cost milliseconds and are always drawn.
MEMO_KINDS = ("is", "fid")
_MEMO_CODE = ("bootstrap.py", "resampling.py", "context.py", "comparability.py", "metrics", "features/refcache.py")
_CODE_HASH: str | None = None


def _code_hash() -> str:
    """sha256 of the code replicates are computed by (metrics, resampling, bootstrap), plus numpy / scipy versions."""
    global _CODE_HASH
    if _CODE_HASH is None:
        from importlib import metadata
        from pathlib import Path

        root = Path(__file__).parent
        h = hashlib.sha256()
        for part in _MEMO_CODE:
            p = root / part
            for f in sorted(p.rglob("*.py")) if p.is_dir() else [p] if p.is_file() else []:
                h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
        for dist in ("numpy", "scipy"):
            h.update(f"{dist}={metadata.version(dist)}".encode())
        _CODE_HASH = h.hexdigest()
    return _CODE_HASH


def replicate_fingerprints(
    metrics: Mapping[str, MetricValue],
    subsets: Mapping[str, str],
    samples_by_subset: Mapping[str, list[Any]],
    meta: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """Per metric, everything its replicates are computed from: the metric and its subset, its comparability fields
    (backbone namespaces, params, crop rule, the reference set's hash, the records' hash, the definition version),
    the generated samples in order (record index, sample index, sha256 of the image), its value and n, and the code
    (:func:`_code_hash`). Two runs with the same fingerprint draw the same replicates from the same features."""
    out = {}
    for mid, mv in metrics.items():
        subset = subsets[mid]
        samples = [(s.record_index, s.k, s.sha) for s in samples_by_subset.get(subset, [])]
        doc = {
            "metric": mid,
            "subset": subset,
            "comparability": (meta.get(mid) or {}).get("comparability"),
            "samples": samples,
            "value": repr(float(mv.value)),
            "n": int(mv.n),
            "code": _code_hash(),
        }
        out[mid] = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return out


class ReplicateMemo:
    """IS / FID-family replicates kept in ``<cache>/replicates/<fingerprint>-<seed>-<draw key hash>-<n>.npz`` (with the
    identity recomputation and the metric's value): an unchanged re-run reads them instead of recomputing hundreds of
    IS / FID values. A file that cannot be read, or whose value or length differs, is ignored (recomputed)."""

    def __init__(self, cache_dir: Any, fingerprints: Mapping[str, str]) -> None:
        from pathlib import Path

        self.root = Path(cache_dir) / "replicates"
        self.fingerprints = dict(fingerprints)

    def _path(self, mid: str, key: str, n: int, seed: int) -> Any:
        fp = self.fingerprints.get(mid)
        if fp is None:
            return None
        tag = hashlib.sha256(key.encode()).hexdigest()[:12]
        return self.root / f"{fp}-s{seed}-{tag}-n{n}.npz"

    def get(self, mid: str, key: str, n: int, seed: int, value: float) -> tuple[np.ndarray, float] | None:
        path = self._path(mid, key, n, seed)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                reps, ident, val = (
                    np.asarray(z["replicates"], dtype=np.float64),
                    float(z["identity"]),
                    float(z["value"]),
                )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            log.warning("bootstrap replicates cache %s is unreadable (%s); recomputing", path, e)
            return None
        if reps.shape != (n,) or repr(val) != repr(float(value)):
            return None
        return reps, ident

    def put(self, mid: str, key: str, n: int, seed: int, value: float, reps: np.ndarray, ident: float) -> None:
        path = self._path(mid, key, n, seed)
        if path is None:
            return
        from .fsutil import CACHE, atomic_write

        def save(tmp: Any) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, replicates=reps, identity=np.float64(ident), value=np.float64(value))

        try:
            atomic_write(path, save, CACHE)
        except Exception as e:  # noqa: BLE001 (the memo is an optimisation: the run's own replicates stand)
            log.debug("bootstrap replicates cache %s not written: %s", path, e)


def replicate_metrics(
    metrics: Mapping[str, MetricValue],
    subsets: Mapping[str, str],
    records: Mapping[str, list[Record]],
    spec: BootstrapSpec,
    memo: ReplicateMemo | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Replicates of every metric that defines its resampling -> (``{id: (B,) array}``, the ``bootstrap``
    section of ``metrics.json``). ``subsets``: metric id -> subset; ``records``: subset -> its records. ``memo``:
    IS / FID-family replicates of an unchanged earlier run are read from the cache (``cached: true`` in their entry)
    instead of recomputed."""
    t0 = time.perf_counter()
    out: dict[str, np.ndarray] = {}
    entries: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    drawn: dict[str, np.ndarray] = {}
    n_max = max(spec.replicates, spec.replicates_features)
    for mid, mv in metrics.items():
        subset = subsets[mid]
        recs = records[subset]
        if mv.resample is None:
            skipped[mid] = "the metric defines no resampling"
            continue
        if not math.isfinite(mv.value):
            skipped[mid] = "no value"
            continue
        n = spec.count(mv.resample.kind)
        if n == 0:
            skipped[mid] = f"bootstrap.{'replicates' if mv.resample.kind == 'mean' else 'replicates_features'}=0"
            continue
        key = draw_key(subset, recs)
        t = time.perf_counter()
        memo_ok = memo is not None and mv.resample.kind in MEMO_KINDS
        hit = memo.get(mid, key, n, spec.seed, mv.value) if memo is not None and memo_ok else None
        if hit is not None:  # an unchanged earlier run's replicates and identity recomputation
            out[mid], ident = hit
        else:
            ident = float(mv.resample(np.arange(len(recs))[None, :])[0])
            tol = IDENTITY_RTOL[mv.resample.kind]
            if not (math.isfinite(ident) and abs(ident - mv.value) <= tol * max(1.0, abs(mv.value))):
                skipped[mid] = (
                    f"recomputation on the identity resample gives {ident!r}, the metric {mv.value!r}: no replicates"
                )
                continue
            if key not in drawn:
                drawn[key] = draws(key, len(recs), n_max, spec.seed)
            t = time.perf_counter()
            out[mid] = np.asarray(mv.resample(drawn[key][:n]), dtype=np.float64)
            if memo is not None and memo_ok:
                memo.put(mid, key, n, spec.seed, mv.value, out[mid], ident)
        entries[mid] = {
            "subset": subset,
            "draw_key": key,
            "kind": mv.resample.kind,
            "replicates": n,
            "identity": ident,
            "seconds": round(time.perf_counter() - t, 4),
            **({"cached": True} if hit is not None else {}),
        }
    meta = {
        "replicates": spec.replicates,
        "replicates_features": spec.replicates_features,
        "seed": spec.seed,
        "method": METHOD,
        "file": FILE if out else None,
        "metrics": entries,
        "skipped": skipped,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if out:
        log.info("bootstrap: %d metrics × up to %d replicates in %.1f s", len(out), n_max, meta["seconds"])
    return out, meta
