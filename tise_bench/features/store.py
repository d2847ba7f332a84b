"""On-disk feature cache: sharded, content-addressed, atomically written, checksummed.

Layout: ``<cache>/features/<namespace>/<checksum>.npz`` where namespace is
``{backbone-ident}-{weights-hash}-{preproc-version}`` and each shard holds ``keys`` (sha256 of the image
bytes or of the text) plus one array per feature, row-aligned. The file name is the blake2b digest of the
file's bytes, so a truncated or altered shard is detected on read, reported and ignored (its rows are
recomputed). Shards are only ever added, never edited, so concurrent runs cannot corrupt each other.

What the checksum protects against: accidental corruption (an interrupted write, a bad disk, a copy that
lost bytes). It is not a signature: someone who can write to the cache can write a shard and name it by its
own digest. Every shard read is therefore also checked for structure: ``keys`` a 1-D array of strings and
every feature numeric with one row per key (else the shard is reported and ignored like a corrupt one, its
rows recomputed), and rows of the same per-row shape and dtype as the other shards read with it (else a
:class:`DataError` names both shards and the fix). Trust in the cache is still trust in whoever can write it
(README, Robustness: threat model).
"""

from __future__ import annotations

import hashlib
import io
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fsutil import CACHE, atomic_write_bytes, disk_errors

log = logging.getLogger(__name__)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class ShardWriter:
    """A background thread that writes :class:`FeatureStore` shards (issue 13 item 3), so that the thread running the
    forwards does not serialise, checksum and write them. Each shard is still written whole and atomically (a crash
    loses at most the shards not yet written, which a re-run recomputes); at most ``max_pending`` shards wait in
    memory (``submit`` blocks beyond that). The first failed write is raised by the next ``submit`` or ``flush``,
    and the shards submitted after it are not written."""

    def __init__(self, max_pending: int = 8) -> None:
        self._q: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max(1, max_pending))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tise-cache-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    job()
            except BaseException as e:  # handed to the caller's thread (submit / flush)
                self._error = e
            finally:
                self._q.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, job: Callable[[], None]) -> None:
        self._raise()
        self._q.put(job)

    def flush(self) -> None:
        """Wait until every submitted shard is written; raise the first failure."""
        self._q.join()
        self._raise()

    def close(self) -> None:
        """Flush and stop the thread."""
        try:
            self.flush()
        finally:
            self._q.put(None)
            self._thread.join()


class _Pending:
    """A shard handed to the :class:`ShardWriter` and not yet on disk: its rows are served from memory (the same
    arrays the file will hold)."""

    name = "(a shard not yet written)"

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays


