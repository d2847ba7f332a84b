"""The typed function behind ``python -m tise_bench`` and ``tise_bench.evaluate``: one composed config ->
plan -> backbones -> one feature bank -> every model's result.

:func:`evaluate_config` is the one entry path; :func:`run` (the CLI) resolves the Hydra config, joins a
torchrun group if there is one, writes each result under ``paths.results_dir`` and prints the table;
:func:`tise_bench.api.evaluate` composes the same config with overrides and passes an in-memory eval set.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from .backbones import build_backbones
from .config_schema import not_a_setting
from .distributed import Dist, init_from_env, rank_device
from .errors import ConfigError, TiseError
from .evalset import EvalSet, load_eval_set
from .features.bank import FeatureBank
from .features.crops import CropSpec
from .fsutil import CACHE, RESULTS, check_writable
from .imagefile import DEFAULT_MAX_FILE_BYTES
from .names import check_name
from .pipeline import evaluate_model, plan
from .report import format_table
from .results import EvalResult

log = logging.getLogger(__name__)

#: What to do when metrics.ids asks for a metric the eval set cannot support (printed by :func:`plan`).
UNSUPPORTED_FIX = (
    "add what is missing to the manifest's records (or data.reference_stats=<npz>, which serves FID), "
    "leave these metrics out of metrics.ids, or on_unsupported=skip to compute the rest and list these "
    "under 'not_applicable' in metrics.json"
)


def _models(cfg: Mapping[str, Any], demo_dir: str | None) -> list[tuple[str, str]]:
    m = cfg["model"]
    names = list(m.get("suite") or [m["name"]])
    out = []
    for name in names:
        d = m.get("samples_dir") if not m.get("suite") else None
        if not d:
            if demo_dir is None:
                raise ConfigError(
                    f"model {name!r} has no samples_dir; set model.samples_dir=<folder of images> "
                    f"(demo models need data=demo)"
                )
            d = str(Path(demo_dir) / name)
        out.append((name, d))
    return out


def crop_spec(mcfg: Mapping[str, Any], bcfg: Mapping[str, Any]) -> CropSpec:
    """metrics.crops, with the backbone set's crop cap (random detectors) applied when it is tighter."""
    spec = dict(mcfg.get("crops") or {})
    cap = (bcfg.get("detector") or {}).get("max_crops")
    if cap and (spec.get("max_per_image") is None or cap < spec["max_per_image"]):
        spec["max_per_image"] = int(cap)
    return CropSpec(**spec)


def check_keys(cfg: DictConfig, where: str = "") -> None:
    """Refuse keys that a typed node's schema does not declare (the CLI refuses them earlier, on the command line:
    :func:`tise_bench.config_schema.check_overrides`; this catches the API's and a ``--config-dir``'s YAML)."""
    typ = OmegaConf.get_type(cfg)
    if is_dataclass(typ):
        valid = [f.name for f in fields(typ)]
        for key in map(str, cfg.keys()):
            if key not in valid:
                raise ConfigError(not_a_setting(f"{where}{key}", valid, typ.__name__))
    for key in map(str, cfg.keys()):
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_none():
            check_keys(node, f"{where}{key}.")


