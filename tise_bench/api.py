"""Python API: ``tise_bench.evaluate(...)`` over a folder or in-memory images, e.g. inside a training loop.

Returns the same :class:`~tise_bench.results.EvalResult` as the CLI through the same path: the CLI's Hydra
config composed with overrides; a folder of images then goes through :func:`tise_bench.runner.evaluate_config`
(only the eval set is built in memory), in-memory images through :class:`tise_bench.evaluator.Evaluator` (one
``update``, one ``compute``: their features are computed from the pixels, no file is written), which ends in the
same :func:`tise_bench.pipeline.finish`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from PIL import Image

from .config_schema import backbones_schema, compose
from .data.manifest import Record, load_manifest
from .errors import ConfigError
from .evalset import EvalSet, all_subsets
from .fsutil import CACHE, RESULTS, check_writable
from .names import check_file_id, check_name
from .results import EvalResult
from .runner import evaluate_config, resolve_config


def _to_pil(img: Any) -> Image.Image:
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    try:
        import torch

        if isinstance(img, torch.Tensor):
            t = img.detach().cpu()
            if t.ndim == 3 and t.shape[0] in (1, 3):
                t = t.permute(1, 2, 0)
            img = t.numpy()
            if img.dtype != np.uint8:  # float tensors are taken as [0, 1]
                img = (np.clip(img, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    except ImportError:  # pragma: no cover
        pass
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ConfigError(
            f"in-memory images must be PIL images, uint8 HxWxC arrays or [0,1] float tensors; got {arr.dtype}"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return Image.fromarray(arr).convert("RGB")


#: ``bootstrap`` of an in-memory API run (no ``write_to``) unless the caller asks: no replicates.
NO_REPLICATES = {"replicates": 0, "replicates_features": 0}

#: What to do when ``metrics=[...]`` asks for a metric the inputs cannot support (printed by :func:`plan`).
UNSUPPORTED_FIX = (
    "give what is missing (references=[...] or reference_stats=<npz> for FID; a manifest whose records "
    "carry the fields), or leave these out of metrics=[...] (metrics=None computes the default metrics "
    "the inputs support and lists the others in provenance['not_applicable'])"
)


def evaluate(
    images: str | Path | Sequence[Any],
    captions: Sequence[str] | None = None,
    *,
    manifest: str | Path | None = None,
    references: Sequence[Any] | None = None,
    ids: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    backbones: str | dict[str, Any] = "real",
    cache_dir: str | Path | None = None,
    name: str = "model",
    data_name: str = "custom",
    reference_stats: str | None = None,
    on_mismatch: str = "fail",
    batch_size: int = 32,
    num_workers: int | None = None,
    device: str | None = None,
    write_to: str | Path | None = None,
    crops: dict[str, Any] | None = None,
    bootstrap: dict[str, int] | None = None,
) -> EvalResult:
    """Score images against captions with the TISE metrics.

    ``images``: a folder of ``<id>.png`` files (with ``manifest`` or ``captions`` + ``ids``) or a sequence of
    PIL images / uint8 arrays / [0,1] tensors aligned with ``captions`` (scored in memory: no file is written, and
    their features are not cached on disk). ``references``: real images aligned with ``captions``, needed by FID
    and CLIP-I2I (or give ``reference_stats``): file paths, or in-memory images when ``images`` are in memory too.
    ``backbones``: "real", "random" or a dict like the ``backbones`` config group. Default metrics (``metrics``
    None) that the inputs cannot support (e.g. FID without references) are left out and listed in
    ``provenance['not_applicable']``; metrics asked for by name that the inputs cannot support raise
    :class:`ConfigError` before any network is built.
    ``crops``: overrides of ``metrics.crops`` (threshold, min_side, max_per_image) for O-IS / O-FID.
    ``num_workers``: input worker threads (None: cores + 1, at most 8; 0: serial), same results for any.
    ``bootstrap``: overrides of ``bootstrap.*`` (replicates, replicates_features, seed). By default a run written
    with ``write_to`` gets the CLI's replicates (what the leaderboard's intervals read) and an in-memory run none
    (a training loop does not pay for them); ``result.replicates`` holds them.

    The run is the CLI's: the same Hydra config (``backbones=<real|random>``, ``model=folder``, ``data=custom``,
    these arguments merged over it and checked by the schema), recorded in full in ``metrics.json``, and the
    same functions (a folder: :func:`tise_bench.runner.evaluate_config`; in-memory images:
    :class:`tise_bench.Evaluator`, which shares its scoring, :func:`tise_bench.pipeline.finish`; for many
    evaluations in one process keep an Evaluator: its networks stay built). A ``backbones`` dict replaces the whole group;
    ``cache_dir`` None uses ``paths.cache_dir`` ($TISE_CACHE_DIR, else ~/.cache/tise_bench).
    """
    check_name(name, "name")  # model.name and data.name: result folders, checked before any work
    check_name(data_name, "data_name")
    boot = bootstrap if bootstrap is not None or write_to is not None else NO_REPLICATES
    cfg_args: dict[str, Any] = dict(
        metrics=metrics,
        params=params,
        backbones=backbones,
        cache_dir=cache_dir,
        name=name,
        data_name=data_name,
        reference_stats=reference_stats,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        crops=crops,
        bootstrap=boot,
    )
    cfg = _config(
        metrics=metrics,
        params=params,
        backbones=backbones,
        cache_dir=cache_dir,
        name=name,
        data_name=data_name,
        manifest=manifest,
        reference_stats=reference_stats,
        on_mismatch=on_mismatch,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        crops=crops,
        bootstrap=boot,
    )
    cache = Path(OmegaConf.select(cfg, "paths.cache_dir", throw_on_resolution_failure=True))
    check_writable(cache, CACHE, create=False)  # before any work
    if write_to is not None:
        check_writable(Path(write_to).parent, RESULTS, create=False)
    if manifest is not None:
        records = load_manifest(manifest)
    else:
        if captions is None:
            raise ConfigError("evaluate(): give captions=[...] (aligned with images) or manifest=<file.jsonl>")
        ids = list(ids) if ids is not None else [f"{i:06d}" for i in range(len(captions))]
        for i, rid in enumerate(ids):
            check_file_id(rid, f"ids[{i}]")
        if len(ids) != len(captions):
            raise ConfigError(f"evaluate(): {len(ids)} ids for {len(captions)} captions")
        refs: list[str | None] = [None] * len(ids)
        ref_images: dict[str, Any] = {}
        if references is not None:
            if len(references) != len(ids):
                raise ConfigError(f"evaluate(): {len(references)} references for {len(ids)} captions")
            if all(isinstance(r, (str, Path)) for r in references):
                refs = [str(Path(r).resolve()) for r in references]
            elif isinstance(images, (str, Path)):
                raise ConfigError(
                    "evaluate(): in-memory references need in-memory images; with a folder of images give the "
                    "references as file paths (references=[...paths] or a manifest's 'reference')"
                )
            else:
                from .evaluator import REF_KEY

                ref_images = dict(zip(ids, references))
                refs = [REF_KEY.format(i) for i in ids]
        records = [Record(id=i, caption=c, reference=r) for i, c, r in zip(ids, captions, refs)]
    evalset = EvalSet(name=data_name, subsets={s: records for s in all_subsets()}, reference_stats=reference_stats)
    if isinstance(images, (str, Path)):
        cfg.model.samples_dir = str(Path(images))
        [result] = evaluate_config(resolve_config(cfg), evalset=evalset, fix=UNSUPPORTED_FIX)
    else:
        if len(images) != len(records):
            raise ConfigError(f"evaluate(): {len(images)} images for {len(records)} captions")
        what = f"ids (manifest {manifest})" if manifest is not None else "ids"
        for i, r in enumerate(records):  # the ids a folder of these images would have as file names
            check_file_id(r.id, f"{what}[{i}]")
        result = _in_memory(images, records, ref_images, evalset, cfg_args)
    if write_to is not None:
        result.write(write_to)
    return result


def _in_memory(
    images: Sequence[Any], records: list[Record], ref_images: dict[str, Any], evalset: EvalSet, args: dict[str, Any]
) -> EvalResult:
    """:func:`evaluate` on in-memory images: an Evaluator planned on the eval set, one update, one compute."""
    from .evaluator import _Planned

    ev = _Planned(evalset, **args)
    ev._add(list(images), records, ref_images)
    return ev.compute()


def _config(
    *,
    metrics: Sequence[str] | None,
    params: dict[str, dict[str, Any]] | None,
    backbones: str | dict[str, Any],
    cache_dir: str | Path | None,
    name: str,
    data_name: str,
    manifest: str | Path | None,
    reference_stats: str | None,
    on_mismatch: str,
    batch_size: int,
    device: str | None,
    crops: dict[str, Any] | None,
    num_workers: int | None = None,
    bootstrap: dict[str, int] | None = None,
) -> DictConfig:
    """The CLI's config (:func:`tise_bench.config_schema.compose`) for :func:`evaluate`'s arguments.

    Group choices are Hydra overrides; values are merged over the composed config, so the schema checks them
    (a wrong key or type names it). Default metrics the inputs cannot support are skipped
    (``on_unsupported=skip``); metrics asked for by name must run (``fail``, before any backbone is built).
    """
    if isinstance(backbones, str) and backbones not in ("real", "random"):
        raise ConfigError(f"evaluate(backbones={backbones!r}): use 'real', 'random' or a dict")
    choice = backbones if isinstance(backbones, str) else "real"
    cfg = compose([f"backbones={choice}", "model=folder", "data=custom"])
    values: dict[str, Any] = {
        "on_mismatch": on_mismatch,
        "on_unsupported": "skip" if metrics is None else "fail",
        "batch_size": batch_size,
        "num_workers": num_workers,
        "progress": False,
        "print_table": False,
        "data": {
            "name": data_name,
            "manifest": None if manifest is None else str(manifest),
            "reference_stats": reference_stats,
        },
        "model": {"name": name, "samples_dir": None},
        "metrics": {"params": params or {}, "crops": crops or {}, **({"ids": list(metrics)} if metrics else {})},
    }
    if cache_dir is not None:
        values["paths"] = {"cache_dir": str(cache_dir)}
    if bootstrap is not None:
        values["bootstrap"] = dict(bootstrap)
    if device is not None:
        values["backbones"] = {"device": device}
    try:
        if not isinstance(backbones, str):  # a whole backbones group, typed by the same schema as the YAML
            typed = OmegaConf.create({"backbones": OmegaConf.structured(backbones_schema())})
            cfg.backbones = OmegaConf.merge(typed, {"backbones": backbones}).backbones  # errors name backbones.<key>
        return OmegaConf.merge(cfg, values)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ConfigError(f"evaluate(): {e}") from None
