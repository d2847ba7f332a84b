"""The typed function behind ``python -m tise_bench``: compose -> evaluate every model -> write results."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from .backbones import build_backbones
from .distributed import init_from_env, rank_device
from .errors import ConfigError
from .evalset import load_eval_set
from .pipeline import evaluate_model, plan
from .features.bank import FeatureBank
from .features.crops import CropSpec
from .report import format_table
from .results import EvalResult

log = logging.getLogger(__name__)

#: What to do when metrics.ids asks for a metric the eval set cannot support (printed by :func:`plan`).
UNSUPPORTED_FIX = ("add what is missing to the manifest's records (or data.reference_stats=<npz>, which serves FID), "
                   "leave these metrics out of metrics.ids, or on_unsupported=skip to compute the rest and list these "
                   "under 'not_applicable' in metrics.json")


def _models(cfg: dict[str, Any], demo_dir: str | None) -> list[tuple[str, str]]:
    m = cfg["model"]
    names = list(m.get("suite") or [m["name"]])
    out = []
    for name in names:
        d = m.get("samples_dir") if not m.get("suite") else None
        if not d:
            if demo_dir is None:
                raise ConfigError(f"model {name!r} has no samples_dir; set model.samples_dir=<folder of images> "
                                  f"(demo models need data=demo)")
            d = str(Path(demo_dir) / name)
        out.append((name, d))
    return out


def crop_spec(mcfg: dict[str, Any], bcfg: dict[str, Any]) -> CropSpec:
    """metrics.crops, with the backbone set's crop cap (random detectors) applied when it is tighter."""
    spec = dict(mcfg.get("crops") or {})
    cap = (bcfg.get("detector") or {}).get("max_crops")
    if cap and (spec.get("max_per_image") is None or cap < spec["max_per_image"]):
        spec["max_per_image"] = int(cap)
    return CropSpec(**spec)


def _resolve(cfg: DictConfig) -> dict[str, Any]:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except MissingMandatoryValue as e:
        raise ConfigError(f"{e.full_key} is required but not set; pass {e.full_key}=<value> on the command line "
                          f"(see README: model=folder needs model.name and model.samples_dir, data=custom needs "
                          f"data.name and data.manifest)") from None
    except InterpolationResolutionError as e:
        raise ConfigError(f"config value could not be resolved: {e}") from None


def run(cfg: DictConfig | dict[str, Any]) -> list[EvalResult]:
    """Evaluate every model of the config; under torchrun only rank 0 writes (and returns) results."""
    c = _resolve(cfg) if isinstance(cfg, DictConfig) else cfg
    dist = init_from_env(str(c["backbones"].get("device", "auto")))
    if dist.enabled:  # each rank on its own GPU (LOCAL_RANK)
        c = {**c, "backbones": {**c["backbones"], "device": rank_device(str(c["backbones"].get("device", "auto")), dist)}}
    paths = c["paths"]
    evalset = load_eval_set(c["data"], paths["cache_dir"])
    mcfg = c["metrics"]
    params = dict(mcfg.get("params") or {})
    planned = plan(list(mcfg["ids"]), evalset, params, c["backbones"],
                   on_unsupported=str(c.get("on_unsupported", "fail")), fix=UNSUPPORTED_FIX)
    backbones = build_backbones(c["backbones"], planned.backbones, paths["cache_dir"])
    bank = FeatureBank(backbones, paths["cache_dir"], batch_size=int(c.get("batch_size", 32)),
                       max_pixels=c.get("max_pixels"), progress=bool(c.get("progress", False)) and dist.is_main)
    results = []
    for name, samples_dir in _models(c, evalset.demo_models_dir):
        res = evaluate_model(model_name=name, samples_dir=samples_dir, evalset=evalset, metric_ids=planned.ids,
                             params=params, bank=bank, backbones=backbones, on_mismatch=c.get("on_mismatch", "fail"),
                             on_bad_image=c.get("on_bad_image", "fail"), config=c,
                             crop_spec=crop_spec(mcfg, c["backbones"]), dist=dist,
                             layout=str(c["model"].get("layout") or "flat"),
                             subset_dirs=dict(c["model"].get("subset_dirs") or {}))
        if res is None:  # a torchrun rank other than 0: its shard is in the cache, rank 0 writes
            continue
        res.provenance["not_applicable"] = dict(planned.not_applicable)
        res.provenance["world_size"] = dist.world_size
        out = res.write(Path(paths["results_dir"]) / evalset.name / name)
        log.info("wrote %s", out)
        results.append(res)
    if c.get("print_table", True) and dist.is_main:
        print(format_table(results), file=sys.stdout)
    return results
