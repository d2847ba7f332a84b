"""FeatureBank: every feature any selected metric needs, in one streaming pass over the images.

Each image file is read once and hashed; only images missing from some backbone's cache are decoded
(once, whatever the number of backbones), and each backbone applies its own preprocessing to the decoded
image. Features are cached per backbone namespace, keyed by the sha256 of the image bytes, so a
repeated run with nothing changed performs zero backbone forwards; identical files (the same bytes under
two names or two models) are computed once.

Input work runs beside the forwards (``num_workers``, issue 13): a pool of worker threads reads, hashes, decodes
and preprocesses (and cuts and preprocesses object crops), and a producer thread prepares the next
``prefetch`` batches while the current one runs through the backbones, so the device does not wait for one
Python thread. Pillow's decode and resize, hashlib and the file reads release the GIL, so threads scale with
cores without copying images between processes. Each worker runs torch with one intra-op thread (the workers are
the parallelism). The workers also collate each backbone's batches (copying every image's input into its row) and
cut the object crops into one buffer, so the thread running the forwards only runs them; the cache shards are
written by a writer thread (``store.ShardWriter``): serialise, checksum and atomic write happen off that thread too,
and every shard is on disk when the pass returns or fails. ``num_workers=0`` is the serial path (no threads);
every worker count gives the same cache keys and the same features (``tests/features/test_parallel_input.py``,
``tests/features/test_writer.py``).

``backbones.preprocess=fast`` (issue 13): each decoded image becomes one uint8 tensor; backbones with a fast path
(CLIP, the detector) resize / normalise / letterbox it with torch, and object crops are cut from it and resized with
torch. On the CPU that runs in the workers; on a GPU the image is uploaded once (per device) and the work runs
there, between the forwards. Those features have their own cache namespaces (``-fast``); ``exact`` is unchanged
(``tests/features/test_fast_preprocess.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import queue
import threading
import zipfile
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

import numpy as np
import torch
from PIL import Image

from ..backbones.base import ImageBackbone
from ..errors import ConfigError, DataError
from ..fsutil import CACHE, atomic_write
from .. import imagefile as _decode
from .crops import CropSpec, crop_batch_tensor, crop_boxes, crop_key, make_crop, make_crop_tensor
from .memory import MemoryImage
from .store import FeatureStore, MemoryStore, ShardWriter

Store = FeatureStore | MemoryStore

log = logging.getLogger(__name__)


@dataclass
class ImageFeatures:
    """Result of :meth:`FeatureBank.images`: per-path hashes, features aligned to ``paths`` (bad removed)."""

    paths: list[str]
    shas: list[str]
    features: dict[str, np.ndarray]
    bad: dict[str, str] = field(default_factory=dict)  # path -> reason (only when on_bad='skip')


@dataclass(frozen=True)
class CropRequest:
    """Object crops wanted: the crop rule and the crop backbones with the prefix of their feature names."""

    spec: CropSpec
    backbones: dict[str, str]  # backbone name -> feature prefix, e.g. {"inception": "", "object_classifier": "objcls_"}


@runtime_checkable
class SourceMetaBackbone(Protocol):
    """The hook of a backbone that sets ``needs_source = True`` (imported detections): its per-image side
    information is looked up by the image's file, not computed from its pixels."""

    def preprocess_meta_for(self, path: str, img: Image.Image) -> dict[str, torch.Tensor]: ...


