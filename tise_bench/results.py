"""The result of one evaluation, written atomically into ``<results_dir>/<data>/<model>/`` (a run only ever
writes its own folder), and everything the leaderboard reads — it never opens the feature cache:

* ``metrics.json`` — values, per-metric metadata and comparability fields, provenance (backbones with their
  cache namespaces, counts, config), the ``bootstrap`` section (:mod:`tise_bench.bootstrap`);
* ``samples.parquet`` — one row per generated image: subset, id, k, file, sha256, caption, per-sample values;
* ``bootstrap.npz`` — each metric's prompt-bootstrap replicates, ``(B,)`` float64 per metric id;
* ``detections.npz`` — when a detector ran: its boxes for every generated image, for the drill-down
  (``sha256`` (n,), ``offsets`` (n+1,) into ``boxes`` (M, 6: x1 y1 x2 y2 score class) and ``size`` (n, 2)
  ``[w, h]``, plus the detector's ``class_names``), as the detector wrote them into its cache namespace
  (recorded under ``detections.namespace``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import platform
import re
import shutil
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError
from .fsutil import RESULTS, disk_errors
from .types import MetricValue

log = logging.getLogger(__name__)

RESULT_SCHEMA = 1
BOOTSTRAP_FILE = "bootstrap.npz"
DETECTIONS_FILE = "detections.npz"
RUN_FILES = ("metrics.json", "samples.parquet", BOOTSTRAP_FILE, DETECTIONS_FILE)  # a run folder holds these only
_LIBS = (
    "tise_bench",
    "torch",
    "torchvision",
    "open_clip_torch",
    "torch-fidelity",
    "ultralytics",
    "numpy",
    "scipy",
    "hydra-core",
    "pillow",
)


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class EvalResult:
    model: str
    data: str
    metrics: dict[str, MetricValue]
    meta: dict[str, dict[str, Any]]  # metric id -> registry metadata (direction, version, ...)
    samples: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)
    replicates: dict[str, np.ndarray] = field(default_factory=dict)  # metric id -> bootstrap replicates
    detections: dict[str, np.ndarray] = field(default_factory=dict)  # detections.npz arrays (drill-down)

    @classmethod
    def build(
        cls,
        *,
        model,
        data,
        specs,
        metrics,
        samples_by_subset,
        evalset,
        per_sample,
        backbones,
        counts,
        not_applicable,
        report,
        bad,
        n_truncated,
        config,
    ) -> "EvalResult":
        rows = []
        for subset, samples in samples_by_subset.items():
            recs = evalset.subsets[subset]
            for s in samples:
                row = {
                    "subset": subset,
                    "id": recs[s.record_index].id,
                    "k": s.k,
                    "file": s.path,
                    "sha256": s.sha,
                    "caption": recs[s.record_index].caption,
                }
                for mid, vals in per_sample.items():
                    row[mid] = vals.get((subset, s.path), np.nan)
                rows.append(row)
        table = pd.DataFrame(rows)
        meta = {mid: {**spec.meta(), "subset": subset} for mid, (spec, subset) in specs.items()}
        for mid, (spec, _) in specs.items():
            if mid in metrics and (warnings := value_warnings(spec, metrics[mid])):
                meta[mid]["warnings"] = warnings
        random = any(b.is_random for b in backbones.values())
        prov = {
            "random_weights": random,
            "warning": (
                "RANDOM-WEIGHTS BACKBONES: smoke-test numbers, not comparable to any paper" if random else None
            ),
            "backbones": {n: b.describe() for n, b in backbones.items()},
            "libraries": library_versions(),
            "counts": counts,
            "truncated_captions": n_truncated,
            "not_applicable": not_applicable,
            "mismatch": {
                "missing": report.missing[:50],
                "extra": report.extra[:50],
                "duplicate": report.duplicate[:50],
            },
            "bad_images": dict(list(bad.items())[:50]),
            "eval_set": {
                "name": evalset.name,
                "manifests": evalset.sources,
                "reference_stats": evalset.reference_stats,
                **({"limit": evalset.limit} if evalset.limit is not None else {}),  # data.limit (a quick look)
            },
            "config": config,
        }
        return cls(model=model, data=data, metrics=metrics, meta=meta, samples=table, provenance=prov)

    def attach_detections(self, feats: Any, detector: Any) -> None:
        """Keep the detector's boxes of this run's generated images (``feats``: the feature pass's
        ``ImageFeatures``) for ``detections.npz``; nothing when no detector ran."""
        if detector is None or "detector.detections" not in feats.features or self.samples.empty:
            return
        row_of = {s: i for i, s in enumerate(feats.shas)}
        shas = [s for s in dict.fromkeys(self.samples["sha256"].tolist()) if s in row_of]
        rows = [row_of[s] for s in shas]
        dets = feats.features["detector.detections"][rows]
        keep = [d[d[:, 4] >= 0] for d in dets]  # score −1 = padding row
        size = feats.features.get("detector.size")
        names = getattr(detector, "names", None) or {}
        names = names if isinstance(names, dict) else dict(enumerate(names))
        self.detections = {
            "sha256": np.asarray(shas, dtype="<U64"),
            "offsets": np.concatenate([[0], np.cumsum([len(k) for k in keep])]).astype(np.int64),
            "boxes": (np.concatenate(keep) if keep else np.zeros((0, 6))).astype(np.float32),
            "size": (size[rows] if size is not None else np.zeros((len(rows), 2))).astype(np.float32),
            "class_names": np.asarray([str(names.get(i, f"class {i}")) for i in range(max(names, default=-1) + 1)]),
        }
        self.provenance["detections"] = {
            "file": DETECTIONS_FILE,
            "images": len(shas),
            "namespace": getattr(detector, "namespace", None),
        }

    def values(self) -> dict[str, float]:
        return {k: v.value for k, v in self.metrics.items()}

    def __repr__(self) -> str:
        """A compact table, one line per metric (:func:`tise_bench.report.format_result`), not every field."""
        from .report import format_result

        return format_result(self)

    def to_json(self) -> dict[str, Any]:
        """The ``metrics.json`` document: strict JSON values only (NaN / ±inf anywhere become ``None``)."""
        return strict_json_value(
            {
                "schema_version": RESULT_SCHEMA,
                "model": self.model,
                "data": self.data,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "metrics": {k: {**v.to_json(), **self.meta.get(k, {})} for k, v in self.metrics.items()},
                **self.provenance,
            }
        )

    def write(self, out_dir: str | Path) -> Path:
        """Write the run folder as a unit: every file goes into a temporary sibling folder, which then replaces
        ``out_dir`` (the old folder is renamed away first and removed after). A crash or a full disk midway
        leaves the previous run folder intact — never new samples beside old metrics — and no temporary folder;
        readers skip dot-folders, so a half-written one is never read. A full, read-only or forbidden disk is a
        :class:`~tise_bench.errors.StorageError` naming the folder. Returns the path of ``metrics.json``."""
        out = Path(out_dir)
        with disk_errors(out.parent, RESULTS):
            return self._write(out)

    def _write(self, out: Path) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        recover_run_folder(out)  # (if this write fails too, the previous run is in place)
        tag = f"{os.getpid()}-{threading.get_ident()}"
        tmp, old = out.parent / f".{out.name}.tmp-{tag}", out.parent / f".{out.name}.old-{tag}"
        if out.is_dir():  # the folder is replaced whole: never take someone's other files with it
            foreign = sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES)
            if foreign:
                raise DataError(
                    f"{out} holds files that are not part of a tise_bench run ({', '.join(foreign[:3])}"
                    f"{', …' if len(foreign) > 3 else ''}); a run replaces its folder as a unit. "
                    "fix: write the result to a new or empty folder (or move those files out)."
                )
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a crashed writer with the same pid and thread
        tmp.mkdir()
        try:
            self.samples.to_parquet(tmp / "samples.parquet", index=False)
            for name, arrays in ((BOOTSTRAP_FILE, self.replicates), (DETECTIONS_FILE, self.detections)):
                if arrays:
                    _save_npz(tmp / name, arrays)
            text = dumps_strict(self.to_json(), indent=2)
            (tmp / "metrics.json").write_text(text + "\n", encoding="utf-8")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _swap_in(tmp, out, old)
        return out / "metrics.json"


def value_warnings(spec: Any, value: MetricValue) -> list[dict[str, Any]]:
    """What makes ``value`` not comparable to published numbers, for its ``metrics.json`` entry (``warnings``):
    the spec's ``small_n`` checks (:class:`~tise_bench.registry.MinComparable`: what is too small, the number
    used, the threshold and its source) and records left out of the reference set for want of a
    ``reference`` (``no_reference``). Empty when there is nothing to say; the value itself is never changed."""
    out = list(spec.small_n(value))
    lacking = int(value.skipped.get("no_reference", 0))
    if lacking:
        used = value.extras.get("n_reference")
        out.append(
            {
                "kind": "no_reference",
                "what": "left out for want of a 'reference' (skipped.no_reference)",
                "skipped": lacking,
                "used": None if used is None else int(used),
                "message": (
                    f"{spec.display}: {lacking} left out for want of a 'reference'"
                    + ("" if used is None else f"; {int(used)} reference images used")
                    + " (give every record a 'reference', or data.reference_stats)"
                ),
            }
        )
    return out


def strict_json_value(o: Any) -> Any:
    """``o`` with every value strict JSON can hold: non-finite floats (Python or numpy, at any depth, inside
    dicts, lists, tuples and arrays) become ``None``; numpy scalars and arrays become Python numbers and
    lists; paths become strings; dict keys become strings. Anything else raises ``TypeError``."""
    if o is None or isinstance(o, (str, bool)):
        return o
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, (int, np.integer)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        x = float(o)
        return x if np.isfinite(x) else None
    if isinstance(o, dict):
        return {str(k): strict_json_value(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set, frozenset)):
        return [strict_json_value(v) for v in (sorted(o, key=str) if isinstance(o, (set, frozenset)) else o)]
    if isinstance(o, np.ndarray):
        return strict_json_value(o.tolist())
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"metrics.json: value of type {type(o).__name__} is not JSON serialisable ({o!r:.80})")


def dumps_strict(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of :func:`strict_json_value` (obj), refusing NaN / inf (``allow_nan=False``)."""
    return json.dumps(strict_json_value(obj), allow_nan=False, **kw)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to the temporary name
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy types **kwds as allow_pickle-compatible


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():  # another thread of this process, between its two renames
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (exists, another user's)
        return True
    return True


#: a run-folder writer's temporary folders (:meth:`EvalResult.write`): ``.<name>.tmp-<pid>-<thread>`` (the new run)
#: and ``.<name>.old-<pid>-<thread>-<n>`` (the run it replaces)
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-\d+(?:-\d+)?")


def leftover_run_folders(parent: Path) -> list[tuple[str, str, int, Path]]:
    """The temporary folders run-folder writers left under ``parent``: [(run name, "tmp" or "old", writer pid,
    path)]. The one parser of those names (:func:`recover_run_folder`, ``leaderboard.collect.find_runs``)."""
    found = []
    for p in parent.iterdir():
        m = _LEFTOVER.fullmatch(p.name)
        if m is not None:
            found.append((m["name"], m["kind"], int(m["pid"]), p))
    return found


def recover_run_folder(out: Path) -> Path | None:
    """Put a run folder back that a writer killed between the two renames of :func:`_swap_in` left out of place: no
    ``out``, the previous run in ``.<name>.old-<pid>-<thread>-<n>`` and the new one, complete, in
    ``.<name>.tmp-<pid>-<thread>``. The newest of them whose ``metrics.json`` reads whole (it is written last) and
    whose writer's process is gone is renamed to ``out`` (a live writer finishes its own swap); a warning names it.
    Returns the folder restored, or None."""
    if out.exists() or not out.parent.is_dir():
        return None
    found: list[tuple[float, Path]] = []
    for name, _, pid, p in leftover_run_folders(out.parent):
        if name != out.name or _writer_alive(pid):
            continue
        try:
            json.loads((p / "metrics.json").read_text(encoding="utf-8"))
            found.append(((p / "metrics.json").stat().st_mtime, p))
        except (OSError, ValueError):  # no metrics.json, or a cut one: not a run
            continue
    if not found:
        return None
    _, best = max(found)
    try:
        os.rename(best, out)
    except OSError:  # another reader or writer put a folder there first
        return None
    log.warning(
        "run folder %s was missing (a writer was killed while replacing it); restored it from %s", out, best.name
    )
    return best


def _swap_in(tmp: Path, out: Path, old: Path) -> None:
    """Replace the folder ``out`` by the complete folder ``tmp``: move ``out`` away (to ``old``), rename ``tmp``
    into place, remove ``old``. Concurrent writers of the same run folder: the last one wins, as with files."""
    try:
        for attempt in range(20):
            moved = old.with_name(f"{old.name}-{attempt}")
            try:
                os.replace(out, moved)  # FileNotFoundError: nothing there (first run, or another writer moved it)
            except FileNotFoundError:
                pass
            try:
                os.replace(tmp, out)
                break
            except OSError as e:  # another writer put its folder in place in between: move that away too
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    with contextlib.suppress(OSError):  # anything else: put the previous run back
                        os.rename(moved, out)
                    raise
        else:
            raise OSError(f"could not put the run folder {out} in place (20 concurrent replacements)")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        for leftover in out.parent.glob(f"{old.name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
