"""FeatureBank: every feature any selected metric needs, in one streaming pass over the images.

Each image file is read once and hashed; only images missing from some backbone's cache are decoded
(once, whatever the number of backbones), and each backbone applies its own preprocessing to the decoded
image. Features are cached per backbone namespace, keyed by the sha256 of the image bytes, so a
repeated run with nothing changed performs zero backbone forwards; identical files (the same bytes under
two names or two models) are computed once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from ..backbones.base import ImageBackbone
from ..errors import DataError
from ..fsutil import CACHE, atomic_write
from .. import imagefile as _decode
from .crops import CropSpec, crop_boxes, crop_key, make_crop
from .store import FeatureStore

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


def _chunks(seq: list, n: int) -> Iterable[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class FeatureBank:
    def __init__(
        self,
        backbones: dict[str, ImageBackbone],
        cache_dir: str | Path,
        *,
        batch_size: int = 32,
        max_pixels: int | None = _decode.DEFAULT_MAX_PIXELS,
        max_file_bytes: int | None = _decode.DEFAULT_MAX_FILE_BYTES,
        progress: bool = False,
    ) -> None:
        self.backbones = backbones
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.max_file_bytes = _decode.check_max_file_bytes(max_file_bytes)
        self.progress = progress
        self._stores: dict[str, FeatureStore] = {}

    def store(self, namespace: str) -> FeatureStore:
        if namespace not in self._stores:
            self._stores[namespace] = FeatureStore(self.cache_dir, namespace)
        return self._stores[namespace]

    def refresh(self) -> None:
        """See the shards other processes added to the cache since the stores were opened."""
        for store in self._stores.values():
            store.refresh()

    def images(
        self, paths: list[str], needs: dict[str, set[str]], *, on_bad: str = "fail", crops: CropRequest | None = None
    ) -> ImageFeatures:
        """Features ``{"backbone.feature": (N, D)}`` for ``paths``; ``needs`` maps backbone -> features.

        With ``crops``, detections are cut into object crops in the same pass (while the decoded image is
        in memory) and the crop backbones run on them: ``crops.<feature>`` (all crops, concatenated) and
        ``crops.owner`` (row of ``paths`` each crop came from).
        """
        needs = {b: set(f) for b, f in needs.items()}
        if crops is not None:
            needs.setdefault("detector", set()).update({"detections", "size"})
        needed = {b: tuple(sorted(f)) for b, f in needs.items() if f}
        for b, feats in needed.items():
            if b not in self.backbones:
                raise DataError(f"a selected metric needs backbone {b!r}, which is not configured under backbones")
            missing = set(feats) - set(self.backbones[b].provides)
            if missing:
                raise DataError(f"backbone {b!r} does not provide {sorted(missing)}")
        stores = {b: self.store(self.backbones[b].namespace) for b in needed}
        shas: dict[str, str] = {}
        bad: dict[str, str] = {}
        done: set[str] = set()  # shas computed in this run
        iterator = _chunks(list(paths), self.batch_size)
        if self.progress:
            from tqdm import tqdm

            iterator = tqdm(
                iterator,
                total=(len(paths) + self.batch_size - 1) // self.batch_size,
                desc="features",
                unit="batch",
                leave=False,
            )
        for chunk in iterator:
            chunk_data: dict[str, bytes] = {}  # this chunk's not-yet-seen contents (bounded memory)
            for p in chunk:
                try:
                    data = _decode.read_bytes(p, self.max_file_bytes)
                except DataError as e:
                    if on_bad != "skip":
                        raise
                    bad[p] = str(e)
                    continue
                sha = _decode.content_hash(data)
                shas[p] = sha
                if sha not in done:
                    chunk_data.setdefault(sha, data)
            sha_to_path = {s: p for p, s in shas.items()}
            todo = {s: d for s, d in chunk_data.items() if any(s not in stores[b] for b in needed)}
            decoded = self._extract(todo, needed, stores, bad, on_bad, sha_to_path)
            if crops is not None:
                unreadable = {shas[p] for p in bad if p in shas}
                self._extract_crops(
                    {s: d for s, d in chunk_data.items() if s not in unreadable},
                    decoded,
                    crops,
                    bad,
                    on_bad,
                    sha_to_path,
                )
            done.update(chunk_data)
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
        return ImageFeatures(paths=good, shas=keys, features=features, bad=bad)

    def _decode(
        self, sha: str, data: bytes, decoded: dict, bad: dict[str, str], on_bad: str, sha_to_path: dict[str, str]
    ) -> None:
        path = sha_to_path.get(sha, sha)
        try:
            decoded[sha] = _decode.decode_image(data, path, self.max_pixels)
        except DataError as e:
            if on_bad != "skip":
                raise
            bad[path] = str(e)

    def _extract(
        self,
        todo: dict[str, bytes],
        needed: dict[str, tuple[str, ...]],
        stores: dict[str, FeatureStore],
        bad: dict[str, str],
        on_bad: str,
        sha_to_path: dict[str, str],
    ) -> dict:
        decoded: dict = {}
        for sha, data in todo.items():
            self._decode(sha, data, decoded, bad, on_bad, sha_to_path)
        for b, feats in needed.items():
            bb = self.backbones[b]
            miss = [s for s in decoded if s not in stores[b]]
            if not miss:
                continue
            tensors = {s: bb.preprocess(decoded[s]) for s in miss}
            if getattr(bb, "needs_source", False):  # looked up by image file (imported detections)
                assert isinstance(bb, SourceMetaBackbone), (
                    f"backbone {b!r} sets needs_source but has no preprocess_meta_for(path, img)"
                )
                metas = {s: bb.preprocess_meta_for(sha_to_path.get(s, s), decoded[s]) for s in miss}
            else:
                metas = {s: bb.preprocess_meta(decoded[s]) for s in miss}  # {} for most backbones
            rows: dict[str, dict[str, np.ndarray]] = {}
            by_shape: dict[tuple[int, ...], list[str]] = {}
            for s, t in tensors.items():  # same-shape batches: no padding, exact parity with reference tools
                by_shape.setdefault(tuple(t.shape), []).append(s)
            for group in by_shape.values():
                meta = {k: torch.stack([metas[s][k] for s in group]) for k in metas[group[0]]}
                out = bb.forward(torch.stack([tensors[s] for s in group]), meta)
                for i, s in enumerate(group):
                    rows[s] = {f: out[f][i] for f in bb.provides}
            stores[b].put(miss, {f: np.stack([rows[s][f] for s in miss]) for f in bb.provides})
        return decoded

    def _crop_plan(self, shas: list[str], spec: CropSpec) -> dict[str, list[tuple[str, tuple]]]:
        """Per image sha: [(crop key, box)] from its cached detections — no pixels needed."""
        if not shas:
            return {}
        got = self.store(self.backbones["detector"].namespace).get(shas, ("detections", "size"))
        plan = {}
        for i, s in enumerate(shas):
            w, h = (int(round(v)) for v in got["size"][i])
            plan[s] = [(crop_key(s, b), b) for b in crop_boxes(got["detections"][i], w, h, spec)]
        return plan

    def _crop_store(self, req: CropRequest, name: str) -> FeatureStore:
        det = self.backbones["detector"].namespace
        return self.store(f"crops-{req.spec.tag}-{self.backbones[name].namespace}--on-{det}")

    def _extract_crops(
        self,
        chunk: dict[str, bytes],
        decoded: dict,
        req: CropRequest,
        bad: dict[str, str],
        on_bad: str,
        sha_to_path: dict[str, str],
    ) -> None:
        plan = self._crop_plan(list(chunk), req.spec)
        cut: dict[str, Image.Image] = {}
        for name in req.backbones:
            bb, store = self.backbones[name], self._crop_store(req, name)
            miss = [(s, k, box) for s, items in plan.items() for k, box in items if k not in store]
            miss = list({k: (s, k, box) for s, k, box in miss}.values())
            for s in {s for s, _, _ in miss if s not in decoded}:  # decoded once, even if only crops missed
                self._decode(s, chunk[s], decoded, bad, on_bad, sha_to_path)
            miss = [m for m in miss if m[0] in decoded]
            for group in _chunks(miss, self.batch_size):
                for s, k, box in group:
                    if k not in cut:
                        cut[k] = make_crop(decoded[s], box, req.spec.size)
                out = bb.forward(torch.stack([bb.preprocess(cut[k]) for _, k, _ in group]))
                store.put([k for _, k, _ in group], {f: out[f] for f in bb.provides})

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
            except (OSError, ValueError, KeyError, EOFError) as e:
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