def resolve_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain data: keys checked against the schema, interpolations resolved, every
    required value (``???``) set."""
    check_keys(cfg)
    try:
        c: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[assignment]
    except MissingMandatoryValue as e:
        raise ConfigError(
            f"{e.full_key} is required but not set; pass {e.full_key}=<value> on the command line "
            f"(see README: model=folder needs model.name and model.samples_dir, data=custom needs "
            f"data.name and data.manifest)"
        ) from None
    except InterpolationResolutionError as e:
        raise ConfigError(f"config value could not be resolved: {e}") from None
    check_names(c)
    return c


def check_names(c: Mapping[str, Any]) -> None:
    """``model.name``, ``model.suite`` and ``data.name`` name result folders (``<results_dir>/<data>/<model>/``):
    each must be a safe single path component (:mod:`tise_bench.names`), checked before any work."""
    m, d = c.get("model") or {}, c.get("data") or {}
    if "name" in m:
        check_name(m["name"], "model.name")
    for i, name in enumerate(m.get("suite") or []):
        check_name(name, f"model.suite[{i}]")
    if "name" in d:
        check_name(d["name"], "data.name")


def evaluate_config(
    cfg: Mapping[str, Any],
    *,
    evalset: EvalSet | None = None,
    dist: Dist | None = None,
    fix: str = UNSUPPORTED_FIX,
    on_result: Callable[[EvalResult], None] | None = None,
) -> list[EvalResult]:
    """Evaluate every model of a resolved config (:func:`resolve_config`): plan the metrics (``on_unsupported``
    decides on those the eval set cannot support; ``fix`` is the advice printed then) before any backbone is
    built, build the backbones the plan needs, then one :class:`FeatureBank` serves every model.

    ``evalset``: an eval set built in memory (the API), instead of loading ``cfg['data']``. ``dist``: the torchrun
    group (None: one process); ranks other than 0 return no results. ``on_result`` sees each result as soon as it
    is complete (the CLI writes it there, so a failure in a later model keeps the earlier ones). The cache folder
    is checked for writing (and space) first: a disk problem is reported before any work.
    """
    dist = dist or Dist()
    paths, mcfg, bcfg = cfg["paths"], cfg["metrics"], cfg["backbones"]
    check_writable(paths["cache_dir"], CACHE)  # a full or read-only cache is reported now, not after the work
    if evalset is None:
        evalset = load_eval_set(cfg["data"], paths["cache_dir"])
    params = dict(mcfg.get("params") or {})
    planned = plan(
        list(mcfg["ids"]), evalset, params, bcfg, on_unsupported=str(cfg.get("on_unsupported", "fail")), fix=fix
    )
    backbones = build_backbones(bcfg, planned.backbones, paths["cache_dir"], lazy=True)  # built when features miss
    bank = FeatureBank(
        backbones,
        paths["cache_dir"],
        batch_size=int(cfg.get("batch_size", 32)),
        max_pixels=cfg.get("max_pixels"),
        max_file_bytes=cfg.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES),
        num_workers=cfg.get("num_workers"),
        progress=bool(cfg.get("progress", False)) and dist.is_main,
    )
    results = []
    for name, samples_dir in _models(cfg, evalset.demo_models_dir):
        res = evaluate_model(
            model_name=name,
            samples_dir=samples_dir,
            evalset=evalset,
            metric_ids=planned.ids,
            params=params,
            bank=bank,
            backbones=backbones,
            on_mismatch=cfg.get("on_mismatch", "fail"),
            on_bad_image=cfg.get("on_bad_image", "fail"),
            config=dict(cfg),
            crop_spec=crop_spec(mcfg, bcfg),
            dist=dist,
            layout=str(cfg["model"].get("layout") or "flat"),
            subset_dirs=dict(cfg["model"].get("subset_dirs") or {}),
        )
        if res is None:  # a torchrun rank other than 0: its shard is in the cache, rank 0 writes
            continue
        res.provenance["not_applicable"] = dict(planned.not_applicable)
        res.provenance["world_size"] = dist.world_size
        if on_result is not None:
            on_result(res)
        results.append(res)
    return results


def quiet_third_party_logs(verbose: bool) -> None:
    """The CLI's log levels (Hydra has set the handlers up from config.yaml's ``hydra.job_logging``): tise_bench's
    own records from INFO; other libraries' only from ERROR unless ``verbose=true`` (then from INFO). What this
    silences, measured on the demo: open_clip's "No pretrained weights loaded" warning (root logger) and
    ultralytics' settings-file banner (its own stdout handler, level read from ``YOLO_VERBOSE`` when ultralytics
    is first imported, which happens later, when the detector is built)."""
    logging.getLogger().setLevel(logging.INFO if verbose else logging.ERROR)
    logging.getLogger("tise_bench").setLevel(logging.INFO)
    if not verbose:
        os.environ.setdefault("YOLO_VERBOSE", "False")
        logging.getLogger("ultralytics").setLevel(logging.ERROR)  # in case it was imported already


class CheckFolders(Callback):
    """Hydra callback (``hydra.callbacks`` in configs/config.yaml): Hydra makes its run folder under
    ``paths.results_dir`` before :func:`run` starts, so a results or cache folder that cannot be written is
    reported here, in the CLI's one paragraph (exit status 2), not as Hydra's traceback."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_folders_or_exit(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_folders_or_exit(config)


def _check_folders_or_exit(config: DictConfig) -> None:
    try:
        # create=False: nothing is made before run() has checked the config (a refused name writes nothing)
        check_writable(OmegaConf.select(config, "paths.results_dir"), RESULTS, create=False)
        check_writable(OmegaConf.select(config, "paths.cache_dir"), CACHE, create=False)
    except TiseError as e:
        print(f"tise_bench: error: {e}", file=sys.stderr)
        sys.exit(2)


def run(cfg: DictConfig | dict[str, Any]) -> list[EvalResult]:
    """Evaluate every model of the config; under torchrun only rank 0 writes (and returns) results."""
    if isinstance(cfg, DictConfig):
        c = resolve_config(cfg)
    else:
        check_names(cfg)  # a plain dict skips resolve_config; its names still become folders
        c = cfg
    dist = init_from_env(str(c["backbones"].get("device", "auto")))
    if dist.enabled:  # each rank on its own GPU (LOCAL_RANK)
        c = {
            **c,
            "backbones": {**c["backbones"], "device": rank_device(str(c["backbones"].get("device", "auto")), dist)},
        }
    results_dir = Path(c["paths"]["results_dir"])
    if dist.is_main:  # only rank 0 writes results; create=False: a config refused by the plan leaves no folder
        check_writable(results_dir, RESULTS, create=False)

    def write(res: EvalResult) -> None:
        log.info("wrote %s", res.write(results_dir / res.data / res.model))

    results = evaluate_config(c, dist=dist, on_result=write)
    if c.get("print_table", True) and dist.is_main:
        print(format_table(results), file=sys.stdout)
    return results
