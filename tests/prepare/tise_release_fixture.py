"""A miniature TISE release (VinAIResearch/tise-toolbox), in its real file names, keys and folder layout.

``write_tise_release(root)`` writes the caption pickles where ``download_scripts/download_evaluation_data.py``
puts them (python pickles of lists / dicts, keys as TISE's scoring scripts read them); ``write_tise_images(root,
method)`` writes tiny generated images where TISE's AttnGAN++ scripts (``gen_evaluation_images_coco.sh``)
save them:

* ``image_realism/images/coco/<method>/<caption_id>.png``, ``text_relevance/images/coco/<method>/<caption_id>.png``,
  ``counting_alignment/images/<method>/<caption_id>.png``;
* ``positional_alignment/images/<method>/<word>/<caption_id>.png`` (``coco_gen_PA_input_images.py``);
* ``semantic_object_accuracy/images/<method>/label_XX_<name>/image_<i>.png`` (``coco_gen_soa_input_images.py``)
  for two classes, and ``<caption_id>_<k>.png`` (k = 0..2, TISE README) for the third.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REALISM = [
    {"caption_id": 101, "caption": "A dog runs on the beach."},
    {"caption_id": np.int64(102), "caption": "Two people ride bicycles down a street."},  # numpy id
    {"caption_id": 103, "caption": "A plate of food with broccoli."},
]
RP = [
    {
        "caption_id": 101,
        "caption": "A dog runs on the beach.",
        "mismatched_captions": [
            "A red bus parked by a curb.",
            "A kitchen with a white oven.",
            "A man surfing a big wave.",
            "Two giraffes eating leaves.",
        ],
    },
    {
        "caption_id": 201,
        "caption": "A cat sleeps on a laptop keyboard.",
        "mismatched_captions": [
            "A bowl of oranges on a table.",
            "A train at the station.",
            "People skiing down a slope.",
            "A clock tower at night.",
        ],
    },
    {
        "caption_id": 202,
        "caption": "A pizza with olives on a wooden table.",
        "mismatched_captions": [
            "An elephant in a river.",
            "A boy flying a kite.",
            "A toilet in a small bathroom.",
            "Sheep grazing on a hill.",
        ],
    },
]
PA = {
    "left": [
        {"caption_id": 301, "caption": "A cat to the left of a dog.", "false_caption": "A cat to the right of a dog."},
        {
            "caption_id": 302,
            "caption": "A lamp to the left of a bed.",
            "false_caption": "A lamp to the right of a bed.",
        },
    ],
    "above": [{"caption_id": 303, "caption": "A clock above a door.", "false_caption": "A clock below a door."}],
}
CA = [
    {"caption_id": 401, "caption": "Two dogs and one cat on a couch.", "counting_info": {"dog": 2, "cat": 1}},
    {
        "caption_id": 402,
        "caption": "Three people standing by a bus.",
        "counting_info": {"person": np.int64(3), "bus": 1},
    },
]
SOA = {
    "label_00_person": [
        {"caption_id": 501, "caption": "A man holding an umbrella."},
        {"caption_id": 502, "caption": "A woman riding a horse."},
    ],
    "label_04_plane": [{"caption_id": 503, "caption": "A plane flying over the clouds."}],
    "label_16_dog": [{"caption_id": 504, "caption": "A dog catching a frisbee."}],
}
SOA_README_STYLE = "label_16_dog"  # <caption_id>_<k>.png, k = 0..2; the others: image_<i>.png
CUB_REALISM = [
    {"caption_id": "Black_Footed_Albatross_0046_18_0", "caption": "this bird has a long white beak."},
    {"caption_id": "Laysan_Albatross_0002_1027_3", "caption": "a small bird with a yellow belly."},
]
CUB_RP = [
    {
        "caption_id": "Black_Footed_Albatross_0046_18_0",
        "caption": "this bird has a long white beak.",
        "mismatched_captions": [
            "a red bird with black wings.",
            "this bird is blue with a short beak.",
            "a tiny brown bird with spots.",
        ],
    }
]

CAPTION_FILES = {
    "realism": "image_realism/captions/coco_image_realism_captions.pkl",
    "rp": "text_relevance/captions/COCO_RP_captions.pkl",
    "pa": "positional_alignment/captions/PA_input_captions.pkl",
    "ca": "counting_alignment/captions/CA_input_captions.pkl",
    "cub_realism": "image_realism/captions/cub_image_realism_captions.pkl",
    "cub_rp": "text_relevance/captions/CUB_RP_captions.pkl",
}


@dataclass(frozen=True)
class TiseImages:
    """The generated-image folders of one method (what model.subset_dirs.<subset> points at)."""

    subset_dirs: dict[str, Path]
    n_images: dict[str, int]


def _dump(path: Path, obj: Any, protocol: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_tise_release(root: Path, cub: bool = True) -> Path:
    """The caption pickles of TISE's release under ``root`` (the toolbox folder); returns ``root``."""
    _dump(root / CAPTION_FILES["realism"], REALISM)
    _dump(root / CAPTION_FILES["rp"], RP, protocol=2)
    _dump(root / CAPTION_FILES["pa"], PA)
    _dump(root / CAPTION_FILES["ca"], CA)
    for stem, items in SOA.items():
        _dump(root / "semantic_object_accuracy" / "captions" / f"{stem}.pkl", items)
    if cub:
        _dump(root / CAPTION_FILES["cub_realism"], CUB_REALISM)
        _dump(root / CAPTION_FILES["cub_rp"], CUB_RP)
    return root


def _image(path: Path, seed: int, size: int = 32) -> None:
    rng = np.random.default_rng(seed)
    a = np.empty((size, size, 3), np.uint8)
    a[:] = rng.integers(0, 256, 3)
    y, x = rng.integers(0, size // 2, 2)
    a[y : y + size // 2, x : x + size // 2] = rng.integers(0, 256, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def write_tise_images(root: Path, method: str = "attngan++", size: int = 32) -> TiseImages:
    """Generated images of ``method`` in TISE's folder layout under ``root``."""
    dirs = {
        "realism": root / "image_realism" / "images" / "coco" / method,
        "rp": root / "text_relevance" / "images" / "coco" / method,
        "pa": root / "positional_alignment" / "images" / method,
        "ca": root / "counting_alignment" / "images" / method,
        "soa": root / "semantic_object_accuracy" / "images" / method,
    }
    n = dict.fromkeys(dirs, 0)
    seed = 0
    for s, items in (("realism", REALISM), ("rp", RP), ("ca", CA)):
        for it in items:
            seed += 1
            _image(dirs[s] / f"{it['caption_id']}.png", seed, size)
            n[s] += 1
    for word, items in PA.items():
        for it in items:
            seed += 1
            _image(dirs["pa"] / word / f"{it['caption_id']}.png", seed, size)
            n["pa"] += 1
    for stem, items in SOA.items():
        for i, it in enumerate(items):
            names = (
                [f"{it['caption_id']}_{k}.png" for k in range(3)] if stem == SOA_README_STYLE else [f"image_{i}.png"]
            )
            for name in names:
                seed += 1
                _image(dirs["soa"] / stem / name, seed, size)
                n["soa"] += 1
    return TiseImages(subset_dirs=dirs, n_images=n)
