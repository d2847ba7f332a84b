"""An eval set: named subsets of records (SPEC §1), from manifests, a single custom manifest or the demo."""

from __future__ import annotations

import logging
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.manifest import Record, load_manifest
from .errors import ConfigError, DataError
from .fsutil import Place, atomic_write

log = logging.getLogger(__name__)

SUBSETS = ("realism", "rp", "pa", "ca", "soa")


def all_subsets() -> tuple[str, ...]:
    """Every subset a metric reads: TISE's five, then those the registered metrics declare (``geneval``,
    ``spatial``, ``numeracy``, ...). One custom manifest (``data.manifest``, the API's ``manifest=``) serves them all."""
    from .registry import all_metrics

    return SUBSETS + tuple(sorted({spec.subset for spec in all_metrics().values()} - set(SUBSETS)))


DOMAINS = ("coco", "cub")


@dataclass
class EvalSet:
    """Named subsets of records, plus where they came from (``sources``: subset -> manifest path)."""

    name: str
    subsets: dict[str, list[Record]]
    reference_stats: str | None = None  # optional .npz with mu/sigma (pool3) replacing reference images
    reference_stats_extractor: str | None = None  # what made a keyless reference_stats file (see REFERENCE_EXTRACTORS)
    domain: str | None = None  # "coco" | "cub": which of TISE's protocols applies (data.domain)
    demo_models_dir: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    #: ``data.limit``: only the first ``limit`` records of each subset are kept (:func:`apply_limit`); None: all
    limit: int | None = None
    #: the records each subset left out under ``limit`` (their images are expected in the folder, not extras)
    beyond_limit: dict[str, list[Record]] = field(default_factory=dict)

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
        raise ConfigError(
            "data.name is required (e.g. data=coco, or data=custom data.name=<name> data.manifest=<file>)"
        )
    kind = cfg.get("kind", "manifests")
    limit = check_limit(cfg.get("limit"))  # refused before any manifest is read
    domain = cfg.get("domain") or None
    if domain is not None and str(domain).lower() not in DOMAINS:
        raise ConfigError(
            f"data.domain={domain!r} is not valid; choose one of {', '.join(DOMAINS)} or null "
            f"(which of TISE's protocols applies to this eval set)"
        )
    domain = None if domain is None else str(domain).lower()
    stats = cfg.get("reference_stats")
    if stats and not Path(stats).is_file():
        raise DataError(
            f"data.reference_stats={stats} does not exist; give the .npz written by pytorch-fid/TISE "
            f"(arrays 'mu', 'sigma'), or unset it to compute statistics from the reference images"
        )
    declared = cfg.get("reference_stats_extractor") or None
    if declared is not None:
        _known_extractor(str(declared))
        if not stats:
            raise ConfigError(
                f"data.reference_stats_extractor={declared} is set but data.reference_stats is not; "
                f"it says what made a reference-statistics file, so give the file too (or unset it)"
            )
        declared = str(declared)
    if kind == "demo":
        from .data.demo import prepare_demo

        demo = prepare_demo(
            Path(cfg.get("root") or Path(cache_dir) / "demo"),
            n_prompts=int(cfg.get("n_prompts", 40)),
            image_size=int(cfg.get("image_size", 128)),
            seed=int(cfg.get("seed", 0)),
        )
        subsets = {s: load_manifest(p) for s, p in demo.manifests.items()}
        return apply_limit(
            EvalSet(
                name=name,
                subsets=subsets,
                reference_stats=stats,
                demo_models_dir=str(demo.models_dir),
                sources={s: str(p) for s, p in demo.manifests.items()},
                reference_stats_extractor=declared,
                domain=domain,
            ),
            limit,
        )
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
            raise DataError(
                f"data={name}: manifest for subset {s!r} not found at {p}. "
                f"Prepare it (python -m tise_bench.prepare) or fix data.subsets.{s} / data.manifest."
            )
    loaded = {s: load_manifest(p) for s, p in paths.items()}
    if "all" in loaded:  # one custom manifest serves every subset
        recs = loaded.pop("all")
        for s in all_subsets():
            loaded.setdefault(s, recs)
    return apply_limit(
        EvalSet(
            name=name,
            subsets=loaded,
            reference_stats=stats,
            sources=paths,
            reference_stats_extractor=declared,
            domain=domain,
        ),
        limit,
    )


