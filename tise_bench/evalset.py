"""An eval set: named subsets of records (SPEC §1), from manifests, a single custom manifest or the demo."""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.manifest import Record, load_manifest
from .errors import ConfigError, DataError

SUBSETS = ("realism", "rp", "pa", "ca", "soa")


@dataclass
class EvalSet:
    """Named subsets of records, plus where they came from (``sources``: subset -> manifest path)."""

    name: str
    subsets: dict[str, list[Record]]
    reference_stats: str | None = None  # optional .npz with mu/sigma (pool3) replacing reference images
    demo_models_dir: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def all_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for recs in self.subsets.values():
            for r in recs:
                seen.setdefault(r.id)
        return list(seen)


def load_eval_set(cfg: dict[str, Any], cache_dir: str | Path) -> EvalSet:
    """The ``data`` config group -> :class:`EvalSet`; missing manifests or a missing ``reference_stats``
    file fail here, before any image is read."""
    name = cfg.get("name")
    if not name or name == "???":
        raise ConfigError("data.name is required (e.g. data=coco, or data=custom data.name=<name> data.manifest=<file>)")
    kind = cfg.get("kind", "manifests")
    stats = cfg.get("reference_stats")
    if stats and not Path(stats).is_file():
        raise DataError(f"data.reference_stats={stats} does not exist; give the .npz written by pytorch-fid/TISE "
                        f"(arrays 'mu', 'sigma'), or unset it to compute statistics from the reference images")
    if kind == "demo":
        from .data.demo import prepare_demo

        demo = prepare_demo(Path(cfg.get("root") or Path(cache_dir) / "demo"), n_prompts=int(cfg.get("n_prompts", 40)),
                            image_size=int(cfg.get("image_size", 128)), seed=int(cfg.get("seed", 0)))
        subsets = {s: load_manifest(p) for s, p in demo.manifests.items()}
        return EvalSet(name=name, subsets=subsets, reference_stats=stats, demo_models_dir=str(demo.models_dir),
                       sources={s: str(p) for s, p in demo.manifests.items()})
    manifest = cfg.get("manifest")
    paths: dict[str, str] = {}
    if manifest:
        paths = {"all": str(manifest)}
    for s, p in (cfg.get("subsets") or {}).items():
        if p:
            paths[s] = str(p)
    if not paths:
        raise ConfigError(f"data={name}: give data.manifest=<file.jsonl> or data.subsets.<subset>=<file.jsonl>")
    for s, p in paths.items():
        if not Path(p).is_file():
            raise DataError(f"data={name}: manifest for subset {s!r} not found at {p}. "
                            f"Prepare it (python -m tise_bench.prepare) or fix data.subsets.{s} / data.manifest.")
    loaded = {s: load_manifest(p) for s, p in paths.items()}
    if "all" in loaded:  # one custom manifest serves every subset
        recs = loaded.pop("all")
        for s in SUBSETS:
            loaded.setdefault(s, recs)
    return EvalSet(name=name, subsets=loaded, reference_stats=stats, sources=paths)


def _stats_array(z: Any, key: str, path: str) -> np.ndarray:
    try:
        return np.asarray(z[key], dtype=np.float64)
    except (ValueError, TypeError) as e:  # object arrays (allow_pickle=False) or non-numeric data
        raise DataError(f"data.reference_stats={path}: array {key!r} is not numeric ({e}); write it with "
                        f"numpy.savez(path, mu=<float array>, sigma=<float array>)") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"data.reference_stats={path}: array {key!r} is unreadable ({e}); the file is corrupt, "
                        f"recompute it") from None


def load_reference_stats(path: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """mu/sigma from a pytorch-fid/TISE style .npz, validated against the feature dimension ``dim``.

    ``mu`` may be stored as ``(D,)``, ``(1, D)`` or ``(D, 1)``; ``sigma`` must be ``(D, D)``. Errors name the
    file, what was found, what was expected and how to fix it.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data.reference_stats={path} does not exist; give the .npz written by pytorch-fid/TISE "
                        f"(arrays 'mu', 'sigma'), or unset it to compute statistics from the reference images")
    try:
        z = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"data.reference_stats={path} is not a readable .npz ({e}); recompute it") from None
    if not hasattr(z, "files"):  # np.load of a .npy gives a bare array
        raise DataError(f"data.reference_stats={path}: expected an .npz with arrays 'mu' and 'sigma', "
                        f"got a single array of shape {getattr(z, 'shape', '?')}")
    with z:
        if "mu" not in z.files or "sigma" not in z.files:
            raise DataError(f"data.reference_stats={path}: expected arrays 'mu' and 'sigma' (pytorch-fid format), "
                            f"found {z.files}")
        mu, sigma = _stats_array(z, "mu", path), _stats_array(z, "sigma", path)
    if mu.ndim == 2 and 1 in mu.shape and mu.size == dim:
        mu = mu.reshape(dim)
    if mu.shape != (dim,) or sigma.shape != (dim, dim):
        raise DataError(f"data.reference_stats={path}: reference statistics have mu {mu.shape} / sigma {sigma.shape}, "
                        f"expected ({dim},) / ({dim}, {dim}) for Inception pool3; recompute them with the same "
                        f"network (2048-d pool3 of inception-v3-compat), or unset data.reference_stats to use the "
                        f"eval set's reference images")
    bad = int((~np.isfinite(mu)).sum() + (~np.isfinite(sigma)).sum())
    if bad:
        raise DataError(f"data.reference_stats={path}: reference statistics contain {bad} NaN/inf values; "
                        f"recompute them")
    return mu, sigma
