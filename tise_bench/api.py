"""Python API: ``tise_bench.evaluate(...)`` over a folder or in-memory images, e.g. inside a training loop.

Returns the same :class:`~tise_bench.results.EvalResult` as the CLI (same code path: the eval set is
built in memory, in-memory images are written losslessly as PNG into the cache and found by id).
"""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from .backbones import build_backbones
from .data.manifest import Record, load_manifest
from .errors import ConfigError
from .evalset import SUBSETS, EvalSet
from .pipeline import evaluate_model, plan
from .features.bank import FeatureBank
from .results import EvalResult
from .runner import crop_spec

_CONF = Path(__file__).parent / "configs"


def _default_cache() -> str:
    return os.environ.get("TISE_CACHE_DIR") or str(Path.home() / ".cache" / "tise_bench")


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
        raise ConfigError(f"in-memory images must be PIL images, uint8 HxWxC arrays or [0,1] float tensors; got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return Image.fromarray(arr).convert("RGB")


def _yaml_dict(path: Path) -> dict[str, Any]:
    """A shipped config file as a plain dict (the API reads the same defaults as the CLI)."""
    out = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(out, dict), f"{path} is not a mapping"
    return {str(k): v for k, v in out.items()}


def _materialise(images: Sequence[Any], ids: list[str], root: Path) -> Path:
    """Write in-memory images as PNG (lossless) into a content-addressed folder under the cache."""
    blobs = []
    for img in images:
        buf = io.BytesIO()
        _to_pil(img).save(buf, format="PNG")
        blobs.append(buf.getvalue())
    digest = hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in blobs) + "|".join(ids).encode()).hexdigest()[:20]
    folder = root / "api-images" / digest
    if not folder.is_dir():
        tmp = folder.with_name(f".{digest}.{os.getpid()}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for rid, b in zip(ids, blobs):
            (tmp / f"{rid}.png").write_bytes(b)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race with identical content
            pass
    return folder


#: What to do when ``metrics=[...]`` asks for a metric the inputs cannot support (printed by :func:`plan`).
UNSUPPORTED_FIX = ("give what is missing (references=[...] or reference_stats=<npz> for FID; a manifest whose records "
                   "carry the fields), or leave these out of metrics=[...] (metrics=None computes the default metrics "
                   "the inputs support and lists the others in provenance['not_applicable'])")


def evaluate(images: str | Path | Sequence[Any], captions: Sequence[str] | None = None, *,
             manifest: str | Path | None = None, references: Sequence[Any] | None = None,
             ids: Sequence[str] | None = None, metrics: Sequence[str] | None = None,
             params: dict[str, dict[str, Any]] | None = None, backbones: str | dict[str, Any] = "real",
             cache_dir: str | Path | None = None, name: str = "model", data_name: str = "custom",
             reference_stats: str | None = None, on_mismatch: str = "fail", batch_size: int = 32,
             device: str | None = None, write_to: str | Path | None = None,
             crops: dict[str, Any] | None = None) -> EvalResult:
    """Score images against captions with the TISE metrics.

    ``images``: a folder of ``<id>.png`` files (with ``manifest`` or ``captions`` + ``ids``) or a sequence of
    PIL images / uint8 arrays / [0,1] tensors aligned with ``captions``. ``references``: real images (paths
    or in-memory) aligned with ``captions``, needed by FID and CLIP-I2I (or give ``reference_stats``).
    ``backbones``: "real", "random" or a dict like the ``backbones`` config group. Default metrics (``metrics``
    None) that the inputs cannot support (e.g. FID without references) are left out and listed in
    ``provenance['not_applicable']``; metrics asked for by name that the inputs cannot support raise
    :class:`ConfigError` before any network is built.
    ``crops``: overrides of ``metrics.crops`` (threshold, min_side, max_per_image) for O-IS / O-FID.
    """
    cache = Path(cache_dir or _default_cache())
    if manifest is not None:
        records = load_manifest(manifest)
    else:
        if captions is None:
            raise ConfigError("evaluate(): give captions=[...] (aligned with images) or manifest=<file.jsonl>")
        ids = list(ids) if ids is not None else [f"{i:06d}" for i in range(len(captions))]
        if len(ids) != len(captions):
            raise ConfigError(f"evaluate(): {len(ids)} ids for {len(captions)} captions")
        refs: list[str | None] = [None] * len(ids)
        if references is not None:
            if len(references) != len(ids):
                raise ConfigError(f"evaluate(): {len(references)} references for {len(ids)} captions")
            if all(isinstance(r, (str, Path)) for r in references):
                refs = [str(Path(r).resolve()) for r in references]
            else:
                folder = _materialise(references, ids, cache)
                refs = [str(folder / f"{i}.png") for i in ids]
        records = [Record(id=i, caption=c, reference=r) for i, c, r in zip(ids, captions, refs)]
    if isinstance(images, (str, Path)):
        samples_dir = Path(images)
    else:
        if len(images) != len(records):
            raise ConfigError(f"evaluate(): {len(images)} images for {len(records)} captions")
        samples_dir = _materialise(images, [r.id for r in records], cache)
    evalset = EvalSet(name=data_name, subsets={s: records for s in SUBSETS}, reference_stats=reference_stats)

    mdefaults = _yaml_dict(_CONF / "metrics" / "default.yaml")
    merged = {k: dict(v or {}) for k, v in mdefaults["params"].items()}
    for k, v in (params or {}).items():
        merged.setdefault(k, {}).update(v)
    ids_wanted = list(metrics or mdefaults["ids"])
    if isinstance(backbones, str):
        if backbones not in ("real", "random"):
            raise ConfigError(f"evaluate(backbones={backbones!r}): use 'real', 'random' or a dict")
        bcfg = _yaml_dict(_CONF / "backbones" / f"{backbones}.yaml")
    else:
        bcfg = dict(backbones)
    if device is not None:
        bcfg["device"] = device
    # default metrics the inputs cannot support are left out and reported; explicitly requested ones must run
    planned = plan(ids_wanted, evalset, merged, bcfg, on_unsupported="skip" if metrics is None else "fail",
                   fix=UNSUPPORTED_FIX)
    built = build_backbones(bcfg, planned.backbones, cache)
    bank = FeatureBank(built, cache, batch_size=batch_size)
    result = evaluate_model(model_name=name, samples_dir=samples_dir, evalset=evalset, metric_ids=planned.ids,
                            params=merged, bank=bank, backbones=built, on_mismatch=on_mismatch,
                            config={"api": True, "metrics": planned.ids, "params": merged, "backbones": bcfg},
                            crop_spec=crop_spec({"crops": {**(mdefaults.get("crops") or {}), **(crops or {})}}, bcfg))
    assert result is not None, "evaluate_model returns None only on torchrun ranks other than 0 (no dist here)"
    result.provenance["not_applicable"] = dict(planned.not_applicable)
    if write_to is not None:
        result.write(write_to)
    return result