def check_limit(value: Any) -> int | None:
    """``data.limit`` -> a positive int or None; anything else is refused naming the key."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"data.limit={value!r} is not valid: give a whole number >= 1 (score the first N prompts of each "
            f"subset), or null (data.limit=null) to score them all"
        )
    return value


def apply_limit(evalset: EvalSet, limit: int | None) -> EvalSet:
    """Keep the first ``limit`` records of each subset (file order), in place; returns ``evalset``.

    Every metric then reads the same records; reference images follow the kept records (those of the records
    left out are not read), while a ``data.reference_stats`` file is used as it is (statistics of its whole
    reference set). The records left out go to ``evalset.beyond_limit``: their images in the model's folder are
    expected, not extras (:func:`tise_bench.data.samples.find_images_layout`).
    """
    limit = check_limit(limit)
    if limit is None:
        return evalset
    sizes = {s: len(recs) for s, recs in evalset.subsets.items()}
    evalset.beyond_limit = {s: recs[limit:] for s, recs in evalset.subsets.items()}
    evalset.subsets = {s: recs[:limit] for s, recs in evalset.subsets.items()}
    evalset.limit = limit
    counts = sorted(set(sizes.values()))
    of = str(counts[0]) if len(counts) == 1 else ", ".join(f"{n} ({s})" for s, n in sizes.items())
    log.info("data.limit=%d: scoring the first %d of %s prompts per subset", limit, limit, of)
    return evalset


def _stats_array(z: Any, key: str, path: str) -> np.ndarray:
    try:
        return np.asarray(z[key], dtype=np.float64)
    except (ValueError, TypeError) as e:  # object arrays (allow_pickle=False) or non-numeric data
        raise DataError(
            f"data.reference_stats={path}: array {key!r} is not numeric ({e}); write it with "
            f"numpy.savez(path, mu=<float array>, sigma=<float array>)"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(
            f"data.reference_stats={path}: array {key!r} is unreadable ({e}); the file is corrupt, recompute it"
        ) from None


def load_reference_stats(
    path: str, dim: int, *, extractor: str | None = None, declared: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """mu/sigma from a reference-statistics .npz, validated against ``dim`` and the feature extractor.

    ``mu`` may be stored as ``(D,)``, ``(1, D)`` or ``(D, 1)``; ``sigma`` must be ``(D, D)``. Errors name the
    file, what was found, what was expected and how to fix it.

    ``extractor`` is this run's extractor (:func:`feature_extractor_id` of its Inception backbone). A file
    with a ``feature_extractor`` key (:func:`write_reference_stats`) is accepted only when the key equals it.
    A file without the key (torch-fidelity, pytorch-fid, TISE's ``coco_val.npz``) is accepted only with
    ``declared`` (``data.reference_stats_extractor``) naming one of :data:`REFERENCE_EXTRACTORS` that is
    comparable with ``extractor``; ``tise-torchvision`` is always refused. ``extractor=None`` skips the
    extractor check (only for re-reading a file that a run has already accepted, e.g. the leaderboard).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"data.reference_stats={path} does not exist; give the .npz written by pytorch-fid/TISE "
            f"(arrays 'mu', 'sigma'), or unset it to compute statistics from the reference images"
        )
    try:
        z = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"data.reference_stats={path} is not a readable .npz ({e}); recompute it") from None
    if not hasattr(z, "files"):  # np.load of a .npy gives a bare array
        raise DataError(
            f"data.reference_stats={path}: expected an .npz with arrays 'mu' and 'sigma', "
            f"got a single array of shape {getattr(z, 'shape', '?')}"
        )
    with z:
        if "mu" not in z.files or "sigma" not in z.files:
            raise DataError(
                f"data.reference_stats={path}: expected arrays 'mu' and 'sigma' (pytorch-fid format), found {z.files}"
            )
        mu, sigma = _stats_array(z, "mu", path), _stats_array(z, "sigma", path)
        made_by = _extractor_key(z, path)
    if mu.ndim == 2 and 1 in mu.shape and mu.size == dim:
        mu = mu.reshape(dim)
    if mu.shape != (dim,) or sigma.shape != (dim, dim):
        raise DataError(
            f"data.reference_stats={path}: reference statistics have mu {mu.shape} / sigma {sigma.shape}, "
            f"expected ({dim},) / ({dim}, {dim}) for Inception pool3; recompute them with the same "
            f"network (2048-d pool3 of inception-v3-compat), or unset data.reference_stats to use the "
            f"eval set's reference images"
        )
    bad = int((~np.isfinite(mu)).sum() + (~np.isfinite(sigma)).sum())
    if bad:
        raise DataError(
            f"data.reference_stats={path}: reference statistics contain {bad} NaN/inf values; recompute them"
        )
    if extractor is not None:
        check_reference_extractor(path, made_by, declared, extractor)
    return mu, sigma


# --------------------------------------------------------------------------------- who made the statistics
EXTRACTOR_KEY = "feature_extractor"
TF2015_IDENT = "inception-v3-compat-tf2015"
REFERENCE_EXTRACTORS: dict[str, tuple[bool, str]] = {
    "torch-fidelity-inception-v3-compat": (
        True,
        "torch-fidelity's inception-v3-compat (the TF 2015 FID Inception "
        "weights, TF1-compatible resize): the network this tool uses",
    ),
    "pytorch-fid": (
        True,
        "pytorch-fid's FIDInceptionA.. port of the same TF 2015 FID Inception weights (it resizes "
        "with torch bilinear interpolation, torch-fidelity with a TF1-compatible resize: values "
        "differ slightly, in the decimals)",
    ),
    "tise-torchvision": (
        False,
        "TISE's image_realism/FID and object_fidelity/O-FID use torchvision's ImageNet "
        "inception_v3(pretrained=True) (not the TF 2015 FID weights), fed [0,1] images with "
        "torchvision's own input normalisation: its pool3 features, and so coco_val.npz / "
        "bird_val.npz, are not comparable with inception-v3-compat features",
    ),
}
"""Names ``data.reference_stats_extractor`` accepts for a file without a ``feature_extractor`` key:
name -> (comparable with this tool's inception-v3-compat TF 2015 features, what made it)."""


