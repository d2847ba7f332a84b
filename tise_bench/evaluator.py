"""``tise_bench.Evaluator``: the TISE metrics as a stateful evaluator for training loops (torchmetrics' habit).

    ev = tise_bench.Evaluator(metrics=["clip_score", "is", "fid"], backbones="real")
    for images, captions, real in loader:          # every rank of a DDP job, its own shard
        ev.update(images, captions, references=real)
    result = ev.compute()                          # the same EvalResult on every rank
    ev.reset()                                     # next evaluation: new samples, same networks

The configuration is the CLI's (:func:`tise_bench.api._config`: ``backbones=<real|random>``, ``model=folder``,
``data=custom``, the arguments merged over it); the metrics are planned and their backbones built **once**, in the
constructor, and stay resident across ``update`` / ``compute`` / ``reset``. ``update`` runs the image forwards at
once (in-memory images: no file is written, and their features are kept in memory only, see
:mod:`tise_bench.features.memory`); ``compute`` embeds the captions (disk-cached, as the CLI does), scores and builds
the result through :func:`tise_bench.pipeline.finish`, the second half of the CLI's own path, so values equal the
CLI's on PNG files of the same pixels.

Under ``torch.distributed`` (a group the caller initialised, world size > 1) ``compute`` gathers every rank's
accumulated features and records (``all_gather_object``, rank order) and every rank returns the same result.
As torchmetrics' ``Metric.sync`` does (``metric.py``, ``utilities/distributed.py``): list states are concatenated
locally before one gather, a rank with no samples contributes an empty state, the local state is left as it was
(accumulation goes on after ``compute``; ``sync_on_compute=False`` computes on the local samples) and
``process_group`` selects the group. Where it differs: the state (ragged feature arrays, object crops, records) is
gathered as one pickled object per rank instead of padded tensors per state; ``compute`` does not cache its result
(torchmetrics' ``compute_with_cache``): a second call recomputes; ids must be unique across ranks (refused, naming
the ranks), since a record's id names its image.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .api import NO_REPLICATES, UNSUPPORTED_FIX, _config, _to_pil
from .backbones import build_backbones
from .backbones.base import forward_counts
from .data.manifest import Record
from .data.samples import SampleReport
from .errors import ConfigError
from .evalset import EvalSet, all_subsets
from .features.bank import FeatureBank, ImageFeatures
from .features.memory import KEY_PREFIX, MemoryImage, is_memory_key
from .fsutil import CACHE, check_writable
from .imagefile import DEFAULT_MAX_FILE_BYTES
from .names import check_file_id, check_name
from .pipeline import (
    Extracted,
    crop_request,
    embed_texts,
    finish,
    plan,
    reference_paths,
    split_needs,
)
from .planning import resolve_metrics
from .results import EvalResult
from .runner import crop_spec, resolve_config

log = logging.getLogger(__name__)

#: Keys of in-memory images (the results' ``file`` column; error messages name them).
GEN_KEY, REF_KEY = KEY_PREFIX + "images/{}", KEY_PREFIX + "references/{}"


@dataclass
class _State:
    """What one rank accumulated since the last reset: its records (in update order), the key of each record's
    generated image, and the features of every image row (generated, then references, per update)."""

    records: list[Record] = field(default_factory=list)
    gen_keys: list[str] = field(default_factory=list)
    chunks: list[ImageFeatures] = field(default_factory=list)
    forwards: dict[str, int] = field(default_factory=dict)


def _concat(chunks: Sequence[ImageFeatures]) -> ImageFeatures:
    """Feature passes joined row-wise; ``crops.owner`` offset to the joined rows (torchmetrics' ``dim_zero_cat``
    of list states, with the crop owners renumbered)."""
    paths: list[str] = []
    shas: list[str] = []
    bad: dict[str, str] = {}
    parts: dict[str, list[np.ndarray]] = {}
    for ch in chunks:
        for k, v in ch.features.items():
            v = np.asarray(v)
            if k == "crops.owner":
                v = v + len(paths)
            parts.setdefault(k, [])
            if v.shape[0] or not parts[k]:  # an empty pass's placeholder ((0,) / (0, 0)) only when nothing else
                parts[k] = [p for p in parts[k] if p.shape[0]] + [v]
        paths += ch.paths
        shas += ch.shas
        bad.update(ch.bad)
    features = {k: (np.concatenate(v) if len(v) > 1 else v[0]) for k, v in parts.items()}
    return ImageFeatures(paths=paths, shas=shas, features=features, bad=bad)


def _select(feats: ImageFeatures, order: list[str]) -> ImageFeatures:
    """The rows of ``order`` (first occurrence of each key; bad ones left out, as the bank leaves them out), in that
    order, crops following their images (each image's crops in their own order)."""
    row: dict[str, int] = {}
    for i, p in enumerate(feats.paths):
        row.setdefault(p, i)
    good = [p for p in order if p in row]
    idx = np.asarray([row[p] for p in good], dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for k, v in feats.features.items():
        if not k.startswith("crops."):
            out[k] = v[idx] if v.shape[0] else v
    if "crops.owner" in feats.features:
        new_of_old = np.full(len(feats.paths), -1, dtype=np.int64)
        new_of_old[idx] = np.arange(len(idx))
        owner = new_of_old[feats.features["crops.owner"]] if len(feats.paths) else np.zeros(0, np.int64)
        keep = np.nonzero(owner >= 0)[0]
        sel = keep[np.argsort(owner[keep], kind="stable")]
        for k, v in feats.features.items():
            if k.startswith("crops.") and k != "crops.owner":
                out[k] = v[sel] if v.shape[0] else v
        out["crops.owner"] = owner[sel]
    bad = {p: feats.bad[p] for p in order if p in feats.bad}
    return ImageFeatures(paths=good, shas=[feats.shas[i] for i in idx], features=out, bad=bad)


def _dist_group(process_group: Any) -> tuple[int, int]:
    """(rank, world size) in the caller's process group; (0, 1) without torch.distributed."""
    import torch.distributed as td

    if not (td.is_available() and td.is_initialized()):
        return 0, 1
    return td.get_rank(process_group), td.get_world_size(process_group)


class Evaluator:
    """The TISE metrics over samples given batch by batch; backbones built once and kept resident.

    Arguments are :func:`tise_bench.evaluate`'s (same meaning, same config): ``metrics`` (None: the default metrics
    the inputs support; named metrics the inputs cannot support raise :class:`ConfigError`, at construction when
    captions and references cannot serve them, else at :meth:`compute`), ``backbones`` ("real", "random" or a dict
    like the ``backbones`` config group), ``params``, ``cache_dir``, ``device``, ``batch_size``, ``num_workers``,
    ``name`` / ``data_name`` (the result's model and data names), ``crops``, ``bootstrap`` (default: no replicates),
    ``reference_stats`` (an .npz serving FID instead of reference images), ``on_bad_image``.

    ``process_group``: the torch.distributed group to gather over (None: the default group, when initialised);
    ``sync_on_compute=False`` computes on this rank's samples only.

    In-memory images' features are kept in memory (never in the disk cache: a training loop's samples are new at
    every evaluation, so caching them would only grow the cache); reference images given as file paths use the
    disk cache as the CLI does (a fixed validation set is extracted once, ever). Caption embeddings use the disk
    cache.
    """

    def __init__(
        self,
        metrics: Sequence[str] | None = None,
        *,
        backbones: str | dict[str, Any] = "real",
        params: dict[str, dict[str, Any]] | None = None,
        cache_dir: str | Path | None = None,
        device: str | None = None,
        batch_size: int = 32,
        num_workers: int | None = None,
        name: str = "model",
        data_name: str = "custom",
        crops: dict[str, Any] | None = None,
        bootstrap: dict[str, int] | None = None,
        reference_stats: str | None = None,
        on_bad_image: str = "fail",
        process_group: Any = None,
        sync_on_compute: bool = True,
    ) -> None:
        check_name(name, "name")
        check_name(data_name, "data_name")
        cfg = _config(
            metrics=metrics,
            params=params,
            backbones=backbones,
            cache_dir=cache_dir,
            name=name,
            data_name=data_name,
            manifest=None,
            reference_stats=reference_stats,
            on_mismatch="fail",
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            crops=crops,
            bootstrap=bootstrap if bootstrap is not None else NO_REPLICATES,
        )
        cfg.on_bad_image = on_bad_image
        self.config: dict[str, Any] = resolve_config(cfg)
        self.name, self.data_name, self.reference_stats = name, data_name, reference_stats
        self.process_group, self.sync_on_compute = process_group, sync_on_compute
        paths, mcfg, bcfg = self.config["paths"], self.config["metrics"], self.config["backbones"]
        self.cache_dir = check_writable(paths["cache_dir"], CACHE)
        self._ids = list(mcfg["ids"])
        self._params = dict(mcfg.get("params") or {})
        self._on_unsupported = str(self.config.get("on_unsupported", "fail"))
        # Planned once, on records like those update() makes (caption + reference): the networks any later
        # compute() can need. compute() plans again on the records it has (which metrics run, not_applicable).
        self._plan = plan(
            self._ids,
            self._prototype(),
            self._params,
            bcfg,
            on_unsupported=self._on_unsupported,
            fix=UNSUPPORTED_FIX,
        )
        chosen, _ = resolve_metrics(self._plan.ids, self._prototype(), self._params)
        resolved = {spec.id: spec.resolve_params(self._params.get(spec.id)) for spec, _ in chosen}
        gen, ref, _, want_crops = split_needs(chosen, resolved)
        self._needs = {b: gen.get(b, set()) | ref.get(b, set()) for b in set(gen) | set(ref)}
        self.backbones = build_backbones(bcfg, self._plan.backbones, self.cache_dir)
        self.bank = FeatureBank(
            self.backbones,
            self.cache_dir,
            batch_size=int(self.config.get("batch_size", 32)),
            max_pixels=self.config.get("max_pixels"),
            max_file_bytes=self.config.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES),
            num_workers=self.config.get("num_workers"),
            progress=False,
        )
        self._crops = crop_request(crop_spec(mcfg, bcfg), self.backbones) if want_crops else None
        self._state = _State()
        self._seen: set[str] = set()

    def _prototype(self) -> EvalSet:
        """Records standing for those update() will make (a caption, a reference): what the plan is made on."""
        rec = [Record(id="prototype", caption="a caption", reference=REF_KEY.format("prototype"))]
        return EvalSet(self.data_name, {s: rec for s in all_subsets()}, reference_stats=self.reference_stats)

    # ---- accumulate -------------------------------------------------------------------------------------------
    def update(
        self,
        images: Any,
        captions: Sequence[str],
        references: Sequence[Any] | None = None,
        ids: Sequence[str] | None = None,
    ) -> None:
        """Add a batch: ``images`` (an NCHW / NHWC batch, or a sequence of CHW tensors (uint8, or float in [0, 1]),
        PIL images or uint8 HxWxC arrays), aligned ``captions``, optional ``references`` (real images, in memory or
        as file paths; needed by FID and CLIP-I2I) and ``ids`` (unique until :meth:`reset`, across ranks too;
        default: a running number, prefixed by the rank under torch.distributed). Image features are computed now;
        nothing is written to disk."""
        images = _as_list(images)
        captions = [str(c) for c in captions]
        if len(images) != len(captions):
            raise ConfigError(f"Evaluator.update(): {len(images)} images for {len(captions)} captions")
        n = len(images)
        if ids is None:
            rank, world = _dist_group(self.process_group)
            prefix = f"rank{rank}-" if world > 1 else ""
            start = len(self._state.records)
            ids = [f"{prefix}{start + i:06d}" for i in range(n)]
        ids = [str(i) for i in ids]
        if len(ids) != n:
            raise ConfigError(f"Evaluator.update(): {len(ids)} ids for {n} images")
        for i, rid in enumerate(ids):
            check_file_id(rid, f"ids[{i}]")
        refs: list[Any] = [None] * n if references is None else _as_list(references)
        if len(refs) != n:
            raise ConfigError(f"Evaluator.update(): {len(refs)} references for {n} images")
        ref_images: dict[str, Any] = {}
        records = []
        for rid, cap, r in zip(ids, captions, refs):
            if r is None or isinstance(r, (str, Path)):
                records.append(Record(id=rid, caption=cap, reference=None if r is None else str(Path(r).resolve())))
            else:
                records.append(Record(id=rid, caption=cap, reference=REF_KEY.format(rid)))
                ref_images[rid] = r
        self._add(images, records, ref_images)

    def _add(self, images: list[Any], records: list[Record], ref_images: Mapping[str, Any]) -> None:
        """Add records with their generated images (aligned) and in-memory reference images (by record id; other
        references are file paths). The one entry of :meth:`update` and of :func:`tise_bench.evaluate`."""
        seen = set(self._seen)
        for rid in (r.id for r in records):
            if rid in seen:
                raise ConfigError(
                    f"Evaluator.update(): id {rid!r} was given before; ids must be unique until reset() "
                    f"(leave ids=None for running numbers)"
                )
            seen.add(rid)
        sources = [MemoryImage(GEN_KEY.format(r.id), _to_pil(img)) for r, img in zip(records, images)]
        sources += [MemoryImage(REF_KEY.format(rid), _to_pil(img)) for rid, img in ref_images.items()]
        files = [str(r.reference) for r in records if r.reference and r.id not in ref_images]
        files = [p for p in dict.fromkeys(files) if p not in self._done_files()]
        missing = [p for p in files if not Path(p).is_file()]
        if missing:
            raise ConfigError(
                f"{len(missing)} reference images do not exist (first: {missing[0]}); fix the references' paths"
            )
        on_bad = str(self.config.get("on_bad_image", "fail"))
        fwd0 = forward_counts(self.backbones)
        chunks = [self.bank.images(sources, self._needs, on_bad=on_bad, crops=self._crops)] if sources else []
        if files:
            chunks.append(self.bank.images(files, self._needs, on_bad=on_bad, crops=self._crops))
        fwd1 = forward_counts(self.backbones)
        st = self._state
        st.records += records
        st.gen_keys += [s.key for s in sources[: len(records)]]
        st.chunks += chunks
        for k in fwd1:
            st.forwards[k] = st.forwards.get(k, 0) + fwd1[k] - fwd0[k]
        self._seen = seen

    def _done_files(self) -> set[str]:
        return {p for ch in self._state.chunks for p in ch.paths if not is_memory_key(p)}

    def reset(self) -> None:
        """Forget the accumulated samples (the backbones stay built)."""
        self._state = _State()
        self._seen = set()

    def __len__(self) -> int:
        """Records accumulated on this rank since the last reset."""
        return len(self._state.records)

    # ---- compute ----------------------------------------------------------------------------------------------
    def _gather(self) -> tuple[list[tuple[list[Record], list[str], ImageFeatures, dict[str, int]]], int]:
        """Every rank's (records, generated keys, features, forwards), in rank order, and the world size. Like
        torchmetrics' ``Metric.sync``: list states concatenated locally first, then one gather; the local state is
        left as it was (accumulation goes on after compute)."""
        st = self._state
        local = (st.records, st.gen_keys, _concat(st.chunks), st.forwards)
        rank, world = _dist_group(self.process_group) if self.sync_on_compute else (0, 1)
        if world == 1:
            return [local], 1
        import torch.distributed as td

        out: list[Any] = [None] * world
        td.all_gather_object(out, local, group=self.process_group)
        return out, world

    def compute(self) -> EvalResult:
        """The result over every sample since the last reset (every rank's, under torch.distributed): the same
        :class:`EvalResult` as :func:`tise_bench.evaluate` and the CLI give on these images."""
        states, world = self._gather()
        records = [r for recs, _, _, _ in states for r in recs]
        if not records:
            raise ConfigError("Evaluator.compute(): no samples; call update(images, captions) first")
        gen_key = {r.id: k for recs, keys, _, _ in states for r, k in zip(recs, keys)}
        if len(gen_key) != len(records):
            owners: dict[str, list[int]] = {}
            for rank, (recs, _, _, _) in enumerate(states):
                for r in recs:
                    owners.setdefault(r.id, []).append(rank)
            dup = {i: ranks for i, ranks in owners.items() if len(ranks) > 1}
            first = next(iter(dup))
            raise ConfigError(
                f"Evaluator.compute(): {len(dup)} ids were given on several ranks (first: {first!r} on ranks "
                f"{dup[first]}); ids must be unique across ranks (leave ids=None: running numbers prefixed by rank)"
            )
        feats = _concat([f for _, _, f, _ in states])
        evalset = EvalSet(self.data_name, {s: records for s in all_subsets()}, reference_stats=self.reference_stats)
        bcfg = self.config["backbones"]
        planned = plan(self._ids, evalset, self._params, bcfg, on_unsupported=self._on_unsupported, fix=UNSUPPORTED_FIX)
        chosen, not_applicable = resolve_metrics(planned.ids, evalset, self._params)
        params = {spec.id: spec.resolve_params(self._params.get(spec.id)) for spec, _ in chosen}
        gen_keys, ref_keys, _, want_crops = split_needs(chosen, params)
        used = sorted({s for _, s in chosen})
        by_id = {rid: [(0, gen_key[rid])] for rid in sorted(gen_key)}  # the folder scan's order (samples.find_images)
        gen_paths = [gen_key[rid] for rid in sorted(gen_key)]
        ref_paths = reference_paths(chosen, params, evalset)
        ex = Extracted(
            feats=(sel := _select(feats, list(dict.fromkeys(gen_paths + ref_paths)))),
            row_of={p: i for i, p in enumerate(sel.paths)},
            by_subset={s: by_id for s in used},
            report=SampleReport(),
            gen_paths=gen_paths,
            ref_paths=ref_paths,
            gen_keys=gen_keys,
            ref_keys=ref_keys,
            crops=self._crops if want_crops else None,
            text_emb={},
            truncated=set(),
        )
        fwd0 = forward_counts(self.backbones)
        ex.text_emb, ex.truncated, ex.other_text = embed_texts(chosen, params, evalset, self.bank, self.backbones)
        result = finish(
            model_name=self.name,
            evalset=evalset,
            chosen=chosen,
            not_applicable=not_applicable,
            params=params,
            ex=ex,
            bank=self.bank,
            backbones=self.backbones,
            config=self.config,
        )
        fwd1 = forward_counts(self.backbones)
        updates = {k: sum(f.get(k, 0) for _, _, _, f in states) for k in fwd1}
        # the updates' forwards (every rank's) and this compute's (caption embeddings)
        result.provenance["backbone_forwards"] = {k: updates[k] + fwd1[k] - fwd0[k] for k in fwd1}
        result.provenance["not_applicable"] = dict(planned.not_applicable)
        result.provenance["world_size"] = world
        return result

    def __repr__(self) -> str:
        return (
            f"Evaluator(metrics={self._plan.ids}, backbones={sorted(self.backbones)}, "
            f"samples={len(self._state.records)})"
        )


class _Planned(Evaluator):
    """An Evaluator planned on a known eval set (:func:`tise_bench.evaluate`: a manifest's records may carry the
    fields SOA, PA, CompBench read)."""

    def __init__(self, evalset: EvalSet, **kwargs: Any) -> None:
        self._given = evalset
        super().__init__(**kwargs)

    def _prototype(self) -> EvalSet:
        return self._given


def _as_list(images: Any) -> list[Any]:
    """A batch (NCHW / NHWC tensor or array, 4-D) or a sequence -> a list of single images."""
    if getattr(images, "ndim", None) == 4:
        return list(images)
    if isinstance(images, (str, Path)) or getattr(images, "ndim", None) == 3:
        raise ConfigError(
            "Evaluator.update(): give a batch of images (a 4-D tensor / array or a list), not a single image"
        )
    return list(images)
