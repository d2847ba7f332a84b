"""The reference side of a Fréchet distance, computed once: ``A = Σ_r^½``, cached beside the reference statistics.

With ``A`` known, a model's Fréchet distance needs one symmetric eigenvalue solve: the eigenvalues of ``Σ_g Σ_r``
are those of ``A Σ_g A`` (similar matrices: ``Σ_g Σ_r = A⁻¹ (A Σ_g A) A`` where ``A`` is invertible, and by
continuity otherwise), so ``Tr (Σ_g Σ_r)^½ = Σ √λ⁺(A Σ_g A)``
(:func:`~tise_bench.metrics.inception.frechet_distance_sqrt`). ``A`` costs a symmetric eigendecomposition of
``Σ_r``, made once per reference and read back on later runs.

The cache is content-addressed: ``<cache>/stats/sqrt-<blake2b of Σ_r>.npz`` holds ``A``, the key it was computed
for and a checksum of ``A``. One rule serves every reference: statistics computed from reference images
(``FeatureBank.cached_stats``), a user's ``data.reference_stats`` file, and the reference statistics O-FID and
FD-DINOv2 / CLIP-FID compute from cached features; a stale ``A`` cannot be served, since the key is what ``A`` is
computed from. A truncated or altered file is reported with a warning and recomputed, never used (as
``cached_stats`` does). Within one process the last few ``A`` are also kept in memory (a training loop's
evaluator computes FID again and again against one reference).
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..fsutil import CACHE, atomic_write

log = logging.getLogger(__name__)

#: Folder under the cache root (shared with ``FeatureBank.cached_stats``'s reference statistics).
STATS_FOLDER = "stats"
#: Part of every key: a change of how ``A`` is computed must not read files written by the old computation.
SQRT_VERSION = "sqrt-eigh-v1"
_MEMO_SIZE = 4  # in-process entries (32 MiB each at D = 2048)
_memo: OrderedDict[str, np.ndarray] = OrderedDict()


def psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance: ``V diag(√max(λ, 0)) Vᵀ`` from ``eigh`` of its symmetric part
    (negative round-off eigenvalues of a positive semi-definite matrix clipped to 0). float64, symmetric."""
    s = np.asarray(sigma, dtype=np.float64)
    lam, vec = np.linalg.eigh((s + s.T) / 2.0)
    a = (vec * np.sqrt(np.clip(lam, 0.0, None))) @ vec.T
    return (a + a.T) / 2.0


def sigma_key(sigma: np.ndarray) -> str:
    """Content key of a covariance: blake2b of its float64 bytes, shape and :data:`SQRT_VERSION`."""
    s = np.ascontiguousarray(sigma, dtype=np.float64)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{SQRT_VERSION}|{s.dtype.str}{s.shape}".encode())
    h.update(s.data)
    return h.hexdigest()


def _checksum(a: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def sqrt_path(cache_dir: str | Path, key: str) -> Path:
    """Where the square root of the covariance with :func:`sigma_key` ``key`` is cached."""
    return Path(cache_dir) / STATS_FOLDER / f"sqrt-{key}.npz"


def _load(path: Path, key: str, dim: int) -> np.ndarray | None:
    """The cached square root at ``path``, or None when there is none; a damaged file is reported, not used."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            a, source, check = z["sqrt"], str(z["source"]), str(z["checksum"])
        if source != key:
            raise ValueError(f"holds the square root of another covariance ({source})")
        if a.dtype != np.float64 or a.shape != (dim, dim):
            raise ValueError(f"array 'sqrt' is {a.dtype} {a.shape}, expected float64 ({dim}, {dim})")
        if check != _checksum(a):
            raise ValueError("checksum mismatch")
        return a
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # a damaged zip: BadZipFile
        log.warning("reference square-root cache %s is corrupt (%s); recomputing", path, e)
        return None


def reference_sqrt(sigma: np.ndarray, cache_dir: str | Path | None = None) -> np.ndarray:
    """``Σ_r^½`` (:func:`psd_sqrt`): from this process's memory, else ``<cache_dir>/stats/sqrt-<key>.npz``, else
    computed and written there (atomically). ``cache_dir=None``: memory only. Read-only for the caller."""
    s = np.asarray(sigma, dtype=np.float64)
    key = sigma_key(s)
    if key in _memo:
        _memo.move_to_end(key)
        return _memo[key]
    path = None if cache_dir is None else sqrt_path(cache_dir, key)
    a = None if path is None else _load(path, key, s.shape[0])
    if a is None:
        log.info(
            "reference covariance square root (D=%d): computing it once%s",
            s.shape[0],
            f"; cached at {path}" if path else "",
        )
        a = psd_sqrt(s)
        if path is not None:

            def save(tmp: Path, a: np.ndarray = a) -> None:
                with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to the temporary name
                    np.savez(f, sqrt=a, source=np.asarray(key), checksum=np.asarray(_checksum(a)))

            atomic_write(path, save, CACHE)
    a.setflags(write=False)
    _memo[key] = a
    while len(_memo) > _MEMO_SIZE:
        _memo.popitem(last=False)
    return a


def clear_memo() -> None:
    """Forget the in-process square roots (the next call reads the disk cache)."""
    _memo.clear()
