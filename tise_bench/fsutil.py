"""Writing files safely: atomic replacement under a unique temporary name, a set of files replaced together,
and one plain paragraph (naming the folder and the fix) for a full, read-only or forbidden disk.

Every file tise_bench writes goes through :func:`atomic_write` (or :func:`replace_together` for a set): the
content goes to ``.<name>.<pid>-<random>.tmp`` in the target's folder, which then replaces the target. The
temporary name is unique per call (two processes or threads writing the same file never share one), begins
with a dot and ends in ``.tmp`` (no reader's ``*.npz`` / ``*.jsonl`` pattern matches it), and is removed on
any exception. An :class:`OSError` meaning "this folder cannot take the file" (disk full, quota, read-only
file system, permission, a path under a regular file) becomes a :class:`~tise_bench.errors.StorageError`;
other errors pass through unchanged. :func:`check_writable` asks the same question before any work starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import StorageError


@dataclass(frozen=True)
class Place:
    """What a folder is to the user (``what``) and the setting that chooses another one (``setting``)."""

    what: str
    setting: str


#: The folders a run writes; the settings that move them (one place for the messages' advice).
CACHE = Place("cache folder", "paths.cache_dir=<folder> (Python API: cache_dir=<folder>; or $TISE_CACHE_DIR)")
RESULTS = Place("results folder", "paths.results_dir=<folder> (Python API: write_to=<folder>)")
LEADERBOARD = Place(
    "leaderboard folder",
    "paths.results_dir=<folder> after copying the run folders there (the board is written beside the runs)",
)
OUTPUT = Place("output folder", "another output path")

#: errno -> what happened, in words. Only these become a StorageError; anything else is a bug to see whole.
DISK_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a file is in the way of a folder",
}

#: Free space (bytes, for this user) below which :func:`check_writable` reports the disk as full.
MIN_FREE_BYTES = 1 << 20


def _fix(code: int | None, folder: Path, place: Place) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"free space there (df -h {folder}), or write elsewhere: {place.setting}"
    if code == errno.EROFS:
        return f"write to a folder on a writable disk: {place.setting}"
    if code in (errno.EACCES, errno.EPERM):
        return f"make {folder} writable for this user (its owner and mode), or write elsewhere: {place.setting}"
    return f"make {folder} a folder (move the file in its way), or write elsewhere: {place.setting}"


def storage_error(e: OSError, folder: str | Path, place: Place = OUTPUT) -> StorageError:
    """The one-paragraph error for an OSError of :data:`DISK_ERRNOS` raised while writing into ``folder``."""
    folder = Path(folder)
    happened = DISK_ERRNOS.get(e.errno or 0, e.strerror or str(e))
    name = errno.errorcode.get(e.errno or 0, "")
    detail = f"{name}: {e.strerror}" if name and e.strerror else str(e)
    where = f", at {e.filename}" if e.filename and Path(str(e.filename)) != folder else ""
    return StorageError(
        f"cannot write to the {place.what} {folder}: {happened} ({detail}{where}). Nothing half-written was left "
        f"there; fix: {_fix(e.errno, folder, place)}."
    )


@contextlib.contextmanager
def disk_errors(folder: str | Path, place: Place = OUTPUT) -> Iterator[None]:
    """Turn an OSError of :data:`DISK_ERRNOS` raised inside the block into :func:`storage_error`."""
    try:
        yield
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            raise
        raise storage_error(e, folder, place) from e


def temp_path(path: str | Path) -> Path:
    """A temporary sibling of ``path`` no other call shares: ``.<name>.<pid>-<random>.tmp``."""
    p = Path(path)
    return p.with_name(f".{p.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            p.unlink()


def atomic_write(path: str | Path, writer: Callable[[Path], object], place: Place = OUTPUT) -> Path:
    """``writer(tmp)`` writes the content to ``tmp`` (a file, or a folder it creates), which then replaces
    ``path``; the parent folder is created. On any exception the temporary is removed; disk errors become a
    :class:`StorageError` naming the folder. Returns ``path``."""
    path = Path(path)
    with disk_errors(path.parent, place):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)
        try:
            writer(tmp)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, place: Place = OUTPUT) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda t: t.write_bytes(data), place)


def atomic_write_text(path: str | Path, text: str, place: Place = OUTPUT) -> Path:
    """:func:`atomic_write` of ``text`` as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), place)


def torch_save_bytes(obj: object, archive: str = "w") -> bytes:
    """``torch.save(obj)`` as bytes, byte-identical to saving to a file named ``<archive>.pth``.

    torch's zip format names its records after the file it is saved to, so saving straight to a unique temporary
    name would make every write of the same weights differ (and the weights hash, which is part of cache
    namespaces, with it). The cached random weights were always saved as ``w.pth``; this keeps their bytes."""
    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / f"{archive}.pth"
        torch.save(obj, path)
        return path.read_bytes()


def replace_together(folder: str | Path, files: Mapping[str, bytes], place: Place = OUTPUT) -> dict[str, Path]:
    """Write ``{file name: content}`` into ``folder`` as one set: every file is first written in full under
    its temporary name, and only when all are on disk are they renamed into place, back to back. A failure
    while writing (a full disk, an exception) removes every temporary and leaves the previous set untouched;
    only a kill during the renames themselves (no I/O, microseconds) can leave a mix. Returns {name: path}."""
    folder = Path(folder)
    staged: dict[str, Path] = {}
    with disk_errors(folder, place):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            for name, data in files.items():
                staged[name] = temp_path(folder / name)
                staged[name].write_bytes(data)
            for name, tmp in staged.items():
                os.replace(tmp, folder / name)
        except BaseException:
            for tmp in staged.values():
                _remove(tmp)
            raise
    return {name: folder / name for name in files}


def check_writable(folder: str | Path, place: Place, *, create: bool = True) -> Path:
    """Raise :class:`StorageError` now, before any work, if ``folder`` cannot take files: it (or a folder
    above it) is a file, is read-only or not ours, or its disk has under :data:`MIN_FREE_BYTES` free. A probe
    file is created and removed. ``create``: make the folder if it is missing; otherwise the nearest existing
    folder above it is probed (where it would be created). Returns ``folder``."""
    folder = Path(folder)
    with disk_errors(folder, place):
        if create:
            folder.mkdir(parents=True, exist_ok=True)
            probe_dir = folder
        else:
            probe_dir = folder
            while not probe_dir.exists() and probe_dir != probe_dir.parent:
                probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(probe_dir))
        probe = temp_path(probe_dir / "write-probe")
        try:
            probe.write_bytes(b"\0")
        finally:
            _remove(probe)
        if shutil.disk_usage(probe_dir).free < MIN_FREE_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(probe_dir))
    return folder
