"""The one place an image file becomes pixels. Counted, so tests can prove one decode per image."""
from __future__ import annotations

import hashlib
import io
import warnings

from PIL import Image, ImageOps

from ..errors import DataError

DECODE_COUNT = 0  # incremented per decode; tests reset and read it


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise DataError(f"cannot read image file {path}: {e.strerror or e}") from None


def decode_image(data: bytes, path: str, max_pixels: int | None = 178_956_970) -> Image.Image:
    """bytes -> loaded RGB PIL image (EXIF orientation applied). Raises DataError naming ``path``."""
    global DECODE_COUNT
    DECODE_COUNT += 1
    if not data:
        raise DataError(f"{path}: empty (0-byte) image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                img = Image.open(io.BytesIO(data))
                img.load()
            finally:
                Image.MAX_IMAGE_PIXELS = old
        img = ImageOps.exif_transpose(img)
        if img.mode != "RGB":
            img = img.convert("RGB")
        return img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: image exceeds the pixel limit ({e}); raise data.max_pixels if it is genuine") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not a decodable image ({e})") from None
