"""The one place an image file becomes pixels: the feature bank and the leaderboard's drill-down both use it.
Counted, so tests can prove one decode per image. Imports nothing of the package but ``errors``.

Every decodable oddity becomes plain 8-bit RGB with the right pixels (see ``docs/input_matrix.md``):

* EXIF orientation is applied (a JPEG with orientation 6 comes out rotated 90° clockwise);
* 16-bit grayscale (``I;16*``, and ``I`` as older Pillow reads 16-bit PNGs) is scaled to 8 bits,
  ``round(v · 255 / 65535)``, instead of Pillow's ``convert("RGB")``, which clips everything above 255 to
  white; 32-bit float (``F``) is clipped to 0..255 as Pillow does;
* transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a ``tRNS`` colour key) is composited on
  **white** — opaque pixels are unchanged, so an opaque RGBA image gives exactly its RGB channels;
* ``CMYK`` (including Adobe's inverted CMYK JPEGs), ``P``, ``L``, ``1`` and ``YCbCr`` use Pillow's
  conversion. Embedded ICC profiles are ignored, as torch-fidelity and pytorch-fid ignore them.

Anything else raises :class:`~tise_bench.errors.DataError` naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import math
import os
import stat
import sys
import threading
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ConfigError, DataError

DECODE_COUNT = 0  # incremented per decode; tests reset and read it

#: Pillow's own default guard (2 × ``Image.MAX_IMAGE_PIXELS``); the config's ``max_pixels`` default.
DEFAULT_MAX_PIXELS = 178_956_970
#: Largest image file read, bytes (the config's ``max_file_bytes`` default): 1 GiB, far above any real
#: generated or reference image, low enough that a runaway file cannot exhaust memory.
DEFAULT_MAX_FILE_BYTES = 1 << 30
#: Container formats we let Pillow open. Identification is by content, not extension, so this keeps a
#: renamed EPS/PDF/etc. (which Pillow would hand to external programs such as Ghostscript) out. The JPEG
#: opener also reads MPO, the multi-picture JPEGs many phone cameras write.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
#: Modes holding alpha (composited on white).
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
#: 16-bit (and 32-bit integer) grayscale modes, scaled 0..65535 -> 0..255.
WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
BACKGROUND = (255, 255, 255)
FIX_BAD = "fix: re-export or remove the file, or pass on_bad_image=skip to skip it (skips are counted in metrics.json)"


def content_hash(data: bytes) -> str:
    """sha256 hex digest of ``data`` (the feature-cache key of an image)."""
    return hashlib.sha256(data).hexdigest()


#: Leading bytes -> what a file is, for the "not an image" message (which must never quote the bytes
#: themselves: with ``on_bad_image=skip`` it lands in ``metrics.json``).
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "zip archive"),
    (0, b"PK\x05\x06", "zip archive"),
    (0, b"\x1f\x8b", "gzip archive"),
    (0, b"%PDF", "PDF document"),
    (0, b"%!PS", "PostScript/EPS file"),
    (0, b"\xc5\xd0\xd3\xc6", "EPS file"),
    (0, b"\x7fELF", "executable (ELF)"),
    (0, b"\x93NUMPY", "NumPy array"),
    (0, b"8BPS", "Photoshop image (not a readable format)"),
    (0, b"\x00\x00\x01\x00", "ICO image (not a readable format)"),
    (4, b"ftyp", "ISO media file (HEIC/AVIF/MP4; not a readable format)"),
    (0, b"\x89PNG", "damaged PNG"),
    (0, b"\xff\xd8\xff", "damaged JPEG"),
)


def detect_type(data: bytes) -> str:
    """What ``data`` looks like, from its first bytes: a known signature, ``text file``, ``empty file`` or
    ``unknown binary``. Never any of the content itself."""
    if not data:
        return "empty file"
    for offset, magic, kind in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return kind
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return "Python pickle"
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut at byte 512 is still text
        text = head[: e.start].decode("utf-8") if e.start >= len(head) - 3 else ""
    if text and all(ch.isprintable() or ch in "\t\r\n\f" for ch in text.lstrip("\ufeff")):
        return "text file"
    return "unknown binary"


def _link_note(path: str) -> str:
    """`` (a symbolic link to X)`` when ``path`` is a symlink, so a dangling/looping link is obvious."""
    try:
        return f" (a symbolic link to {os.readlink(path)})" if os.path.islink(path) else ""
    except OSError:
        return ""


def read_bytes(path: str, max_bytes: int | None = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """The file's bytes, read only from a **regular file** of at most ``max_bytes`` (``None``: no limit).

    A FIFO, socket or device (``/dev/zero``, a link to one) is refused without blocking: the file is opened
    non-blocking and checked with ``fstat`` before any byte is read, so a FIFO named ``x.png`` cannot hang the
    run. The read itself is bounded (a file growing past the limit while read is refused too). A missing,
    dangling-symlink, looping-symlink, directory, special, oversized or unreadable path raises
    :class:`DataError` naming it and the fix.
    """
    limit = check_max_file_bytes(max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        why = "symbolic link loop" if e.errno == errno.ELOOP else (e.strerror or str(e))
        with contextlib.suppress(OSError):  # opening a socket fails with ENXIO ("No such device or address")
            if e.errno == errno.ENXIO and stat.S_ISSOCK(os.stat(path).st_mode):
                why = "not a regular file (a socket); only regular files are read"
        raise DataError(f"cannot read image file {path}{_link_note(path)}: {why}\n  {FIX_BAD}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else f"not a regular file ({_file_kind(st.st_mode)})"
            raise DataError(
                f"cannot read image file {path}{_link_note(path)}: {kind}; only regular files are read\n  {FIX_BAD}"
            )
        if limit is not None and st.st_size > limit:
            raise DataError(_too_big(path, f"{st.st_size} bytes", limit))
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20 if limit is None else min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:
                raise DataError(_too_big(path, "more bytes than its size said (it grew while read)", limit))
        return b"".join(chunks)
    except OSError as e:
        raise DataError(f"cannot read image file {path}{_link_note(path)}: {e.strerror or e}\n  {FIX_BAD}") from None
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO/named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "a special file"


def _too_big(path: str, size: str, limit: int) -> str:
    return (
        f"{path}: {size} exceeds max_file_bytes={limit}\n  fix: if the image is genuine pass "
        f"max_file_bytes=<larger number> (or max_file_bytes=null for no limit); otherwise remove it or pass "
        f"on_bad_image=skip to skip and count it"
    )


def check_max_pixels(max_pixels: object) -> int | None:
    """Validate the ``max_pixels`` switch: a positive integer, or ``None`` (guard disabled)."""
    if max_pixels is None:
        return None
    if (
        isinstance(max_pixels, bool)
        or not isinstance(max_pixels, (int, float))
        or not math.isfinite(max_pixels)
        or max_pixels < 1
        or int(max_pixels) != max_pixels
    ):
        raise ConfigError(
            f"max_pixels={max_pixels!r} is not valid: give a positive integer number of pixels "
            f"(default {DEFAULT_MAX_PIXELS}), or max_pixels=null to disable the decompression-bomb guard"
        )
    return int(max_pixels)


def check_max_file_bytes(max_bytes: object) -> int | None:
    """Validate the ``max_file_bytes`` switch: a positive integer, or ``None`` (no size limit)."""
    if max_bytes is None:
        return None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ConfigError(
            f"max_file_bytes={max_bytes!r} is not valid: give a positive integer number of bytes "
            f"(default {DEFAULT_MAX_FILE_BYTES}), or max_file_bytes=null for no limit"
        )
    return max_bytes


def _scale_wide_gray(img: Image.Image) -> Image.Image:
    """16-bit (or 32-bit int) grayscale -> 8-bit ``L``: clip to 0..65535, then ``round(v · 255 / 65535)``."""
    a = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
    return Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8))


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB with the pixels a viewer shows (module docstring has the rules)."""
    mode = img.mode
    if mode in WIDE_GRAY_MODES:
        img = _scale_wide_gray(img)  # drops a 16-bit tRNS colour key (rare; documented)
    elif mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))
    elif mode in ALPHA_MODES or (mode in ("P", "L", "RGB", "1") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba)
    return img if img.mode == "RGB" else img.convert("RGB")


