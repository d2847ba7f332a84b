"""clean-fid's "clean" resize (Parmar et al. 2022, "On Aliased Resizing and Surprising Subtleties in GAN Evaluation").

Reference: GaParmar/clean-fid ``cleanfid/resize.py``: ``build_resizer("clean")`` is
``make_resizer("PIL", False, "bicubic", (299, 299))``, whose function, for an RGB uint8 array ``x`` (H, W, 3):

* per channel ``c``: ``Image.fromarray(x[:, :, c].astype(np.float32), mode="F")`` (a 32-bit float image, no
  quantisation), ``.resize(output_size, resample=Image.BICUBIC)`` (PIL's antialiased bicubic filter),
  ``np.asarray(...).clip(0, 255).reshape(s2, s1, 1)``;
* the channels concatenated and cast to float32: (s2, s1, 3) in [0, 255], never rounded back to uint8.

``output_size`` is PIL's ``(width, height)``. layer6ai-labs/dgm-eval ``dgm_eval/resizer.py`` (``pil_resize``, its
``--clean_resize`` option) is the same function.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: clean-fid's Inception input side (``build_resizer``'s (299, 299))
CLEAN_FID_SIZE = (299, 299)


def clean_resize(img: Image.Image | np.ndarray, size: tuple[int, int] = CLEAN_FID_SIZE) -> np.ndarray:
    """clean-fid's PIL bicubic resize on float32, per channel: RGB -> float32 (size[1], size[0], 3) in [0, 255].

    ``img``: a PIL image (converted to RGB first, as clean-fid's reader does) or a uint8/float (H, W, 3) array;
    ``size``: PIL's ``(width, height)``.
    """
    if isinstance(img, Image.Image):
        x = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    else:
        x = np.asarray(img)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"clean_resize: expected an RGB image (H, W, 3), got shape {x.shape}")
    w, h = int(size[0]), int(size[1])
    out = np.empty((h, w, 3), dtype=np.float32)
    for c in range(3):
        ch = Image.fromarray(np.ascontiguousarray(x[:, :, c], dtype=np.float32), mode="F")
        out[:, :, c] = np.asarray(ch.resize((w, h), resample=Image.Resampling.BICUBIC)).clip(0, 255)
    return out
