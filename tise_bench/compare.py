"""``python -m tise_bench.compare <generated_dir> <reference_dir> [overrides]``: distribution metrics on two folders.

torch-fidelity's habit (``fidelity --gpu 0 --fid --input1 a --input2 b``): no manifest, no captions. The metrics
that compare two image sets as distributions run: by default FID, KID, precision and recall; with
``metrics.ids=[...]`` also density, coverage, FD-DINOv2, CLIP-FID (and IS, which reads the generated folder only).
A metric that reads captions or other prompt fields (CLIPScore, R-precision, SOA, ...) is refused, naming why.

The run is the CLI's (:func:`tise_bench.runner.evaluate_config`, the same config and feature cache); only the
eval set is built in memory: one record per generated image (id = file stem), the reference folder's files as
the records' ``reference`` (sorted by name). The two folders may hold different numbers of images: these
metrics compare two sets, not pairs (reference images beyond the generated count go to reference-only records,
whose missing generated image is not a mismatch). Nothing is written unless ``paths.results_dir=<folder>`` is
given (the feature cache under ``paths.cache_dir`` is used as by every run). No bootstrap replicates are drawn
unless ``bootstrap.*`` is given; ``data.limit`` is refused (give the folders to compare).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .data.manifest import Record
from .data.samples import IMAGE_EXTS
from .errors import ConfigError, DataError, TiseError
from .evalset import EvalSet, all_subsets

log = logging.getLogger("tise_bench.compare")  # also when run as __main__

#: ``metrics.ids`` when none is given: torch-fidelity's FID and KID, and Kynkäänniemi et al.'s precision / recall.
DEFAULT_METRICS = ("fid", "kid", "precision", "recall")
#: What to do when a requested metric cannot run on the two folders (printed under the planner's reasons).
COMPARE_FIX = (
    "change the metric's parameters as the reason says, leave it out of metrics.ids, or on_unsupported=skip to "
    "compute the rest"
)
#: the id prefix of records that carry only a reference image (more reference than generated images)
REFERENCE_ONLY = "reference-only-"


def folder_images(folder: str | Path, what: str) -> list[Path]:
    """The images at the top of ``folder`` (sorted by name; hidden files and sub-folders left out); a missing,
    non-folder or image-less ``folder`` is refused naming it (``what``: which argument it is)."""
    d = Path(folder)
    if not d.exists():
        raise DataError(f"{what} folder not found: {d}\n  fix: give the folder that holds the {what} images")
    if not d.is_dir():
        raise DataError(f"{what} folder {d} is not a folder\n  fix: give the folder that holds the {what} images")
    files = sorted(
        d / n
        for n in os.listdir(d)
        if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTS and (d / n).is_file()
    )
    if not files:
        raise DataError(
            f"{what} folder {d} holds no images ({', '.join(IMAGE_EXTS)} at its top level; sub-folders are not "
            f"read)\n  fix: give the folder that holds the {what} images"
        )
    return files


def two_folder_evalset(generated: list[Path], references: list[Path], name: str = "compare") -> EvalSet:
    """The in-memory eval set of a comparison: record ``i`` is generated image ``i`` (id = its stem) with
    reference image ``i``; generated images beyond the reference count have no reference, reference images
    beyond the generated count get reference-only records (listed in ``beyond_limit``: no image required)."""
    stems = [p.stem for p in generated]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})
        raise DataError(
            f"generated folder {generated[0].parent}: {len(dup)} name(s) appear with two extensions ({dup[:3]}); "
            f"the images are matched by file stem\n  fix: keep one file per name"
        )
    records = [
        Record(id=s, caption="", reference=str(references[i].resolve()) if i < len(references) else None)
        for i, s in enumerate(stems)
    ]
    taken = set(stems)
    extra = []
    for i, ref in enumerate(references[len(stems) :]):
        rid = f"{REFERENCE_ONLY}{i:06d}"
        while rid in taken:
            rid = "_" + rid
        extra.append(Record(id=rid, caption="", reference=str(ref.resolve())))
    records += extra
    subsets = {s: records for s in all_subsets()}
    return EvalSet(name=name, subsets=subsets, beyond_limit={s: extra for s in subsets} if extra else {})


def refuse_caption_metrics(ids: Sequence[str], params: dict[str, Any]) -> None:
    """Refuse, all in one message, metrics that read captions (text features) or crops of detected objects'
    classes: two folders have neither captions nor prompt fields."""
    from .registry import all_metrics

    specs = all_metrics()
    bad = []
    for mid in ids:
        spec = specs.get(mid)
        if spec is None:
            continue  # unknown ids: the planner's message (with its "did you mean")
        if any(n.role == "text" for n in spec.needs_for(params.get(mid))):
            bad.append(f"{mid} (reads the prompts' captions)")
    if bad:
        raise ConfigError(
            f"tise_bench.compare: {', '.join(bad)} cannot run on two folders: there are no captions. "
            f"Compare runs the distribution metrics ({', '.join(DEFAULT_METRICS)} by default; density, coverage, "
            f"fd_dinov2, clip_fid when asked with metrics.ids=[...]); score captions with python -m tise_bench "
            f"data=custom data.manifest=<file.jsonl>"
        )


def compare_config(overrides: Sequence[str], generated_dir: str | Path) -> tuple[dict[str, Any], bool]:
    """-> (the resolved run config of a comparison, whether results are written): the CLI's config composed with
    ``overrides`` (checked by the strict schema), ``metrics.ids`` defaulting to :data:`DEFAULT_METRICS`."""
    from .config_schema import check_overrides, compose
    from .runner import resolve_config

    overrides = list(overrides)
    check_overrides(overrides)
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    cfg: DictConfig = compose(["model=folder", "data=custom", *overrides])
    values: dict[str, Any] = {
        "data": {"name": OmegaConf.select(cfg, "data.name") if "data.name" in keys else "compare", "manifest": None},
        "model": {
            "name": OmegaConf.select(cfg, "model.name") if "model.name" in keys else "generated",
            "samples_dir": str(generated_dir),
        },
        "print_table": False,
    }
    if not keys & {"metrics", "metrics.ids"}:
        values["metrics"] = {"ids": list(DEFAULT_METRICS)}
    if "on_unsupported" not in keys:
        values["on_unsupported"] = "fail"
    if "bootstrap.replicates" not in keys and "bootstrap" not in keys:
        values["bootstrap"] = {"replicates": 0, "replicates_features": 0}
    merged = OmegaConf.merge(cfg, values)
    return resolve_config(merged), "paths.results_dir" in keys  # type: ignore[arg-type]


def compare(generated_dir: str | Path, reference_dir: str | Path, overrides: Sequence[str] = ()) -> Any:
    """Distribution metrics of ``generated_dir`` against ``reference_dir`` (see the module docstring); returns the
    :class:`~tise_bench.results.EvalResult` (written to ``<paths.results_dir>/<data.name>/<model.name>/`` only
    when ``paths.results_dir`` is among ``overrides``)."""
    from .runner import evaluate_config

    gen = folder_images(generated_dir, "generated")
    ref = folder_images(reference_dir, "reference")
    cfg, write = compare_config(overrides, generated_dir)
    refuse_caption_metrics(list(cfg["metrics"]["ids"]), dict(cfg["metrics"].get("params") or {}))
    if cfg["data"].get("limit") is not None:
        raise ConfigError("data.limit is not used by tise_bench.compare: give folders with the images to compare")
    if len(gen) != len(ref):
        more = (
            f"; the {len(gen) - len(ref)} generated image(s) past the reference count are counted in "
            f"skipped.no_reference (records without a reference) but scored all the same"
            if len(gen) > len(ref)
            else ""
        )
        log.info(
            "%d generated and %d reference images: distribution metrics compare two sets, not pairs, and use all "
            "of both%s",
            len(gen),
            len(ref),
            more,
        )
    evalset = two_folder_evalset(gen, ref, name=str(cfg["data"]["name"]))
    [result] = evaluate_config(cfg, evalset=evalset, fix=COMPARE_FIX)
    result.provenance["eval_set"]["compare"] = {
        "generated": str(Path(generated_dir).resolve()),
        "reference": str(Path(reference_dir).resolve()),
        "n_generated": len(gen),
        "n_reference": len(ref),
    }
    if write:
        out = Path(cfg["paths"]["results_dir"]) / result.data / result.model
        log.info("wrote %s", result.write(out))
    return result


def format_compare(result: Any) -> str:
    """A compact table: one line per metric (value, direction, images on each side)."""
    rows = [("metric", "value", "n_gen", "n_ref")]
    for mid, mv in result.metrics.items():
        meta = result.meta.get(mid, {})
        arrow = "↑" if meta.get("higher_is_better", True) else "↓"
        n_ref = (mv.extras or {}).get("n_reference", "")
        rows.append((f"{meta.get('display', mid)}{arrow}", f"{mv.value:.4f}", str(mv.n), str(n_ref)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    if result.provenance.get("random_weights"):
        lines.append("RANDOM-WEIGHTS BACKBONES: smoke-test numbers, not comparable to any paper")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tise_bench.compare",
        description="Distribution metrics (FID, KID, precision, recall; more with metrics.ids=[...]) of a folder "
        "of generated images against a folder of reference images: no manifest, no captions.",
    )
    ap.add_argument("generated_dir", help="folder of generated images (top level; any names)")
    ap.add_argument("reference_dir", help="folder of reference (real) images; the counts may differ")
    ap.add_argument(
        "overrides",
        nargs="*",
        help="config overrides, as for python -m tise_bench (backbones=random, metrics.ids=[fid], "
        "paths.results_dir=<folder> to write metrics.json)",
    )
    args = ap.parse_args(argv)
    from .runner import quiet_third_party_logs

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_third_party_logs(any(o.strip() in ("verbose=true", "verbose=True") for o in args.overrides))
    try:
        result = compare(args.generated_dir, args.reference_dir, args.overrides)
    except TiseError as e:
        print(f"tise_bench.compare: error: {e}", file=sys.stderr)
        return 2
    print(format_compare(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
