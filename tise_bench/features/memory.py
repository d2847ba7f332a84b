"""In-memory images as a feature-bank source (issue 14 item 2): no file is written, read or decoded.

A :class:`MemoryImage` stands where a file path stands in :meth:`FeatureBank.images`: ``key`` names it (results'
``file`` column, error messages), its content hash is the sha256 of a header and its 8-bit RGB pixels, and its
"decode" is the image itself. Each backbone then preprocesses it exactly as it preprocesses a decoded file, so its
features, hence every metric, equal those of a lossless file (PNG) of the same pixels; only the cache key differs
(the file's key hashes its encoded bytes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from PIL import Image

from ..errors import DataError
from ..imagefile import check_max_pixels

#: Content-hash header (versioned: a change of what is hashed must not reuse old keys).
HEADER = b"raw-rgb|"
#: How the keys of in-memory images begin (never a resolved file path, which begins with "/" or a drive).
KEY_PREFIX = "memory://"


def is_memory_key(path: str) -> bool:
    return path.startswith(KEY_PREFIX)


def pixel_hash(img: Image.Image) -> str:
    """sha256 of ``raw-rgb|<W>x<H>|`` and the RGB bytes (row-major, 3 bytes a pixel) of an RGB image."""
    w, h = img.size
    return hashlib.sha256(HEADER + f"{w}x{h}|".encode() + img.tobytes()).hexdigest()


@dataclass(frozen=True)
class MemoryImage:
    """An 8-bit RGB image held in memory, named ``key``. The sha256 is computed when first asked (in the bank's
    input workers, which run beside the forwards)."""

    key: str
    image: Image.Image = field(compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.image.mode != "RGB":
            raise ValueError(f"MemoryImage {self.key}: mode {self.image.mode}, expected RGB (convert it first)")

    @property
    def sha(self) -> str:
        return pixel_hash(self.image)

    def decode(self, max_pixels: int | None) -> Image.Image:
        """The image, checked against the decompression-bomb guard a file of it would meet (``max_pixels``)."""
        limit = check_max_pixels(max_pixels)
        w, h = self.image.size
        if limit is not None and w * h > limit:
            raise DataError(
                f"{self.key}: {w}×{h} = {w * h} pixels exceeds max_pixels={limit}\n  fix: pass max_pixels=<larger "
                f"number> (or max_pixels=null), or give smaller images"
            )
        if w < 1 or h < 1:
            raise DataError(f"{self.key}: empty image ({w}×{h})")
        return self.image