def _pil_open():
    """Pillow's own ``Image.open``. ultralytics replaces it on import with a wrapper that, on an unidentified
    file, tries to import (or pip-install) ``pi-heif``; we identify files by content ourselves and want
    neither the install attempt nor its ``ModuleNotFoundError`` in place of a clear message."""
    op = Image.open
    if getattr(op, "__module__", "") == Image.__name__:
        return op
    orig = getattr(sys.modules.get(getattr(op, "__module__", ""), None), "_image_open", None)
    return orig if getattr(orig, "__module__", "") == Image.__name__ else op


def _exif_transpose(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation; a malformed EXIF block leaves the image as stored rather than failing."""
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        return img


_COUNT_LOCK = threading.Lock()
_PIL_LOCK = threading.Lock()
_pil_depth = 0
_pil_saved: tuple[int | None, bool] | None = None


@contextlib.contextmanager
def pil_settings() -> Iterator[None]:
    """Pillow's process globals as our decoder needs them, for the duration of the block: its bomb limit off (our
    own guard, :func:`decode_image`'s ``max_pixels``, replaces it), and truncated files failing even if some
    other library switched ``LOAD_TRUNCATED_IMAGES`` on (it would pad them with grey).

    Re-entrant and thread-safe: the first block to enter sets the globals, the last to leave restores them, so
    decoding in several threads (``FeatureBank(num_workers=...)``) never leaves them changed."""
    global _pil_depth, _pil_saved
    with _PIL_LOCK:
        if _pil_depth == 0:
            _pil_saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        _pil_depth += 1
    try:
        yield
    finally:
        with _PIL_LOCK:
            _pil_depth -= 1
            if _pil_depth == 0 and _pil_saved is not None:
                Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = _pil_saved
                _pil_saved = None


def decode_image(data: bytes, path: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """bytes -> loaded 8-bit RGB PIL image (EXIF orientation applied, modes normalised by :func:`to_rgb`).

    ``max_pixels`` is the decompression-bomb guard, checked on the header before any pixel is decoded
    (``None`` disables it). Raises :class:`DataError` naming ``path`` and the fix.
    """
    global DECODE_COUNT
    with _COUNT_LOCK:
        DECODE_COUNT += 1
    limit = check_max_pixels(max_pixels)
    if not data:
        raise DataError(f"{path}: empty (0-byte) image file\n  {FIX_BAD}")
    with pil_settings():
        try:
            Image.init()
            try:
                img = _pil_open()(io.BytesIO(data), formats=[f for f in FORMATS if f in Image.OPEN])
            except (UnidentifiedImageError, ImportError):
                raise DataError(
                    f"{path}: not an image file ({detect_type(data)}, {len(data)} bytes; readable "
                    f"formats: {', '.join(FORMATS)})\n  {FIX_BAD}"
                ) from None
            w, h = img.size
            if limit is not None and w * h > limit:
                raise DataError(
                    f"{path}: {w}×{h} = {w * h} pixels exceeds max_pixels={limit} (decompression-bomb guard)\n"
                    f"  fix: if the image is genuine pass max_pixels=<larger number> (or max_pixels=null to "
                    f"disable the guard); otherwise remove it or pass on_bad_image=skip to skip and count it"
                )
            img.load()
            img = to_rgb(_exif_transpose(img))
        except DataError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise DataError(f"{path}: corrupt or truncated image ({e})\n  {FIX_BAD}") from None
    return img
