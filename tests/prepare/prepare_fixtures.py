"""Fixture builders for tests/prepare: a tiny COCO-2014-format val set
(12 images, tiny PNGs, instances incl. several of a class and a crowd box, 5 captions each)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tise_bench.text.coco_classes import CLASS_TO_CATEGORY_ID, COCO_CLASSES

# image id -> (instances as (class, area, iscrowd), captions); caption ids are image_id * 10 + k
IMAGES: dict[int, tuple[list[tuple[str, float, int]], list[str]]] = {
    101: (
        [("dog", 900, 0), ("dog", 800, 0), ("couch", 3000, 0)],
        [
            "Two dogs sitting on a couch.",
            "A pair of dogs relaxing together",
            "two brown dogs on a sofa",
            "Dogs resting in a  living room\n",
            "A picture of something.",
        ],
    ),
    102: (
        [("cat", 500, 0), ("laptop", 700, 0)],
        [
            "A cat to the left of a laptop.",
            "a cat sitting next to a laptop",
            "A cat near a laptop computer",
            "one cat and a laptop",
            "a kitten by a computer",
        ],
    ),
    103: (
        [("sheep", 300, 0), ("sheep", 300, 0), ("sheep", 250, 0)],
        [
            "three sheep in a field",
            "Sheep grazing on a green hill",
            "a few sheep standing in the grass",
            "three white sheep graze outside",
            "A flock of sheep in a pasture",
        ],
    ),
    104: (
        [("person", 1200, 0), ("skateboard", 200, 0)],
        [
            "A man riding a skateboard",
            "a boy on a skateboard above a ramp",
            "A skateboarder doing a trick",
            "a person jumping with a skateboard",
            "A picture of something",
        ],
    ),
    105: (
        [("pizza", 400, 0), ("dining table", 2500, 0)],
        [
            "A pizza on top of a table",
            "a large pizza sitting on a table",
            "a pizza below a lamp",
            "a pizza and a table",
            "Pizza with cheese and basil",
        ],
    ),
    106: (
        [("person", 600, 0), ("person", 650, 0), ("person", 5000, 1), ("bus", 6000, 0)],
        [
            "two people standing in front of a bus",
            "People waiting behind a bus",
            "a red bus on a street",
            "a crowd near a bus",
            "A bus and two people",
        ],
    ),
    107: (
        [("dog", 700, 0)],
        [
            "two dogs playing in the snow",
            "a dog running in the snow",
            "A dog behind a fence",
            "a puppy outside",
            "a dog on the snow under a tree",
        ],
    ),
    108: (
        [],
        [
            "A view of a mountain range",
            "a painting of a cat above a fireplace",
            "mountains far away",
            "A scenic view",
            "snowy peaks",
        ],
    ),
    109: (
        [("cat", 400, 0), ("cat", 450, 0), ("bed", 4000, 0)],
        [
            "two cats sleeping on a bed",
            "cats lying between two pillows",
            "Two kittens on a bed",
            "a bed with two cats",
            "cats on a blanket",
        ],
    ),
    110: (
        [("bird", 100, 0), ("bench", 900, 0)],
        [
            "a bird under a bench",
            "a bird perched on a bench",
            "A small bird",
            "a bird and a bench",
            "a bench with a bird below it",
        ],
    ),
    111: (
        [("car", 2000, 0), ("car", 2100, 0)],
        ["two cars parked near a building", "cars outside a shop", "Two cars", "a street with cars", "two red cars"],
    ),
    112: (
        [("elephant", 5000, 0)],
        [
            "an elephant inside an enclosure",
            "a large elephant far from the camera",
            "An elephant",
            "one elephant eating hay",
            "an elephant to the right of a tree",
        ],
    ),
}


@dataclass(frozen=True)
class CocoFixture:
    root: Path
    image_dir: Path

    @staticmethod
    def image_of(caption_id: int) -> int:
        return caption_id // 10

    @staticmethod
    def counts(image_id: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for c, _, crowd in IMAGES[image_id][0]:
            if not crowd:
                out[c] = out.get(c, 0) + 1
        return out

    @staticmethod
    def classes(image_id: int) -> set[str]:
        return {c for c, _, _ in IMAGES[image_id][0]}

    @staticmethod
    def captions(image_id: int) -> list[tuple[int, str]]:
        return [(image_id * 10 + k, " ".join(c.split())) for k, c in enumerate(IMAGES[image_id][1])]


def write_coco(root: Path, with_instances: bool = True) -> CocoFixture:
    """Write annotations/captions_val2014.json, annotations/instances_val2014.json and val2014/*.png."""
    (root / "annotations").mkdir(parents=True)
    img_dir = root / "val2014"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    images, caps, inst = [], [], []
    for img_id, (objs, captions) in IMAGES.items():
        name = f"COCO_val2014_{img_id:012d}.png"
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(img_dir / name)
        images.append({"id": img_id, "file_name": name, "width": 8, "height": 8})
        caps += [{"id": img_id * 10 + k, "image_id": img_id, "caption": c} for k, c in enumerate(captions)]
        inst += [
            {
                "id": img_id * 100 + k,
                "image_id": img_id,
                "category_id": CLASS_TO_CATEGORY_ID[c],
                "area": a,
                "iscrowd": crowd,
                "bbox": [0, 0, 2, 2],
            }
            for k, (c, a, crowd) in enumerate(objs)
        ]
    caps.reverse()  # inputs in no particular order: preparation must sort
    (root / "annotations" / "captions_val2014.json").write_text(json.dumps({"images": images, "annotations": caps}))
    if with_instances:
        cats = [{"id": CLASS_TO_CATEGORY_ID[c], "name": c} for c in COCO_CLASSES]
        (root / "annotations" / "instances_val2014.json").write_text(
            json.dumps({"images": images, "annotations": inst, "categories": cats})
        )
    return CocoFixture(root, img_dir)
