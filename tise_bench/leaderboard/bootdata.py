"""Everything one run needs for the prompt bootstrap, read back from its result folder and the feature cache.

For each metric of ``metrics.json`` a :class:`Recipe` says how to recompute it on a resample of prompts:

* ``mean`` — from the per-sample column of ``samples.parquet``: CLIP-S, RefCLIP-S, CLIP-I2I, CA (means),
  RP (100·mean hit), PA (100·unweighted mean over the manifest's ``positional_word``), SOA-I (each image
  counted once per named class), SOA-C (unweighted mean over the manifest's classes); a ``percent`` metric
  (metrics.json ``unit``) with 0/1 per-sample hits is scaled by 100 (:func:`mean_scale`);
* ``is`` — IS / IS* / O-IS on the cached logits of the resampled images (or of their object crops), with the
  metric's temperature, splits and split seed (2020);
* ``fid`` — FID / O-FID on the cached pool3 features of the resampled images (crops), against reference
  statistics recomputed from the cached reference features (fixed across replicates).

Crops are rebuilt exactly as the feature bank builds them: cached detections → ``crop_boxes`` with the
run's crop spec → ``crop_key`` → the crop store.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.manifest import Record, load_manifest
from ..errors import DataError
from ..evalset import load_reference_stats
from ..features.crops import CropSpec, crop_boxes, crop_key
from ..features.store import FeatureStore
from ..metrics.inception import fid_statistics
from .resample import FidReplicator

_CROP_FIELDS = {f.name for f in fields(CropSpec)}
MEAN_SCALE = {"clip_rp": 100.0, "pa": 100.0}  # runs without a recorded unit: RP, PA percent; SOA a fraction
IS_METRICS = {"is": 1.0, "is_star": None, "o_is": None}  # None: temperature from metrics.json
FID_METRICS = ("fid", "o_fid")


@dataclass
class Recipe:
    """How to recompute one metric of one run on a prompt resample (see module docstring)."""

    metric: str
    subset: str
    kind: str  # "mean" | "is" | "fid"
    values: np.ndarray | None = None  # mean: per-row values (NaN = not scored)
    prompt_of_row: np.ndarray | None = None  # mean: prompt index per value row
    groups: np.ndarray | None = None
    row_weight: np.ndarray | None = None
    scale: float = 1.0
    logits: np.ndarray | None = None  # is
    temperature: float = 1.0
    splits: int = 10
    seed: int = 2020
    split_mode: str = "torch_fidelity"  # resample.IS_SPLITS: the metric's split procedure
    fid: FidReplicator | None = None  # fid
    crop_owner: np.ndarray | None = None  # is/fid on crops: sample position of each crop row
    sample_rank: np.ndarray | None = None  # o_is: the feature bank's row order of each sample (crop order)


@dataclass
class SubsetRows:
    """The prompts of one subset (manifest order) and this run's samples of them."""

    key: str  # draw key: runs whose subsets share it are resampled with the same prompt ids (paired)
    records: list[Record]
    table: pd.DataFrame  # this subset's rows of samples.parquet, in table order
    prompt_of_sample: np.ndarray


@dataclass
class RunData:
    model: str
    metrics: dict[str, Any]
    subsets: dict[str, SubsetRows] = field(default_factory=dict)
    recipes: dict[str, Recipe] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it has no interval


def _missing(model: str, metric: str, what: str, cache_dir: Path) -> DataError:
    return DataError(f"bootstrap of {model!r}/{metric}: {what} not found in the feature cache {cache_dir}. "
                     f"Features were evicted or another cache_dir was used: re-run the evaluation of {model!r} "
                     f"with paths.cache_dir={cache_dir}, then build the leaderboard again.")


