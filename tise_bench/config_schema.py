"""Typed schema of the Hydra config (``tise_bench/configs/``), registered with Hydra's ConfigStore.

``config.yaml`` extends :class:`TiseConfig` (``defaults: [tise_schema, _self_, ...]``), so every group is
merged into a typed node: a wrong key or a value of the wrong type in any group stops the composition with
Hydra's message naming the full key (``backbones.detector.imgsz``). On the command line, :func:`check_overrides`
refuses an unknown key (``backbone=random``, ``+backbone=random``, ``model.nmae=x``) or group option before Hydra
composes, with a "did you mean"; keys that reach a composed config past the schema (the API, a ``--config-dir``'s
YAML) are refused by :func:`tise_bench.runner.resolve_config` before any work.

Where the defaults live (one place each):

* the backbones' keys and code defaults: their registered config dataclasses
  (``@register_backbone(..., config=...)``, :mod:`tise_bench.backbones.registry`), reused here as they are;
  the YAML files of the ``backbones`` group set only what differs (weights, ``amp``, the random caps);
* ``metrics.params.<id>``: each metric's parameter dataclass (``register_metric(params=...)``), one typed
  block per registered metric (:func:`metric_params_schema`); the YAML sets no parameter unless it differs
  (``data=cub`` sets IS*'s network);
* ``metrics.crops``: :class:`tise_bench.features.crops.CropSpec`; ``max_pixels``: Pillow's guard
  (:data:`tise_bench.imagefile.DEFAULT_MAX_PIXELS`); ``max_file_bytes``: largest image file read
  (:data:`tise_bench.imagefile.DEFAULT_MAX_FILE_BYTES`);
* ``model.layout`` / ``model.subset_dirs``: :class:`ModelConfig`;
* ``bootstrap``: :class:`tise_bench.bootstrap.BootstrapSpec`;
* every other value (top-level switches, ``paths``, the eval sets, the metric ids): the YAML,
  the schema gives only its type (``???`` until a config file sets it).

The TISE baselines (:data:`TISE_BASELINES`) are generated options of the ``model`` group: ``model=dfgan``
is ``name: dfgan``, ``samples_dir: ${paths.samples_root}/dfgan/${data.name}``.
"""

from __future__ import annotations

import difflib
import importlib.resources
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, make_dataclass
from functools import cache
from pathlib import Path
from typing import Any, Optional

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.singleton import Singleton
from hydra.core.utils import JobRuntime
from hydra.version import VersionBase
from omegaconf import MISSING as REQUIRED  # '???': the YAML must set it
from omegaconf import DictConfig, ListConfig, OmegaConf

from .backbones.registry import BackboneSetConfig, all_backbones
from .errors import ConfigError
from .registry import all_metrics
from .evalset import SUBSETS
from .features.crops import CropSpec
from .imagefile import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS

#: The stored schema ``configs/config.yaml`` extends first (its defaults list).
SCHEMA_NAME = "tise_schema"

#: TISE's baselines (``model=<name>``; images in ``${paths.samples_root}/<name>/${data.name}``).
TISE_BASELINES = (
    "attngan",
    "attngan_plus",
    "dmgan",
    "cpgan",
    "drgan",
    "dfgan",
    "stackgan",
    "objgan",
    "opgan",
    "xmcgan",
    "lafite",
    "sd15",
)


