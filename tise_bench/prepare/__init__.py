"""Eval-set preparation (SPEC §4): official COCO-2014 / CUB files or TISE's pickles → JSONL manifests.

``python -m tise_bench.prepare data=coco coco_root=<dir>`` (config: ``prepare/conf/prepare.yaml``) is a
thin wrapper around :func:`run_prepare`, which dispatches to the plain functions below:

* :func:`prepare_coco` -- COCO-2014 val → realism, rp, pa, ca, soa (seeded selection rules in :mod:`.coco`);
* :func:`prepare_tise_pickles` -- TISE's released caption pickles → the same five, or CUB's realism and rp
  (``data=cub``) (:mod:`.tise_pickles`);
* :func:`prepare_cub` -- CUB-200 captions → realism, rp (:mod:`.cub`).
* :func:`prepare_compbench` -- T2I-CompBench's prompt files → spatial, numeracy (:mod:`.compbench`).
* :func:`prepare_geneval` -- GenEval's evaluation_metadata.jsonl, or the same prompts regenerated → geneval
  (:mod:`.geneval`).

Each returns ``{subset: manifest path}`` and writes byte-identical files for identical inputs and seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from .coco import prepare_coco
from .common import Sizes
from .compbench import prepare_compbench
from .cub import prepare_cub
from .geneval import prepare_geneval
from .tise_pickles import prepare_tise_pickles

__all__ = [
    "Sizes",
    "prepare_coco",
    "prepare_compbench",
    "prepare_cub",
    "prepare_geneval",
    "prepare_tise_pickles",
    "run_prepare",
]


def _given(v: Any) -> bool:
    return v is not None and str(v) not in ("", "???")


def run_prepare(cfg: Mapping[str, Any]) -> dict[str, Path]:
    """Run the preparation a resolved ``prepare.yaml`` config asks for; returns subset → manifest path."""
    data = cfg.get("data")
    if not _given(data):
        raise ConfigError(
            "data=<name> is required: data=coco coco_root=<dir> | data=coco tise_pickles=<dir> | "
            "data=cub cub_root=<dir> | data=cub tise_pickles=<dir> | data=compbench compbench_root=<dir> | "
            "data=geneval [geneval_metadata=<evaluation_metadata.jsonl>]"
        )
    out, seed = Path(str(cfg["out"])), int(cfg.get("seed", 0))
    if str(data) == "compbench":  # T2I-CompBench's prompt files (no draws: every prompt, in file order)
        if not _given(cfg.get("compbench_root")):
            raise ConfigError("data=compbench imports T2I-CompBench's prompt files: give compbench_root=<dir>")
        return prepare_compbench(cfg["compbench_root"], out, split=str(cfg.get("compbench_split") or "val"))
    if str(data) == "geneval":  # GenEval's metadata file, or its 553 prompts regenerated (create_prompts.py)
        meta = cfg.get("geneval_metadata")
        return prepare_geneval(
            out,
            metadata=str(meta) if _given(meta) else None,
            seed=int(cfg.get("geneval_seed", 43)),
            n=int(cfg.get("geneval_per_task", 100)),
        )
    sizes = dict(cfg.get("sizes") or {})
    if _given(cfg.get("tise_pickles")):
        subs = cfg.get("tise_subsets")
        return prepare_tise_pickles(
            cfg["tise_pickles"],
            out,
            coco_root=cfg.get("coco_root") or None,
            seed=seed,
            subsets=None if subs is None else [str(s) for s in subs],
            data=str(data),
        )
    if _given(cfg.get("cub_root")):
        return prepare_cub(cfg["cub_root"], out, seed=seed, sizes=sizes)
    if _given(cfg.get("coco_root")):
        if str(data) == "cub":
            raise ConfigError("data=cub prepares from CUB captions: give cub_root=<dir> (coco_root is for data=coco)")
        return prepare_coco(cfg["coco_root"], out, seed=seed, sizes=sizes)
    raise ConfigError(
        f"data={data}: say where the source files are: coco_root=<dir> (COCO-2014 annotations), "
        f"tise_pickles=<dir> (TISE caption pickles) or cub_root=<dir> (CUB captions)"
    )