class RowBackbone(Protocol):
    """A backbone whose :meth:`~tise_bench.backbones.base.ImageBackbone.input_row` gives a shape: its preprocessing
    writes into ``out`` (its row of a batch) and returns it."""

    def preprocess(self, img: Image.Image, out: torch.Tensor | None = None) -> torch.Tensor: ...

    def preprocess_tensor(self, pixels: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor: ...


def _chunks(seq: list, n: int) -> Iterable[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def default_workers() -> int:
    """Input worker threads when ``num_workers`` is unset: one more than the cores this process may run on (the
    thread that runs the forwards mostly waits on them), at most 8. On 2 cores 3 workers gave 125 images/s of input
    work against 102 with 2 (``scripts/bench.py --overhead``)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, n + 1))


def check_num_workers(n: int | None) -> int:
    if n is None:
        return default_workers()
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(
            f"num_workers={n!r}: give the number of input worker threads (0 = serial, no threads; null = cores + 1, "
            f"at most 8)"
        )
    return n


def _pixels(img: Image.Image) -> torch.Tensor:
    """Decoded RGB image -> uint8 ``(3, H, W)`` (a view of one copy of its pixels)."""
    return torch.from_numpy(np.array(img.convert("RGB") if img.mode != "RGB" else img)).permute(2, 0, 1)


def _copy_row(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst.copy_(src)`` for one input into its batch row. On the CPU numpy makes the copy: for a transposed uint8
    view (an HWC array seen as CHW: Inception's input, an exact crop) its strided loop is ~2x faster than torch's
    (0.08 vs 0.17 ms for 3 x 299 x 299); the same bytes either way."""
    if dst.device.type == "cpu" and src.device.type == "cpu" and dst.dtype == src.dtype:
        np.copyto(dst.numpy(), src.numpy())
    else:
        dst.copy_(src)


def _copy_rows(copies: list[tuple[torch.Tensor, int, torch.Tensor]]) -> None:
    """One image's inputs into their rows: [(batch, row, input)]."""
    for x, i, t in copies:
        _copy_row(x[i], t)


def _device(bb: object) -> torch.device:
    dev = getattr(bb, "device", None)
    return dev if isinstance(dev, torch.device) else torch.device("cpu")


def _attempt(fn: Callable, *args: object) -> tuple[object, DataError | None]:
    """``fn(*args)`` -> (result, None), or (None, the DataError it raised): a worker's failure is handed back to
    the caller in order, so the same image is reported (or raised) whatever the number of workers."""
    try:
        return fn(*args), None
    except DataError as e:
        return None, e


@dataclass
class _Chunk:
    """One batch of paths, read, hashed, decoded and preprocessed ahead of its forwards."""

    paths: list[str]
    read: list[tuple[object, DataError | None]]  # per path: ((bytes, sha), None) or (None, error)
    data: dict[str, bytes]  # this batch's contents not seen in an earlier batch, by sha
    #: sha -> (decoded image, None, {backbone: (input tensor, meta)}, pixels) or (None, the decode error, {}, None);
    #: pixels: the uint8 (3, H, W) tensor under preprocess=fast (else None); an input tensor is None when the
    #: backbone's fast preprocessing runs on its (non-CPU) device in the main thread
    prepared: dict[str, tuple[Image.Image | None, DataError | None, dict, torch.Tensor | None]]
    #: backbone -> its input batches, collated ahead (``_collate``): [(shas, stacked input, stacked meta)] per input
    #: shape, in the order the forwards take them; a backbone missing here is collated by the consumer
    batches: dict[str, list[tuple[list[str], torch.Tensor, dict[str, torch.Tensor]]]] = field(default_factory=dict)
    #: the :class:`_Buffers` this chunk's batches were taken from, given back once its forwards have run
    buffers: list[tuple[tuple, torch.Tensor]] = field(default_factory=list)


class _Buffers:
    """Input batches reused from chunk to chunk of a threaded pass. A fresh batch is fresh memory: ~40 MB of
    letterboxed detector input per chunk of 32 (640 px, uint8) is over the allocator's mmap threshold, so each
    chunk's batches were mapped, faulted in page by page by the workers writing their rows (~77 % of the pass's
    page faults, ~20 % of its CPU in the kernel), and unmapped again. A chunk takes its batches here (in the
    producer) and the consumer gives them back when the chunk's forwards have returned (their outputs are on the
    host by then, so a device's copy of a pinned batch is done). At most ``keep`` batches wait here, so a pass over
    images of many sizes does not hold one per size."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._free: list[tuple[tuple, torch.Tensor]] = []
        self._lock = threading.Lock()

    def take(
        self, n: int, shape: tuple[int, ...], dtype: torch.dtype, pin: bool, held: list[tuple[tuple, torch.Tensor]]
    ) -> torch.Tensor:
        """``n`` rows shaped ``shape`` (a view of a free batch with room for them, or a new one), noted in ``held``."""
        key = (tuple(shape), dtype, pin)
        got = None
        with self._lock:
            for i, (k, buf) in enumerate(self._free):
                if k == key and buf.shape[0] >= n:
                    got = self._free.pop(i)[1]
                    break
        if got is None:
            got = torch.empty((n, *shape), dtype=dtype, pin_memory=pin)
        held.append((key, got))
        return got[:n]

    def give(self, held: list[tuple[tuple, torch.Tensor]]) -> None:
        with self._lock:
            self._free.extend(held)
            del self._free[: max(0, len(self._free) - self.keep)]  # the oldest go
        held.clear()


class _Uploads:
    """One batch's uint8 pixels (``preprocess=fast``), each copied to a device at most once."""

    def __init__(self, pixels: dict[str, torch.Tensor]) -> None:
        self.pixels = pixels
        self._on: dict[tuple[str, str], torch.Tensor] = {}

    def get(self, sha: str, device: torch.device) -> torch.Tensor:
        if device.type == "cpu":
            return self.pixels[sha]
        key = (sha, str(device))
        if key not in self._on:
            self._on[key] = upload(self.pixels[sha], device)
        return self._on[key]


def upload(pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 ``(3, H, W)`` pixels -> the same values, contiguous, on ``device``. The bank's pixels are a view of the
    decoded ``(H, W, 3)`` array: that array is copied as it is (one plain memcpy; a strided ``(3, H, W)`` source would
    first be made contiguous on the host, by the thread that runs the forwards) and transposed on the device."""
    hwc = pixels.permute(1, 2, 0)
    if not hwc.is_contiguous():
        return pixels.to(device, non_blocking=True).contiguous()
    return hwc.to(device, non_blocking=True).permute(2, 0, 1).contiguous()


def _stack_meta(metas: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The images' side information (``preprocess_meta``: one dict per image, the same keys) stacked per key, as
    ``forward`` takes it."""
    return {k: torch.stack([m[k] for m in metas]) for k in metas[0]}


def _in_order(
    miss: list[str], outs: list[tuple[list[str], dict[str, np.ndarray]]], provides: tuple[str, ...] | list[str]
) -> dict[str, np.ndarray]:
    """The forwards' outputs, one per batch ``[(shas, output)]`` -> each feature's rows in ``miss`` order, copied: a
    forward may hand out a buffer it reuses for its next batch, and the shard is written later, by the writer thread
    (a single batch already in order is copied as it is)."""
    if len(outs) == 1 and outs[0][0] == miss:
        return {f: np.array(outs[0][1][f]) for f in provides}
    pos = {s: i for i, s in enumerate(s for group, _ in outs for s in group)}
    order = np.asarray([pos[s] for s in miss], dtype=np.int64)
    return {f: np.concatenate([np.asarray(out[f]) for _, out in outs])[order] for f in provides}


class FeatureBank:
    #: during :meth:`images` on in-memory images: their sources by key, and the stores that hold their rows (in memory:
    #: every namespace, crops included, so nothing of theirs reaches the disk cache)
    _memory: dict[str, MemoryImage] | None = None
    _transient: dict[str, MemoryStore] | None = None
    #: during one chunk: sha -> (detections, size) rows the detector has just computed (read by ``_crop_plan``)
    _fresh_detections: dict[str, tuple[np.ndarray, np.ndarray]]

    def __init__(
        self,
        backbones: dict[str, ImageBackbone],
        cache_dir: str | Path,
        *,
        batch_size: int = 32,
        max_pixels: int | None = _decode.DEFAULT_MAX_PIXELS,
        max_file_bytes: int | None = _decode.DEFAULT_MAX_FILE_BYTES,
        progress: bool = False,
        num_workers: int | None = 0,
        prefetch: int = 2,
        preprocess: str | None = None,
    ) -> None:
        self.backbones = backbones
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.max_file_bytes = _decode.check_max_file_bytes(max_file_bytes)
        self.progress = progress
        self.num_workers = check_num_workers(num_workers)
        self.prefetch = max(1, int(prefetch))
        if preprocess is None:  # the backbone set's mode (build_backbone sets it on every backbone)
            fast = any(getattr(b, "preprocess_mode", "exact") == "fast" for b in backbones.values())
            preprocess = "fast" if fast else "exact"
        if preprocess not in ("exact", "fast"):
            raise ConfigError(f"preprocess={preprocess!r}: choose exact or fast")
        self.fast = preprocess == "fast"
        self._stores: dict[str, Store] = {}
        self._fresh_detections = {}
        self._plans: dict[str, list[tuple[str, tuple]]] = {}  # during one pass: sha -> its crop plan
        #: crop backbone -> its reused input rows and whether they are pinned (``_crop_buffer``)
        self._crop_buffers: dict[str, tuple[torch.Tensor, bool]] = {}
        self._buffers = _Buffers(keep=0)  # during a threaded pass: the chunks' reused input batches
        self._writer: ShardWriter | None = None  # during a threaded pass: writes the cache shards (issue 13 item 3)

    def store(self, namespace: str) -> Store:
        if self._transient is not None:  # in-memory images: rows kept in memory for this call only
            if namespace not in self._transient:
                self._transient[namespace] = MemoryStore(namespace)
            return self._transient[namespace]
        if namespace not in self._stores:
            self._stores[namespace] = FeatureStore(self.cache_dir, namespace)
        store = self._stores[namespace]
        if isinstance(store, FeatureStore):
            store.writer = self._writer
        return store

    def refresh(self) -> None:
        """See the shards other processes added to the cache since the stores were opened."""
        for store in self._stores.values():
            store.refresh()

    def images(
        self,
        paths: Sequence[str] | Sequence[MemoryImage],
        needs: dict[str, set[str]],
        *,
        on_bad: str = "fail",
        crops: CropRequest | None = None,
    ) -> ImageFeatures:
        """Features ``{"backbone.feature": (N, D)}`` for ``paths``; ``needs`` maps backbone -> features.

        With ``crops``, detections are cut into object crops in the same pass (while the decoded image is
        in memory) and the crop backbones run on them: ``crops.<feature>`` (all crops, concatenated) and
        ``crops.owner`` (row of ``paths`` each crop came from).

        ``paths`` may instead be in-memory images (:class:`~tise_bench.features.memory.MemoryImage`, all of them:
        the returned ``paths`` are their keys): the same preprocessing and forwards, no file read or written, and
        their features (crops included) are kept in memory for this call only, never in the disk cache.
        """
        if any(isinstance(p, MemoryImage) for p in paths):
            if not all(isinstance(p, MemoryImage) for p in paths):
                raise TypeError("FeatureBank.images: give file paths or in-memory images, not both in one call")
            mem = {p.key: p for p in paths if isinstance(p, MemoryImage)}
            if len(mem) != len(paths):
                raise ValueError("FeatureBank.images: in-memory images need distinct keys")
            self._memory, self._transient = mem, {}
            try:
                return self._images(list(mem), needs, on_bad=on_bad, crops=crops)
            finally:
                self._memory = self._transient = None
        return self._images([str(p) for p in paths], needs, on_bad=on_bad, crops=crops)

    def _images(
        self, paths: list[str], needs: dict[str, set[str]], *, on_bad: str, crops: CropRequest | None
    ) -> ImageFeatures:
        needs = {b: set(f) for b, f in needs.items()}
        if crops is not None:
            needs.setdefault("detector", set()).update({"detections", "size"})
        needed = {b: tuple(sorted(f)) for b, f in needs.items() if f}
        self._plans, self._fresh_detections = {}, {}  # (per pass: another call may use another crop rule)
        for b, feats in needed.items():
            if b not in self.backbones:
                raise DataError(f"a selected metric needs backbone {b!r}, which is not configured under backbones")
            missing = set(feats) - set(self.backbones[b].provides)
            if missing:
                raise DataError(f"backbone {b!r} does not provide {sorted(missing)}")
        stores = {b: self.store(self.backbones[b].namespace) for b in needed}
        shas: dict[str, str] = {}
        bad: dict[str, str] = {}
        chunks = list(_chunks(list(paths), self.batch_size))
        # enough for the chunks in flight (queued, being prepared, being run) with a few input shapes each
        self._buffers = _Buffers(keep=4 * (self.prefetch + 2) * max(1, len(needed)))
        with _decode.pil_settings(), self._pool() as pool, self._writing(stores):
            mapper: Callable[..., Iterable] = pool.map if pool is not None else map
            # closing(): a failure below stops and joins the producer now, not whenever the generator is collected
            ahead = contextlib.closing(self._ahead(chunks, needed, stores, mapper))
            with ahead as prepared_chunks:
                for chunk in prepared_chunks:
                    for p, (got, err) in zip(chunk.paths, chunk.read):
                        if err is not None:
                            if on_bad != "skip":
                                raise err
                            bad[p] = str(err)
                            continue
                        shas[p] = got[1]  # type: ignore[index]
                    chunk_data = chunk.data  # this chunk's not-yet-seen contents (bounded memory)
                    sha_to_path = {s: p for p, s in shas.items()}
                    uploads = _Uploads({s: p[3] for s, p in chunk.prepared.items() if p[3] is not None})
                    decoded = self._extract(
                        chunk.prepared, needed, stores, bad, on_bad, sha_to_path, uploads, chunk.batches
                    )
                    if crops is not None:
                        unreadable = {shas[p] for p in bad if p in shas}
                        self._extract_crops(
                            {s: d for s, d in chunk_data.items() if s not in unreadable},
                            decoded,
                            crops,
                            bad,
                            on_bad,
                            sha_to_path,
                            mapper,
                            uploads,
                        )
                    self._buffers.give(chunk.buffers)  # its forwards have returned
        bad_shas = {shas[p]: reason for p, reason in bad.items() if p in shas}
        for p, sha in shas.items():  # identical bytes under another name are just as unreadable
            if sha in bad_shas and p not in bad:
                bad[p] = bad_shas[sha]
        good = [p for p in paths if p in shas and p not in bad]
        keys = [shas[p] for p in good]
        features: dict[str, np.ndarray] = {}
        for b, feats in needed.items():
            got = stores[b].get(keys, feats) if keys else {}
            for f in feats:
                features[f"{b}.{f}"] = got.get(f, np.zeros((0,), dtype=np.float32))
        if crops is not None:
            features.update(self._gather_crops(keys, crops))
        self._plans, self._fresh_detections, self._crop_buffers = {}, {}, {}
        self._buffers = _Buffers(keep=0)
        return ImageFeatures(paths=good, shas=keys, features=features, bad=bad)

    @contextlib.contextmanager
    def _writing(self, stores: dict[str, Store]) -> Generator[None, None, None]:
        """With worker threads (``num_workers`` > 0): the pass's cache shards are written by a :class:`ShardWriter`
        thread, and all of them are on disk when the pass ends, or fails (as the serial path leaves them)."""
        if self.num_workers == 0 or self._transient is not None:
            yield
            return
        self._writer = writer = ShardWriter()
        for st in stores.values():
            if isinstance(st, FeatureStore):
                st.writer = writer
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            self._writer = None
            for st in self._stores.values():
                st.writer = None  # type: ignore[union-attr]
            try:
                writer.close()
            except Exception as e:
                if not failed:
                    raise
                log.warning("feature cache: a shard could not be written while the pass was failing: %s", e)

    # ---- input: read, hash, decode, preprocess (in worker threads when num_workers > 0) ------------------------
    @contextlib.contextmanager
    def _pool(self) -> Generator[ThreadPoolExecutor | None, None, None]:
        """The input workers, each running torch with one intra-op thread: the workers are the parallelism (as
        DataLoader workers are), and ``num_workers`` threads each starting torch's 2+ OpenMP threads oversubscribe
        the cores (a crop's copy into its batch took ~0.5 ms instead of ~0.05). ``torch.set_num_threads`` in a
        worker sets that thread's OpenMP count (the thread running the forwards keeps its own) and the default of
        threads started later, which is put back when the pass ends."""
        if self.num_workers == 0:
            yield None
            return
        threads = torch.get_num_threads()
        try:
            with ThreadPoolExecutor(
                max_workers=self.num_workers, thread_name_prefix="tise-input", initializer=torch.set_num_threads,
                initargs=(1,),
            ) as pool:  # fmt: skip
                yield pool
        finally:
            torch.set_num_threads(threads)

    def _read_one(self, path: str) -> tuple[bytes | MemoryImage, str]:
        if self._memory is not None:  # an in-memory image: hashed from its pixels, nothing read
            m = self._memory[path]
            return m, m.sha
        data = _decode.read_bytes(path, self.max_file_bytes)
        return data, _decode.content_hash(data)

    def _prepare_one(
        self,
        sha: str,
        data: bytes | MemoryImage,
        path: str,
        needed: dict[str, tuple[str, ...]],
        stores: dict[str, Store],
        rows: dict[str, torch.Tensor] | None = None,
    ) -> tuple[Image.Image | None, DataError | None, dict, torch.Tensor | None]:
        """Decode one image and run the preprocessing of every backbone whose cache lacks it: (image, None, inputs,
        pixels), or (None, the decode error, {}, None). Under ``fast``, a backbone with a fast path gets the uint8
        pixels preprocessed by torch here when it runs on the CPU, else later on its device (input None). A backbone
        given a row (``rows``, its row of this chunk's batch: :meth:`_batch_rows`) is preprocessed into it."""
        rows = rows or {}
        if isinstance(data, MemoryImage):
            img, err = _attempt(data.decode, self.max_pixels)
        else:
            img, err = _attempt(_decode.decode_image, data, path, self.max_pixels)
        if err is not None:
            return None, err, {}, None
        assert isinstance(img, Image.Image)
        pixels = _pixels(img) if self.fast else None
        inputs: dict = {}
        for b in needed:
            if sha in stores[b]:
                continue
            bb = self.backbones[b]
            if pixels is not None and getattr(bb, "pixels_input", False) and b not in rows:  # = its preprocess(img)
                inputs[b] = (pixels, bb.preprocess_meta(img))
                continue
            if pixels is not None and bb.fast and not getattr(bb, "needs_source", False):
                on_cpu = not self._on_device(bb)
                x = (
                    (
                        bb.preprocess_tensor(pixels)
                        if b not in rows
                        else cast(RowBackbone, bb).preprocess_tensor(pixels, out=rows[b])
                    )
                    if on_cpu
                    else None
                )
                inputs[b] = (x, bb.preprocess_meta(img))
            else:
                inputs[b] = self._inputs(b, img, path, rows.get(b))
        return img, None, inputs, pixels

    def _inputs(
        self, b: str, img: Image.Image, path: str, row: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Backbone ``b``'s input tensor (written into ``row`` when given) and per-image side information for one
        decoded image."""
        bb = self.backbones[b]
        if getattr(bb, "needs_source", False):  # looked up by image file (imported detections)
            assert isinstance(bb, SourceMetaBackbone), (
                f"backbone {b!r} sets needs_source but has no preprocess_meta_for(path, img)"
            )
            return bb.preprocess(img), bb.preprocess_meta_for(path, img)
        x = bb.preprocess(img) if row is None else cast(RowBackbone, bb).preprocess(img, out=row)
        return x, bb.preprocess_meta(img)  # meta: {} for most backbones

    def _batch_rows(
        self,
        todo: list[str],
        needed: dict[str, tuple[str, ...]],
        stores: dict[str, Store],
        held: list[tuple[tuple, torch.Tensor]],
    ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, tuple[list[str], torch.Tensor]]]:
        """One chunk's batches, allocated before its images are preprocessed, for each backbone whose inputs all
        have one shape (:meth:`ImageBackbone.input_row`): (sha -> {backbone: its row}, backbone -> (shas, batch)).
        The workers then write each image's input into its row, and the forwards take the batch as it is. On CUDA
        the batches are in pinned memory, for asynchronous copies."""
        rows: dict[str, dict[str, torch.Tensor]] = {}
        batches: dict[str, tuple[list[str], torch.Tensor]] = {}
        for b in needed:
            miss = [s for s in todo if s not in stores[b]]
            bb = self.backbones[b]
            if not miss or getattr(bb, "needs_source", False):
                continue
            tensor_path = self.fast and bool(bb.fast)
            if tensor_path and self._on_device(bb):  # made on its device, between the forwards
                continue
            spec = bb.input_row(tensor_path)
            if spec is None:
                continue
            shape, dtype = spec
            buf = self._buffers.take(len(miss), shape, dtype, _device(bb).type == "cuda", held)
            batches[b] = (miss, buf)
            for i, sha in enumerate(miss):
                rows.setdefault(sha, {})[b] = buf[i]
        return rows, batches

    def _prepare_chunk(
        self,
        paths: list[str],
        seen: set[str],
        needed: dict[str, tuple[str, ...]],
        stores: dict[str, Store],
        mapper: Callable[..., Iterable],
    ) -> _Chunk:
        """Read and hash ``paths``; decode and preprocess the contents not seen before that some cache lacks."""
        read = list(mapper(lambda p: _attempt(self._read_one, p), paths))
        data: dict[str, bytes] = {}
        path_of: dict[str, str] = {}
        for p, (got, err) in zip(paths, read):
            if err is None:
                blob, sha = got  # type: ignore[misc]
                path_of[sha] = p  # the last name of these bytes, as the messages name it
                if sha not in seen:
                    data.setdefault(sha, blob)
        seen.update(data)
        todo = [s for s in data if any(s not in stores[b] for b in needed)]
        held: list[tuple[tuple, torch.Tensor]] = []  # the batches taken from self._buffers
        rows, ahead = self._batch_rows(todo, needed, stores, held) if self.num_workers else ({}, {})
        prepared = dict(
            zip(todo, mapper(lambda s: self._prepare_one(s, data[s], path_of[s], needed, stores, rows.get(s)), todo))
        )
        batches = self._collate(prepared, needed, stores, mapper, held, ahead) if self.num_workers else {}
        return _Chunk(paths=paths, read=read, data=data, prepared=prepared, batches=batches, buffers=held)

    def _collate(
        self,
        prepared: dict[str, tuple[Image.Image | None, DataError | None, dict, torch.Tensor | None]],
        needed: dict[str, tuple[str, ...]],
        stores: dict[str, Store],
        mapper: Callable[..., Iterable],
        held: list[tuple[tuple, torch.Tensor]],
        ahead: dict[str, tuple[list[str], torch.Tensor]] | None = None,
    ) -> dict[str, list[tuple[list[str], torch.Tensor, dict[str, torch.Tensor]]]]:
        """Each backbone's input batches of one chunk, collated ahead (the workers copy each image's inputs into
        them) so that the thread running the forwards only runs them: the same groups, order and values as
        :meth:`_extract` would stack (one batch per input shape, images in chunk order), the per-image inputs then
        dropped. A backbone whose inputs are made on its device (``fast`` on a GPU) is left to the consumer. On
        CUDA the batches are in pinned memory, for asynchronous copies. A batch allocated ahead (``ahead``:
        :meth:`_batch_rows`), whose rows the workers wrote, is taken as it is when every one of its images decoded
        (else its rows are copied, as any input)."""
        out: dict[str, list[tuple[list[str], torch.Tensor, dict[str, torch.Tensor]]]] = {}
        copies: dict[str, list[tuple[torch.Tensor, int, torch.Tensor]]] = {}  # sha -> [(batch, row, its input)]
        ok = [s for s, p in prepared.items() if p[1] is None]
        for b in needed:
            miss = [s for s in ok if s not in stores[b]]
            if not miss or any(b not in prepared[s][2] or prepared[s][2][b][0] is None for s in miss):
                continue
            if ahead and b in ahead and ahead[b][0] == miss:  # written in place by the workers: nothing to copy
                meta = _stack_meta([prepared[s][2][b][1] for s in miss])
                out[b] = [(miss, ahead[b][1], meta)]
                for s in miss:
                    del prepared[s][2][b]
                continue
            by_shape: dict[tuple[int, ...], list[str]] = {}
            for s in miss:
                by_shape.setdefault(tuple(prepared[s][2][b][0].shape), []).append(s)
            pin = _device(self.backbones[b]).type == "cuda"
            groups = []
            for group in by_shape.values():
                xs = [prepared[s][2][b][0] for s in group]
                if len({x.dtype for x in xs}) == 1:  # (else torch.stack's type promotion, as the consumer would)
                    x = self._buffers.take(len(xs), tuple(xs[0].shape), xs[0].dtype, pin, held)
                    for i, (s, t) in enumerate(zip(group, xs)):
                        copies.setdefault(s, []).append((x, i, t))
                else:
                    x = torch.stack(xs)
                    x = x.pin_memory() if pin else x
                meta = _stack_meta([prepared[s][2][b][1] for s in group])
                groups.append((group, x, meta))
            for s in miss:
                del prepared[s][2][b]
            out[b] = groups
        list(mapper(lambda s: _copy_rows(copies[s]), list(copies)))  # one task per image
        return out

    def _ahead(
        self,
        chunks: list[list[str]],
        needed: dict[str, tuple[str, ...]],
        stores: dict[str, Store],
        mapper: Callable[..., Iterable],
    ) -> Generator[_Chunk, None, None]:
        """The prepared chunks in order: prepared here (serial), or by a producer thread up to ``prefetch`` chunks
        ahead of the one the caller is running through the backbones (bounded memory)."""
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(chunks), desc="features", unit="batch", leave=False)
        seen: set[str] = set()
        try:
            if self.num_workers == 0:
                for paths in chunks:
                    yield self._prepare_chunk(paths, seen, needed, stores, mapper)
                    if bar is not None:
                        bar.update()
                return
            q: queue.Queue = queue.Queue(maxsize=self.prefetch)
            stop = threading.Event()

            def put(item: object) -> None:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        return
                    except queue.Full:
                        continue

            def produce() -> None:
                try:
                    for paths in chunks:
                        if stop.is_set():
                            return
                        put(("chunk", self._prepare_chunk(paths, seen, needed, stores, mapper)))
                    put(("end", None))
                except BaseException as e:  # handed to the consumer, raised there
                    put(("error", e))

            producer = threading.Thread(target=produce, name="tise-prefetch", daemon=True)
            producer.start()
            try:
                while True:
                    kind, item = q.get()
                    if kind == "end":
                        return
                    if kind == "error":
                        raise item
                    yield item
                    if bar is not None:
                        bar.update()
            finally:
                stop.set()
                producer.join()
        finally:
            if bar is not None:
                bar.close()

    def _extract(
        self,
        prepared: dict[str, tuple[Image.Image | None, DataError | None, dict, torch.Tensor | None]],
        needed: dict[str, tuple[str, ...]],
        stores: dict[str, Store],
        bad: dict[str, str],
        on_bad: str,
        sha_to_path: dict[str, str],
        uploads: "_Uploads",
        batches: dict[str, list[tuple[list[str], torch.Tensor, dict[str, torch.Tensor]]]] | None = None,
    ) -> dict:
        decoded: dict = {}
        self._fresh_detections = {}
        for sha, (img, err, _, _) in prepared.items():
            if err is not None:
                if on_bad != "skip":
                    raise err
                bad[sha_to_path.get(sha, sha)] = str(err)
                continue
            decoded[sha] = img
        for b in needed:
            bb = self.backbones[b]
            miss = [s for s in decoded if s not in stores[b]]
            if not miss:
                continue
            groups = (batches or {}).get(b)  # collated by the producer (``_collate``)
            if groups is None or sorted(s for g, _, _ in groups for s in g) != sorted(miss):
                groups = self._stack(b, miss, prepared, decoded, sha_to_path, uploads)
            outs = [(group, bb.forward(x, meta)) for group, x, meta in groups]
            self._put_rows(b, stores[b], miss, _in_order(miss, outs, bb.provides))
        return decoded

    def _stack(
        self,
        b: str,
        miss: list[str],
        prepared: dict[str, tuple[Image.Image | None, DataError | None, dict, torch.Tensor | None]],
        decoded: dict,
        sha_to_path: dict[str, str],
        uploads: "_Uploads",
    ) -> list[tuple[list[str], torch.Tensor, dict[str, torch.Tensor]]]:
        """Backbone ``b``'s input batches for ``miss``, stacked here (serial path; inputs made on a device): one batch
        per input shape (no padding: exact parity with the reference tools), images in chunk order."""
        bb = self.backbones[b]
        inputs = {
            s: prepared[s][2][b] if b in prepared[s][2] else self._inputs(b, decoded[s], sha_to_path.get(s, s))
            for s in miss
        }
        on_device: dict[tuple[int, ...], list[str]] = {}  # fast, on a device: uploaded once, preprocessed there
        for s, (t, _) in inputs.items():
            if t is None:
                on_device.setdefault(tuple(uploads.pixels[s].shape), []).append(s)
        for group in on_device.values():  # one batch per image size (the resize's geometry)
            x = bb.preprocess_batch(torch.stack([uploads.get(s, _device(bb)) for s in group]))
            if group == miss:  # (the usual case: images of one size) that batch, as it is
                return [(miss, x, _stack_meta([inputs[s][1] for s in miss]))]
            for s, row in zip(group, x):
                inputs[s] = (row, inputs[s][1])
        by_shape: dict[tuple[int, ...], list[str]] = {}
        for s, (t, _) in inputs.items():
            by_shape.setdefault(tuple(t.shape), []).append(s)
        return [
            (
                group,
                torch.stack([inputs[s][0] for s in group]),
                _stack_meta([inputs[s][1] for s in group]),
            )
            for group in by_shape.values()
        ]

    def _put_rows(self, b: str, store: Store, miss: list[str], arrays: dict[str, np.ndarray]) -> None:
        """Write one backbone's new rows (``arrays``, in ``miss`` order); the detector's are also kept for this
        chunk's crop plan (no re-read)."""
        store.put(miss, arrays)
        if b == "detector" and {"detections", "size"} <= set(arrays):
            for i, s in enumerate(miss):
                self._fresh_detections[s] = (arrays["detections"][i], arrays["size"][i])

    def _on_device(self, bb: ImageBackbone) -> bool:
        """Whether ``bb``'s ``fast`` preprocessing (and its crops') runs on its device, in the thread that runs the
        forwards and in batches (``preprocess_batch``), rather than in the input workers image by image: a
        backbone on an accelerator. (One place to decide it; tests run the device path on the CPU through it.)"""
        return _device(bb).type != "cpu"

    def _crop_plan(self, shas: list[str], spec: CropSpec) -> dict[str, list[tuple[str, tuple]]]:
        """Per image sha: [(crop key, box)] from its detections (just computed, or cached) — no pixels needed; each
        image's plan is made once per pass (the crops are cut from it, then gathered by it)."""
        plans = self._plans
        todo = [s for s in shas if s not in plans]
        if todo:
            plans.update(self._new_crop_plan(todo, spec))
        return {s: plans[s] for s in shas}

    def _new_crop_plan(self, shas: list[str], spec: CropSpec) -> dict[str, list[tuple[str, tuple]]]:
        fresh = self._fresh_detections  # rows this chunk's forwards just wrote: the values the store would return
        rest = [s for s in shas if s not in fresh]
        got = self.store(self.backbones["detector"].namespace).get(rest, ("detections", "size")) if rest else {}
        row = {s: i for i, s in enumerate(rest)}
        plan = {}
        for s in shas:
            dets, size = fresh[s] if s in fresh else (got["detections"][row[s]], got["size"][row[s]])
            w, h = (int(round(v)) for v in size)
            plan[s] = [(crop_key(s, b), b) for b in crop_boxes(dets, w, h, spec)]
        return plan

    def _crop_store(self, req: CropRequest, name: str) -> Store:
        det = self.backbones["detector"].namespace
        # preprocess=fast: crops cut from the uint8 tensor, resized by cv2 (enlarged, CPU) or torch (-torchcrop until
        # the cv2 path: its values moved by up to 1 grey level, so a new namespace)
        fast = "-fastcrop" if self.fast else ""
        return self.store(f"crops-{req.spec.tag}{fast}-{self.backbones[name].namespace}--on-{det}")

    def _extract_crops(
        self,
        chunk: dict[str, bytes],
        decoded: dict,
        req: CropRequest,
        bad: dict[str, str],
        on_bad: str,
        sha_to_path: dict[str, str],
        mapper: Callable[..., Iterable] = map,
        uploads: _Uploads | None = None,
    ) -> None:
        plan = self._crop_plan(list(chunk), req.spec)
        cut: dict[str, object] = {}  # crop key -> the cut crop (PIL image, or uint8 tensor under fast)
        uploads = uploads if uploads is not None else _Uploads({})
        for name in req.backbones:
            bb, store = self.backbones[name], self._crop_store(req, name)
            miss = [(s, k, box) for s, items in plan.items() for k, box in items if k not in store]
            miss = list({k: (s, k, box) for s, k, box in miss}.values())
            undecoded = list(dict.fromkeys(s for s, _, _ in miss if s not in decoded))  # decoded once, even if only
            for s, (img, err) in zip(  # crops missed
                undecoded,
                mapper(
                    lambda s: _attempt(_decode.decode_image, chunk[s], sha_to_path.get(s, s), self.max_pixels),
                    undecoded,
                ),
            ):
                if err is not None:
                    if on_bad != "skip":
                        raise err
                    bad[sha_to_path.get(s, s)] = str(err)
                else:
                    decoded[s] = img
                    if self.fast:
                        uploads.pixels[s] = _pixels(img)  # type: ignore[arg-type]
            miss = [m for m in miss if m[0] in decoded]
            if not miss:  # all cached: the backbone is not touched (a lazy one stays unbuilt)
                continue
            share = len(req.backbones) > 1  # several crop backbones: each crop is cut once, kept for the next
            dev = _device(bb)
            if self.fast and self._on_device(bb):  # cut there in batches, preprocessed as one batch
                self._cut_on_device([m for m in miss if m[1] not in cut], uploads, dev, req.spec.size, cut)
                x = torch.stack([cast(torch.Tensor, cut[k]) for _, k, _ in miss])
                self._crop_forwards(bb, store, miss, bb.preprocess_batch(x))
                continue

            def prepare(
                m: tuple[str, str, tuple], bb: ImageBackbone = bb, share: bool = share, row: torch.Tensor | None = None
            ) -> torch.Tensor:
                """One crop's input; under fast, resized straight into ``row`` (its batch row) when that is shaped
                like the crop (a backbone fed the uint8 crop as it is, Inception: no copy at all)."""
                s, k, box = m
                if self.fast:  # cut from the (uploaded) uint8 pixels, resized on that device
                    into = None if share or row is None or (row.dtype, row.shape) != (torch.uint8, crop_shape) else row
                    crop = cut[k] if k in cut else make_crop_tensor(uploads.get(s, dev), box, req.spec.size, into)
                else:
                    crop = cut[k] if k in cut else make_crop(decoded[s], box, req.spec.size)
                if share:
                    cut[k] = crop
                return bb.preprocess_tensor(crop) if self.fast else bb.preprocess(crop)  # type: ignore[arg-type]

            # cut + resize + preprocess, each crop written into its row of one buffer (the batches are slices of it:
            # nothing is stacked here): one task per image, in the input workers
            crop_shape = (3, req.spec.size, req.spec.size)
            first = prepare(miss[0])
            buf = self._crop_buffer(name, len(miss), first, pin=dev.type == "cuda" and first.device.type == "cpu")
            _copy_row(buf[0], first)

            def fill(rows: list[tuple[int, tuple[str, str, tuple]]], buf: torch.Tensor = buf, name: str = name) -> None:
                for row, m in rows:
                    t = prepare(m, row=buf[row])
                    if t.shape != buf.shape[1:] or t.dtype != buf.dtype:
                        raise RuntimeError(
                            f"crop inputs of {name!r} differ: {tuple(t.shape)} {t.dtype}, {buf[0].shape}"
                        )
                    if t.data_ptr() != buf[row].data_ptr():  # (else resized into its row, returned as it is)
                        _copy_row(buf[row], t)

            rows = list(enumerate(miss))[1:]  # miss lists each image's crops together
            per_image = [list(g) for _, g in itertools.groupby(rows, key=lambda r: r[1][0])]
            list(mapper(fill, per_image))
            self._crop_forwards(bb, store, miss, buf)

    @staticmethod
    def _cut_on_device(
        todo: list[tuple[str, str, tuple]], uploads: _Uploads, dev: torch.device, size: int, cut: dict[str, object]
    ) -> None:
        """The crops ``todo`` [(image sha, crop key, box)] cut from the images uploaded to ``dev`` and resized there,
        one :func:`crop_batch_tensor` per image size; each kept in ``cut`` by key (for every crop backbone)."""
        by_size: dict[tuple[int, ...], list[str]] = {}
        for s in dict.fromkeys(s for s, _, _ in todo):
            by_size.setdefault(tuple(uploads.pixels[s].shape), []).append(s)
        for shas in by_size.values():
            row = {s: i for i, s in enumerate(shas)}
            mine = [m for m in todo if m[0] in row]
            images = torch.stack([uploads.get(s, dev) for s in shas])
            crops = crop_batch_tensor(images, [(row[s], box) for s, _, box in mine], size)
            for (_, k, _), crop in zip(mine, crops):
                cut[k] = crop

    def _crop_forwards(
        self, bb: ImageBackbone, store: Store, miss: list[tuple[str, str, tuple]], x: torch.Tensor
    ) -> None:
        """Crop backbone ``bb``'s forwards over ``x`` (row i: the input of crop ``miss[i]``), in batches, each
        batch's rows stored as one shard."""
        for i in range(0, len(miss), self.batch_size):
            out = bb.forward(x[i : i + self.batch_size])
            # copied: a forward may reuse its output buffer while the writer thread has not written the shard yet
            keys = [k for _, k, _ in miss[i : i + self.batch_size]]
            store.put(keys, {f: np.array(out[f]) for f in bb.provides})

    def _crop_buffer(self, name: str, n: int, like: torch.Tensor, pin: bool = False) -> torch.Tensor:
        """``n`` rows shaped like ``like`` for crop backbone ``name``'s inputs: one buffer per crop backbone, reused
        from chunk to chunk (grown when a chunk has more crops), so its pages are not faulted in again for every chunk
        (a fresh 70 MB buffer cost as much as the crops' copies into it); in pinned memory (``pin``: a CUDA crop
        backbone) for asynchronous copies, pinned once per pass. Safe to reuse: a chunk's crop forwards have
        returned (their outputs, and so their input's copy to the device, are done) before the next chunk's crops
        are cut."""
        got = self._crop_buffers.get(name)
        if (
            got is None
            or got[0].shape[0] < n
            or (got[0].shape[1:], got[0].dtype, got[0].device, got[1]) != (like.shape, like.dtype, like.device, pin)
        ):
            buf = torch.empty((n, *like.shape), dtype=like.dtype, device=like.device, pin_memory=pin)
            got = self._crop_buffers[name] = (buf, pin)
        return got[0][:n]

    def _gather_crops(self, shas: list[str], req: CropRequest) -> dict[str, np.ndarray]:
        plan = self._crop_plan(list(dict.fromkeys(shas)), req.spec)
        keys, owner = [], []
        for row, s in enumerate(shas):
            for k, _ in plan.get(s, []):
                keys.append(k)
                owner.append(row)
        out: dict[str, np.ndarray] = {"crops.owner": np.asarray(owner, dtype=np.int64)}
        for name, prefix in req.backbones.items():
            bb = self.backbones[name]
            got = self._crop_store(req, name).get(keys, bb.provides) if keys else {}
            for f in bb.provides:
                out[f"crops.{prefix}{f}"] = got.get(f, np.zeros((0, 0), dtype=np.float32))
        return out

    def texts(self, clip, texts: list[str]) -> tuple[dict[str, np.ndarray], set[str]]:
        """CLIP text embeddings for unique ``texts``, cached by sha256 of the text; -> (emb, truncated)."""
        store = self.store(clip.namespace + "-text")
        uniq = sorted(set(texts))
        keys = {t: _decode.content_hash(t.encode("utf-8")) for t in uniq}
        miss = [t for t in uniq if keys[t] not in store]
        for chunk in _chunks(miss, 256):
            emb, trunc = clip.encode_text(chunk)
            store.put([keys[t] for t in chunk], {"text": emb, "truncated": trunc})
        if not uniq:
            return {}, set()
        got = store.get([keys[t] for t in uniq], ("text", "truncated"))
        emb = {t: got["text"][i] for i, t in enumerate(uniq)}
        truncated = {t for i, t in enumerate(uniq) if bool(got["truncated"][i])}
        return emb, truncated

    def cached_stats(self, key: str, compute) -> tuple[np.ndarray, np.ndarray]:
        """Reference (mu, sigma) computed once per eval set + backbone, then read from ``<cache>/stats``.

        The file carries a blake2b checksum of its arrays; a truncated or altered file is reported with a
        warning and recomputed, never used."""
        path = self.cache_dir / "stats" / f"{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    mu, sigma, check = z["mu"], z["sigma"], str(z["checksum"])
                if check != _stats_checksum(mu, sigma):
                    raise ValueError("checksum mismatch")
                return mu, sigma
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # a damaged zip: BadZipFile
                log.warning("reference statistics cache %s is corrupt (%s); recomputing", path, e)
        mu, sigma = compute()

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to the temporary name
                np.savez(f, mu=mu, sigma=sigma, checksum=np.asarray(_stats_checksum(mu, sigma)))

        atomic_write(path, save, CACHE)
        return mu, sigma


def _stats_checksum(mu: np.ndarray, sigma: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in (mu, sigma):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
