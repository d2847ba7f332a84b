"""An eval set: named subsets of records (SPEC §1), from manifests, a single custom manifest or the demo."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.manifest import Record, load_manifest
from .errors import ConfigError, DataError

SUBSETS = ("realism", "rp", "pa", "ca", "soa")


@dataclass
class EvalSet:
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
    name = cfg.get("name")
    if not name or name == "???":
        raise ConfigError("data.name is required (e.g. data=coco, or data=custom data.name=<name> data.manifest=<file>)")
    kind = cfg.get("kind", "manifests")
    stats = cfg.get("reference_stats")
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


def load_reference_stats(path: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """mu/sigma from a pytorch-fid/TISE style .npz, validated against the feature dimension."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data.reference_stats={path} does not exist")
    with np.load(p) as z:
        if "mu" not in z or "sigma" not in z:
            raise DataError(f"{path}: expected arrays 'mu' and 'sigma' (pytorch-fid format), found {list(z.keys())}")
        mu, sigma = z["mu"].astype(np.float64), z["sigma"].astype(np.float64)
    if mu.shape != (dim,) or sigma.shape != (dim, dim):
        raise DataError(f"{path}: reference statistics have mu {mu.shape} / sigma {sigma.shape}, expected ({dim},) / "
                        f"({dim}, {dim}) for Inception pool3; recompute them with the same network")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(f"{path}: reference statistics contain NaN/inf")
    return mu, sigma