class _Features:
    """Feature stores of one run, namespaced from metrics.json ``backbones``; errors name the fix."""

    def __init__(self, run: RunData, mj: dict[str, Any], cache_dir: Path) -> None:
        self.run, self.bb, self.cache = run, mj.get("backbones") or {}, cache_dir
        cfg = mj.get("config") or {}
        spec = dict((cfg.get("metrics") or {}).get("crops") or {})
        if "rounding" in _CROP_FIELDS and "rounding" not in spec:
            spec["rounding"] = "outward"  # runs written before metrics.crops.rounding existed rounded outwards
        cap = ((cfg.get("backbones") or {}).get("detector") or {}).get("max_crops")
        if cap and (spec.get("max_per_image") is None or cap < spec["max_per_image"]):
            spec["max_per_image"] = int(cap)  # same rule as runner.crop_spec
        self.crop_spec = CropSpec(**spec)

    def namespace(self, name: str, metric: str) -> str:
        b = self.bb.get(name)
        if not b:
            raise DataError(f"bootstrap of {self.run.model!r}/{metric}: metrics.json has no backbones.{name}")
        if b.get("namespace"):  # recorded by the run (includes the -amp16 suffix of fp16 CUDA features)
            return str(b["namespace"])
        return f"{b['ident']}-{b['weights_hash'][:16]}-{b['preproc_version']}{'-amp16' if b.get('amp_fp16') else ''}"

    def get(self, namespace: str, keys: list[str], feature: str, metric: str, what: str) -> np.ndarray:
        if not (self.cache / "features" / namespace).is_dir():
            raise _missing(self.run.model, metric, f"{what} (namespace {namespace})", self.cache)
        store = FeatureStore(self.cache, namespace)
        lost = [k for k in keys if k not in store]
        if lost:
            raise _missing(self.run.model, metric, f"{len(lost)} of {len(keys)} {what} (first {lost[0][:12]}…)",
                           self.cache)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return store.get(keys, (feature,))[feature]

    def crops(self, shas: list[str], crop_bb: str, feature: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """-> (features of every crop of ``shas``, owner = position in ``shas``), in the bank's order."""
        det_ns = self.namespace("detector", metric)
        uniq = list(dict.fromkeys(shas))
        dets = {k: self.get(det_ns, uniq, k, metric, "detections") for k in ("detections", "size")}
        plan = {}
        for i, s in enumerate(uniq):
            w, h = (int(round(v)) for v in dets["size"][i])
            plan[s] = [crop_key(s, b) for b in crop_boxes(dets["detections"][i], w, h, self.crop_spec)]
        keys = [k for s in shas for k in plan[s]]
        owner = np.asarray([i for i, s in enumerate(shas) for _ in plan[s]], dtype=np.int64)
        ns = f"crops-{self.crop_spec.tag}-{self.namespace(crop_bb, metric)}--on-{det_ns}"
        return self.get(ns, keys, feature, metric, "object-crop features"), owner


def _file_sha(path: str, model: str, metric: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"bootstrap of {model!r}/{metric}: reference image {p} listed in the eval-set manifest "
                        "is gone; restore it (reference statistics are recomputed from its cached features)")
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _targets(rec: Record) -> list[str]:
    return [rec.category] if rec.category else list(dict.fromkeys(rec.labels))


def mean_scale(mid: str, unit: str | None, column: np.ndarray) -> float:
    """Factor from the per-sample column's mean to the reported value.

    ``unit`` is the metrics.json entry's ``unit``. Without one (a run written before units were recorded) RP and
    PA were percent and SOA a fraction (:data:`MEAN_SCALE`). A ``percent`` metric whose per-sample values are
    hits in [0, 1] is scaled by 100; one whose per-sample values are already percent is not.
    """
    if unit is None:
        return MEAN_SCALE.get(mid, 1.0)
    if unit != "percent":
        return 1.0
    finite = column[np.isfinite(column)]
    return 100.0 if bool(np.all(np.abs(finite) <= 1.0)) else 1.0


def _mean_recipe(mid: str, sub: SubsetRows, column: np.ndarray, unit: str | None = None) -> Recipe:
    recs = [sub.records[p] for p in sub.prompt_of_sample]
    r = Recipe(mid, "", "mean", values=column, prompt_of_row=sub.prompt_of_sample,
               scale=mean_scale(mid, unit, column))
    if mid == "pa":
        words = [str(x.positional_word) for x in recs]
        r.groups = np.unique(words, return_inverse=True)[1]
    elif mid == "soa_i":
        r.row_weight = np.asarray([max(len(_targets(x)), 1) for x in recs], dtype=np.float64)
    elif mid == "soa_c":  # one row per (image, class); a multi-class image's mean is an approximation
        pairs = [(i, c) for i, x in enumerate(recs) for c in _targets(x)]  # the identity check catches it
        rows = np.asarray([i for i, _ in pairs], dtype=np.int64)
        r.values, r.prompt_of_row = column[rows], sub.prompt_of_sample[rows]
        r.groups = np.unique([c for _, c in pairs], return_inverse=True)[1]
    return r


def _params(mj: dict[str, Any], mid: str) -> dict[str, Any]:
    return dict(((mj.get("config") or {}).get("metrics") or {}).get("params", {}).get(mid) or {})


def _split_mode(mid: str, m: dict[str, Any]) -> str:
    """The IS split procedure the metric used (``split_mode`` in metrics.json; runs written before the option
    existed used torch-fidelity's); TISE's O-IS loop is its own procedure."""
    mode = str(m.get("split_mode") or "torch_fidelity")
    return "tise_objects" if mode == "tise" and mid == "o_is" else mode


def _feature_recipe(mid: str, run: RunData, mj: dict[str, Any], feats: _Features, sub: SubsetRows) -> Recipe:
    m, shas = mj["metrics"][mid], sub.table["sha256"].tolist()
    if mid in IS_METRICS:
        prm = _params(mj, mid)
        fixed_t = IS_METRICS[mid]
        t = fixed_t if fixed_t is not None else float(m.get("temperature", 1.0))
        r = Recipe(mid, sub.key, "is", temperature=t, splits=int(prm.get("splits", 10)),
                   seed=int(prm.get("seed", 2020)), split_mode=_split_mode(mid, m))
        if mid == "o_is":
            rank = _bank_rank(mj, run.model)
            r.sample_rank = np.asarray([rank.get(f, len(rank)) for f in sub.table["file"]], dtype=np.int64)
            bb, f = ("inception", "logits_unbiased") if m.get("fallback", True) else ("object_classifier", "logits")
            r.logits, r.crop_owner = feats.crops(shas, bb, f, mid)
        else:  # the network the metric read (IS* on CUB: TISE's bird classifier), recorded as "feature"
            bb, _, f = str(m.get("feature") or "inception.logits_unbiased").partition(".")
            r.logits = feats.get(feats.namespace(bb, mid), shas, f, mid, "generated logits")
        return r
    ns = feats.namespace("inception", mid)
    refs = list(dict.fromkeys(x.reference for x in sub.records if x.reference)) if mid == "o_fid" else \
        [x.reference for x in sub.records if x.reference]
    ref_shas = [_file_sha(p, run.model, mid) for p in refs]
    r = Recipe(mid, sub.key, "fid")
    if mid == "o_fid":  # TISE's object classifier pool3 unless the run fell back to inception-v3-compat
        crop_bb = "inception" if m.get("fallback", True) else "object_classifier"
        gen, r.crop_owner = feats.crops(shas, crop_bb, "pool3", mid)
        mu_r, sigma_r = fid_statistics(feats.crops(ref_shas, crop_bb, "pool3", mid)[0])
    else:
        gen = feats.get(ns, shas, "pool3", mid, "generated pool3 features")
        stats = (mj.get("eval_set") or {}).get("reference_stats")
        mu_r, sigma_r = load_reference_stats(stats, gen.shape[1]) if stats else \
            fid_statistics(feats.get(ns, ref_shas, "pool3", mid, "reference pool3 features"))
    r.fid = FidReplicator(gen, mu_r, sigma_r)
    return r


def _manifest(mj: dict[str, Any], subset: str, model: str) -> tuple[str, list[Record]]:
    man = (mj.get("eval_set") or {}).get("manifests") or {}
    path = man.get(subset) or man.get("all")
    if not path:
        raise DataError(f"bootstrap of {model!r}: metrics.json eval_set.manifests has no entry for subset {subset!r}")
    return path, load_manifest(path)


def _bank_rank(mj: dict[str, Any], model: str) -> dict[str, int]:
    """Image file -> its row in the evaluation's feature pass (ids of the used subsets in sorted subset order).

    The bank concatenates object crops in this order, and IS depends on the order through its split
    permutation, so O-IS replicates visit their samples in this order (identity resample = the point value).
    """
    used = sorted({m["subset"] for m in mj["metrics"].values() if m.get("subset")})
    ids = dict.fromkeys(r.id for s in used for r in _manifest(mj, s, model)[1])
    files: dict[str, list[str]] = {}
    for rid, f in zip(mj["_table"]["id"], mj["_table"]["file"]):
        files.setdefault(rid, [])
        if f not in files[rid]:
            files[rid].append(f)
    order = dict.fromkeys(f for rid in ids for f in files.get(rid, []))
    return {f: k for k, f in enumerate(order)}


def _subset(mj: dict[str, Any], table: pd.DataFrame, subset: str, model: str) -> SubsetRows:
    path, records = _manifest(mj, subset, model)
    pos = {r.id: i for i, r in enumerate(records)}
    rows = table[table["subset"] == subset]
    unknown = sorted(set(rows["id"]) - set(pos))
    if unknown:
        raise DataError(f"bootstrap of {model!r}: samples.parquet ids {unknown[:3]} are not in the manifest {path}; "
                        "the manifest changed since the run — re-run the evaluation")
    key = subset + ":" + hashlib.sha256("\n".join(r.id for r in records).encode()).hexdigest()[:16]
    return SubsetRows(key, records, rows.reset_index(drop=True),
                      np.asarray([pos[i] for i in rows["id"]], dtype=np.int64))


def load_run(model: str, run_dir: Path, cache_dir: Path) -> RunData:
    """Read ``metrics.json`` + ``samples.parquet`` of ``run_dir`` and prepare a recipe per metric."""
    mj = json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(Path(run_dir) / "samples.parquet")
    mj["_table"] = table
    run = RunData(model=model, metrics=mj.get("metrics") or {})
    feats = _Features(run, mj, Path(cache_dir))
    for mid, m in run.metrics.items():
        subset = m.get("subset")
        if m.get("value") is None or not subset:
            run.skipped[mid] = "no value in metrics.json"
            continue
        if subset not in run.subsets:
            run.subsets[subset] = _subset(mj, table, subset, model)
        sub = run.subsets[subset]
        if mid in IS_METRICS or mid in FID_METRICS:
            recipe = _feature_recipe(mid, run, mj, feats, sub)
        elif mid in sub.table.columns:
            recipe = _mean_recipe(mid, sub, sub.table[mid].to_numpy(dtype=np.float64), m.get("unit"))
        else:
            run.skipped[mid] = "no per-sample column in samples.parquet"
            continue
        recipe.subset = subset
        run.recipes[mid] = recipe
    return run