def _mutable(cls: type, name: str | None = None) -> type:
    """A non-frozen dataclass with ``cls``'s fields, types and defaults (Hydra overrides need mutable nodes;
    the registered dataclasses are frozen). The fields stay declared once, on ``cls``."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in fields(cls):
        if f.default is not MISSING:
            spec = field(default=f.default)
        elif f.default_factory is not MISSING:
            spec = field(default_factory=f.default_factory)
        else:
            spec = field()
        specs.append((f.name, hints[f.name], spec))
    return make_dataclass(name or cls.__name__, specs, namespace={"__doc__": cls.__doc__})


@dataclass
class PathsConfig:
    results_dir: str = REQUIRED
    cache_dir: str = REQUIRED
    samples_root: str = REQUIRED
    data_root: str = REQUIRED


@dataclass
class DataConfig:
    """One eval set: ``kind: manifests`` (``manifest`` and/or ``subsets``) or ``kind: demo`` (``root``,
    ``n_prompts``, ``image_size``, ``seed``: the embedded demo's generator)."""

    name: str = REQUIRED
    kind: str = "manifests"  # manifests | demo
    domain: Optional[str] = None  # coco | cub: which of TISE's protocols applies (null: none named)
    manifest: Optional[str] = None  # one manifest for every subset
    subsets: dict[str, Optional[str]] = field(default_factory=dict)  # per-subset manifests
    # an .npz with mu/sigma of pool3 and a 'feature_extractor' key (evalset.write_reference_stats), serves FID
    reference_stats: Optional[str] = None
    # what made a reference_stats file without a 'feature_extractor' key: torch-fidelity-inception-v3-compat |
    # pytorch-fid (comparable) | tise-torchvision (TISE's coco_val.npz / bird_val.npz: refused, not comparable)
    reference_stats_extractor: Optional[str] = None
    root: Optional[str] = None
    n_prompts: Optional[int] = None
    image_size: Optional[int] = None
    seed: Optional[int] = None
    # a quick look: score only the first N records of each subset (file order); null: all (evalset.apply_limit)
    limit: Optional[int] = None


#: ``model.subset_dirs``: one optional folder per subset of the eval sets (overrides ``samples_dir``).
SubsetDirs = make_dataclass("SubsetDirs", [(s, Optional[str], field(default=None)) for s in SUBSETS])


@dataclass
class ModelConfig:
    name: str = REQUIRED
    samples_dir: Optional[str] = None  # <id>.png or <id>_<k>.png files
    suite: Optional[list[str]] = None  # several demo models in one run (model=demo_all)
    layout: str = "flat"  # flat: <id>.png | tise: TISE's generator folders (pa/<word>/, soa/label_XX_<name>/)
    subset_dirs: Any = field(default_factory=SubsetDirs)  # per-subset image folders (TISE keeps one per subset)
    step: Optional[int] = None  # training step of a checkpoint (the leaderboard's metric-vs-step plots)


def metric_params_schema() -> DictConfig:
    """``metrics.params``: one typed block per registered metric, built from the metric's parameter dataclass
    (``register_metric(params=...)``, where the defaults live), plus ``subset`` (every metric accepts it). A node of
    blocks rather than a dataclass: metric ids such as ``is`` are Python keywords."""
    blocks = {}
    for mid, spec in all_metrics().items():
        own = [(f.name, t, field(default=f.default)) for f, t in _fields(spec.params)]
        block = make_dataclass(f"{mid}_params", [*own, ("subset", Optional[str], field(default=None))])
        blocks[mid] = OmegaConf.structured(block)
    node = OmegaConf.create(blocks)
    OmegaConf.set_struct(node, True)
    return node


def _fields(cls: type | None) -> list[tuple[Any, Any]]:
    if cls is None:
        return []
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in fields(cls)]


@dataclass
class MetricsConfig:
    ids: list[str] = REQUIRED
    params: dict[str, Any] = field(default_factory=dict)  # typed per metric by register(): metric_params_schema()
    crops: Any = field(default_factory=_mutable(CropSpec, "CropsConfig"))


@cache
def backbones_schema() -> type:
    """The ``backbones`` group: :class:`BackboneSetConfig`'s keys, then one optional block per registered
    backbone typed by its config dataclass (null = not configured: a metric needing it is refused)."""
    base = _mutable(BackboneSetConfig)
    specs: list[tuple[str, Any, Any]] = [(f.name, f.type, field(default=f.default)) for f in fields(base)]
    specs += [(name, Optional[_mutable(e.config)], field(default=None)) for name, e in sorted(all_backbones().items())]
    return make_dataclass("BackbonesConfig", specs, namespace={"__doc__": backbones_schema.__doc__})


@cache
def _bootstrap_config() -> type:
    """``bootstrap``: :class:`tise_bench.bootstrap.BootstrapSpec`, where its defaults live."""
    from .bootstrap import BootstrapSpec

    return _mutable(BootstrapSpec, "BootstrapConfig")