def feature_extractor_id(backbone: Any) -> str:
    """The identity reference statistics are tied to: ``<ident>:<first 16 hex of the weights' sha256>``, e.g.
    ``inception-v3-compat-tf2015:6726825d...``; ``backbone`` is an ImageBackbone (``ident``, ``weights_hash``)."""
    return f"{backbone.ident}:{str(backbone.weights_hash)[:16]}"


def write_reference_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray, *, extractor: str) -> Path:
    """Write mu/sigma (pytorch-fid's array names) plus ``feature_extractor`` = ``extractor`` (use
    :func:`feature_extractor_id` of the Inception backbone that made the features); returns the path."""
    if not extractor or not isinstance(extractor, str):
        raise ConfigError("write_reference_stats needs extractor=<feature_extractor_id(backbone)>")
    mu, sigma = np.asarray(mu, dtype=np.float64).reshape(-1), np.asarray(sigma, dtype=np.float64)
    if sigma.shape != (mu.size, mu.size):
        raise DataError(f"reference statistics: sigma {sigma.shape} does not match mu ({mu.size},)")

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to the temporary name
            # numpy's stub types savez(**kwds: ArrayLike) beside allow_pickle: bool, so mypy rejects any **dict
            np.savez(f, mu=mu, sigma=sigma, **{EXTRACTOR_KEY: np.asarray(extractor)})  # type: ignore[arg-type]

    return atomic_write(path, save, Place("reference statistics folder", "another path"))


def _known_extractor(name: str) -> tuple[bool, str]:
    if name not in REFERENCE_EXTRACTORS:
        raise ConfigError(
            f"data.reference_stats_extractor={name!r} is not known; choose one of "
            f"{sorted(REFERENCE_EXTRACTORS)} (what made the file), or write the file with "
            f"tise_bench.evalset.write_reference_stats"
        )
    return REFERENCE_EXTRACTORS[name]


def _extractor_key(z: Any, path: str) -> str | None:
    if EXTRACTOR_KEY not in z.files:
        return None
    try:
        v = z[EXTRACTOR_KEY]
    except ValueError:  # an object array (allow_pickle=False)
        v = None
    if v is None or v.dtype.kind not in "US" or v.size != 1:
        raise DataError(
            f"data.reference_stats={path}: {EXTRACTOR_KEY!r} must be a single string "
            f"(write the file with tise_bench.evalset.write_reference_stats)"
        )
    v = v.reshape(()).item()
    return v.decode() if isinstance(v, bytes) else str(v)


def check_reference_extractor(path: str, made_by: str | None, declared: str | None, extractor: str) -> None:
    """Refuse reference statistics whose feature extractor is not this run's (see :func:`load_reference_stats`)."""
    if made_by is not None:
        if declared is not None:
            raise ConfigError(
                f"data.reference_stats={path} says it was made by {made_by!r} ({EXTRACTOR_KEY} key); "
                f"unset data.reference_stats_extractor={declared} (it is only for files without the key)"
            )
        if made_by != extractor:
            raise DataError(
                f"data.reference_stats={path} was made by {made_by!r}, but this run's Inception is "
                f"{extractor!r}: FID against it would compare features of different networks. Use "
                f"statistics made with the same Inception weights, or unset data.reference_stats to "
                f"compute them from the eval set's reference images"
            )
        return
    if declared is None:
        raise DataError(
            f"data.reference_stats={path} does not say which feature extractor made it (no "
            f"{EXTRACTOR_KEY!r} key). If you know, say so with data.reference_stats_extractor=<name>, "
            f"one of {sorted(REFERENCE_EXTRACTORS)} (TISE's coco_val.npz / bird_val.npz: "
            f"tise-torchvision, which is refused as not comparable); or unset data.reference_stats to "
            f"compute the statistics from the eval set's reference images"
        )
    comparable, what = _known_extractor(declared)
    if not comparable:
        raise DataError(
            f"data.reference_stats={path} (data.reference_stats_extractor={declared}) cannot be used: "
            f"{what}. FID against it would not be comparable with this tool's (or TISE's published) "
            f"numbers. Unset data.reference_stats to compute the statistics from the eval set's reference "
            f"images with inception-v3-compat"
        )
    if extractor.split(":", 1)[0] != TF2015_IDENT:
        raise DataError(
            f"data.reference_stats={path} was made by {declared} ({what}), but this run's Inception is "
            f"{extractor!r}, not the TF 2015 weights ({TF2015_IDENT}); unset data.reference_stats "
            f"(random-weights runs compute statistics from the reference images)"
        )