class FeatureStore:
    """All shards of one namespace; ``get`` returns cached rows, ``put`` writes a new shard."""

    def __init__(self, root: str | Path, namespace: str) -> None:
        self.dir = Path(root) / "features" / namespace
        with disk_errors(self.dir, CACHE):
            self.dir.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, tuple[Path | _Pending, int]] = {}
        self._seen: set[Path] = set()
        #: shards this store wrote (their bytes' checksum is their name, computed here from the bytes written):
        #: read back without hashing them again
        self._own: set[Path] = set()
        self._lock = threading.Lock()
        self.n_corrupt = 0
        #: set (by FeatureBank, for one pass) to write shards on that thread; None: ``put`` writes before returning
        self.writer: ShardWriter | None = None
        self._scan()

    def _scan(self) -> None:
        for shard in sorted(self.dir.glob("*.npz")):
            if shard in self._seen:
                continue
            self._seen.add(shard)
            arrays = self._read(shard)
            if arrays is None:
                continue
            for row, key in enumerate(arrays["keys"].tolist()):
                self._index.setdefault(key, (shard, row))

    def _read(self, shard: Path) -> dict[str, np.ndarray] | None:
        try:
            data = shard.read_bytes()
            if shard not in self._own and _digest(data) != shard.stem:
                raise ValueError("checksum mismatch")
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            self._check(arrays)
        except (OSError, ValueError, KeyError) as e:
            self.n_corrupt += 1
            log.warning("feature cache shard %s is corrupt (%s); its rows will be recomputed", shard, e)
            return None
        return arrays

    def _check(self, arrays: dict[str, np.ndarray]) -> None:
        """Structure of a shard (raises ValueError): see the module docstring."""
        keys = arrays.get("keys")
        if keys is None or keys.ndim != 1 or keys.dtype.kind != "U":
            raise ValueError("no 1-D 'keys' array of strings")
        for name, a in arrays.items():
            if name == "keys":
                continue
            if a.dtype.kind not in "fiub" or a.ndim < 1 or a.shape[0] != keys.shape[0]:
                raise ValueError(f"feature {name!r} is {a.dtype} {a.shape}, not numeric with {keys.shape[0]} rows")

    def refresh(self) -> None:
        """Index shards other processes wrote since this store was opened (e.g. the other torchrun ranks)."""
        self._scan()

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def get(self, keys: list[str], features: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Rows for ``keys`` (all must be present), stacked per feature."""
        by_shard: dict[Path | _Pending, list[tuple[int, int]]] = {}
        for i, key in enumerate(keys):
            shard, row = self._index[key]
            by_shard.setdefault(shard, []).append((i, row))
        out: dict[str, np.ndarray] = {}
        first: dict[str, Path | _Pending] = {}
        for shard, pairs in by_shard.items():
            arrays = shard.arrays if isinstance(shard, _Pending) else self._read(shard)
            if arrays is None or any(f not in arrays for f in features):
                raise KeyError(f"shard {shard} vanished or lacks {features}")
            dst = np.asarray([i for i, _ in pairs])
            src = np.asarray([r for _, r in pairs])
            for f in features:
                if f not in out:
                    out[f] = np.empty((len(keys),) + arrays[f].shape[1:], dtype=arrays[f].dtype)
                    first[f] = shard
                elif (arrays[f].shape[1:], arrays[f].dtype) != (out[f].shape[1:], out[f].dtype):
                    raise DataError(
                        f"feature cache {self.dir}: {f!r} rows are {arrays[f].dtype} {arrays[f].shape[1:]} in "
                        f"{shard.name} but {out[f].dtype} {out[f].shape[1:]} in {first[f].name}; one of them was not "
                        f"written by this backbone. fix: delete {self.dir} (its features are recomputed)"
                    )
                out[f][dst] = arrays[f][src]
        return out

    def put(self, keys: list[str], arrays: dict[str, np.ndarray]) -> None:
        """A new shard of ``keys`` (row-aligned ``arrays``, not to be changed afterwards). With a :attr:`writer` it is
        written on that thread: the keys are found at once, their rows served from memory until the file exists."""
        if not keys:
            return
        keys = list(keys)
        arrays = {f: np.asarray(a) for f, a in arrays.items()}  # as np.savez stores them (a tensor: its array)
        if self.writer is None:
            self._write(keys, arrays, None)
            return
        pending = _Pending(arrays)
        with self._lock:
            for row, key in enumerate(keys):
                self._index[key] = (pending, row)
        self.writer.submit(lambda: self._write(keys, arrays, pending))

    def _write(self, keys: list[str], arrays: dict[str, np.ndarray], pending: _Pending | None) -> None:
        buf = io.BytesIO()
        # numpy's stub types savez(**kwds: ArrayLike) beside allow_pickle: bool, so mypy rejects any **dict
        np.savez(buf, keys=np.asarray(keys), **arrays)  # type: ignore[arg-type]
        data = buf.getvalue()
        name = atomic_write_bytes(self.dir / f"{_digest(data)}.npz", data, CACHE)
        with self._lock:
            self._seen.add(name)
            self._own.add(name)
            for row, key in enumerate(keys):  # (a key put again since then keeps its newer entry)
                if pending is None or self._index.get(key, (None, 0))[0] is pending:
                    self._index[key] = (name, row)


class MemoryStore:
    """A :class:`FeatureStore` that lives only in memory: the rows of in-memory images (``features/memory.py``), whose
    features are not worth keeping on disk (a training loop's samples are new at every evaluation)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._rows: dict[str, dict[str, np.ndarray]] = {}

    def refresh(self) -> None:
        pass

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def get(self, keys: list[str], features: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Rows for ``keys`` (all must be present), stacked per feature."""
        return {f: np.stack([self._rows[k][f] for k in keys]) for f in features}

    def put(self, keys: list[str], arrays: dict[str, np.ndarray]) -> None:
        # np.asarray as np.savez stores them (a tensor becomes its numpy array): rows equal FeatureStore's
        full = {f: np.asarray(a) for f, a in arrays.items()}
        for row, key in enumerate(keys):
            self._rows[key] = {f: a[row] for f, a in full.items()}