@cache
def schema() -> type:
    """The whole config: top-level switches, then the groups."""
    return make_dataclass(
        "TiseConfig",
        [
            ("on_mismatch", str, field(default=REQUIRED)),
            ("on_bad_image", str, field(default=REQUIRED)),
            ("on_unsupported", str, field(default=REQUIRED)),
            ("batch_size", int, field(default=REQUIRED)),
            ("max_pixels", Optional[int], field(default=DEFAULT_MAX_PIXELS)),  # null disables the guard
            ("max_file_bytes", Optional[int], field(default=DEFAULT_MAX_FILE_BYTES)),  # null: no size limit
            ("num_workers", Optional[int], field(default=None)),  # input worker threads; null: cores + 1 (<= 8)
            ("progress", bool, field(default=REQUIRED)),
            ("print_table", bool, field(default=REQUIRED)),
            ("verbose", bool, field(default=REQUIRED)),  # other libraries' log records below ERROR shown
            ("bootstrap", _bootstrap_config(), field(default_factory=_bootstrap_config())),
            ("paths", PathsConfig, field(default_factory=PathsConfig)),
            ("data", DataConfig, field(default_factory=DataConfig)),
            ("model", ModelConfig, field(default_factory=ModelConfig)),
            ("backbones", backbones_schema(), field(default_factory=backbones_schema())),
            ("metrics", MetricsConfig, field(default_factory=MetricsConfig)),
        ],
    )


def baseline(name: str) -> ModelConfig:
    """``model=<name>`` for a TISE baseline."""
    return ModelConfig(name=name, samples_dir=f"${{paths.samples_root}}/{name}/${{data.name}}")


def schema_node() -> DictConfig:
    """The schema as the config node ``config.yaml`` extends (``metrics.params`` typed per registered metric)."""
    node = OmegaConf.structured(schema())
    node.metrics.params = metric_params_schema()
    return node


def register() -> None:
    """Store the schema and the generated ``model`` options in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name=SCHEMA_NAME, node=schema_node())
    for name in TISE_BASELINES:
        cs.store(group="model", name=name, node=baseline(name))


def not_a_setting(path: str, valid: Sequence[str], owner: str, *, override: str | None = None) -> str:
    """The one message for a key the schema does not declare (``path``, dotted): where it is, the closest valid key
    (difflib), the valid keys and the fix; ``override``: the command-line text it came from, corrected in the fix."""
    where, _, key = path.rpartition(".")
    prefix = f"{where}." if where else ""
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {prefix}{close[0]}?" if close else ""
    fix, said = "remove or rename it", ""
    if override is not None:
        head, eq, value = override.partition("=")
        full = head.lstrip("+~")
        said = "" if full == path else f"{override}: "
        if close:  # the declared key needs no '+'
            fix = f"pass {'~' if head.startswith('~') else ''}{prefix}{close[0]}{full[len(path) :]}{eq}{value} instead"
    place = f"{where} ({owner}" if where else f"the config ({owner}"
    groups = "" if where else f" nor a config group (tise_bench/configs/: {', '.join(config_groups())})"
    return (
        f"{said}{path} is not a setting of {place}, tise_bench/config_schema.py){groups}.{hint} "
        f"Valid keys: {', '.join(valid)}; fix: {fix}."
    )


@cache
def config_groups(config_dir: str | None = None) -> dict[str, tuple[str, ...]]:
    """Config group -> its options: the folders of ``tise_bench/configs/`` (and of a ``--config-dir``), plus the
    options :func:`register` stores (the TISE baselines of ``model``)."""
    register()
    found: dict[str, set[str]] = {}
    roots: list[Any] = [importlib.resources.files("tise_bench.configs")]
    if config_dir and Path(config_dir).is_dir():
        roots.append(Path(config_dir))
    for root in roots:
        for d in root.iterdir():
            if d.is_dir() and not d.name.startswith(("_", ".")):
                found.setdefault(d.name, set()).update(f.name[:-5] for f in d.iterdir() if f.name.endswith(".yaml"))
    cs = ConfigStore.instance()
    for group in cs.list(""):
        if group != "hydra" and not group.endswith(".yaml"):
            found.setdefault(group, set()).update(n[:-5] for n in cs.list(group) if n.endswith(".yaml"))
    return {g: tuple(sorted(opts)) for g, opts in sorted(found.items())}


def check_overrides(overrides: Sequence[str], config_dir: str | None = None) -> None:
    """Refuse command-line overrides that name a key the schema does not declare or a config group option that
    does not exist, before Hydra composes anything (and so before it writes its run folder), all in one message
    with a "did you mean". Hydra's own answer to ``backbone=random`` is to suggest ``+backbone=random``; a key past
    the schema is never what a user means, so it is refused whatever the prefix. Hydra's settings (``hydra.*``),
    ``group@package`` forms and overrides Hydra cannot parse are left to Hydra."""
    from hydra.errors import OverrideParseException
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Override

    try:
        parsed: list[Override] = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException:
        return  # Hydra's parser message names the bad override
    groups = config_groups(config_dir)
    options_known = not config_dir or Path(config_dir).is_dir()  # a pkg:// config dir: its options are Hydra's to find
    root = schema_node()
    problems: list[str] = []
    for o in parsed:
        key = o.key_or_group
        if key.split(".")[0] == "hydra" or "/" in key or o.package is not None:
            continue
        if key in groups and not o.is_delete():
            if options_known:
                problems += [_unknown_option(key, c, groups[key]) for c in _choices(o) if c not in groups[key]]
        elif problem := _unknown_key(root, o.input_line or key, key.split("."), groups):
            problems.append(problem)
    if problems:
        raise ConfigError(" ".join(problems) + " Nothing was run.")


def _choices(o: Any) -> list[str]:
    """The option names a group override picks (each of a choice sweep; globs and ranges: Hydra expands them)."""
    if o.is_sweep_override():
        try:
            return [str(c) for c in o.sweep_string_iterator()]
        except Exception:  # glob() and range() sweeps are expanded by Hydra against the real options
            return []
    value = o.value()
    return [value] if isinstance(value, str) else []


def _unknown_option(group: str, choice: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(choice, options, n=1)
    hint = f" Did you mean {group}={close[0]}?" if close else ""
    fix = (
        f"pass {group}={close[0]}"
        if close
        else f"pick one of the options or add tise_bench/configs/{group}/{choice}.yaml"
    )
    return (
        f"{group}={choice}: the config group {group} has no option {choice!r} "
        f"(tise_bench/configs/{group}/).{hint} Options: {', '.join(options)}; fix: {fix}."
    )


def _unknown_key(root: DictConfig, override: str, parts: list[str], groups: Mapping[str, Any]) -> str | None:
    """The message for the first part of ``parts`` the schema does not declare (None: every part is declared, or
    the path enters a free-form mapping such as ``data.subsets``)."""
    node: Any = root
    for i, part in enumerate(parts):
        where = ".".join(parts[:i])
        if isinstance(node, DictConfig) and node._is_none():  # an unset optional block (backbones.clip): its keys
            ref = node._metadata.ref_type
            if not is_dataclass(ref):
                return None
            node = OmegaConf.structured(ref)
        if not isinstance(node, DictConfig):
            if isinstance(node, ListConfig):
                return None  # list items: Hydra checks the index
            return (
                f"{override}: {where} is a single value, not a group of settings (tise_bench/config_schema.py); "
                f"fix: {where}=<value>."
            )
        if OmegaConf.get_type(node) is dict and len(node) == 0:
            return None  # a free-form mapping the schema leaves empty (data.subsets): any key
        valid = list(map(str, node.keys()))  # keys(), not `in`: a required key ('???') is declared too
        if part not in valid:
            if not where:
                valid += [g for g in groups if g not in valid]
            owner = getattr(OmegaConf.get_type(node), "__name__", "dict") if where else "TiseConfig"
            return not_a_setting(".".join(parts[: i + 1]), valid, owner, override=override)
        node = node._get_node(part)
    return None


#: Hydra's process-wide state that composing touches; saved and restored around :func:`compose`.
_HYDRA_STATE = (GlobalHydra, JobRuntime, VersionBase)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``python -m tise_bench <overrides>`` would run, composed with Hydra's compose API.

    Works repeatedly and from inside a Hydra app (or a test's ``initialize`` block): Hydra's global state is
    set aside while composing and put back afterwards, unchanged.
    """
    register()
    saved: dict[type, Any] = {k: Singleton._instances.pop(k) for k in _HYDRA_STATE if k in Singleton._instances}
    try:
        with hydra.initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
            return hydra.compose("config", overrides=list(overrides))
    finally:
        for k in _HYDRA_STATE:
            Singleton._instances.pop(k, None)
        Singleton._instances.update(saved)


__all__ = [
    "SCHEMA_NAME",
    "TISE_BASELINES",
    "baseline",
    "backbones_schema",
    "check_overrides",
    "compose",
    "config_groups",
    "metric_params_schema",
    "not_a_setting",
    "register",
    "schema",
    "schema_node",
]
