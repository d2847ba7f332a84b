"""Imported detections (backbones.detector.imported=<json>): planted boxes -> SOA / CA by hand, both file
formats, the FeatureBank's by-path lookup, cache namespace, and clear errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from PIL import Image

from tise_bench.backbones import build_backbone
from tise_bench.backbones.imported_detections import ImportedDetections
from tise_bench.errors import ConfigError, DataError
from tise_bench.features.bank import FeatureBank
from tise_bench.runner import run

# COCO contiguous ids (ultralytics/TISE order) and official category ids of the classes used here
PERSON, CAR, CAT, DOG = 0, 2, 15, 16
CAT_ID = {PERSON: 1, CAR: 3, CAT: 17, DOG: 18}

# 4 images; what the captions name (SOA labels, CA counts) and the planted detections
RECORDS = [
    {"id": "0000", "caption": "two dogs", "labels": ["dog"], "counts": {"dog": 2}},
    {"id": "0001", "caption": "a cat and a dog", "labels": ["cat", "dog"], "counts": {"cat": 1}},
    {"id": "0002", "caption": "three people", "labels": ["person"], "counts": {"person": 3}},
    {"id": "0003", "caption": "a car", "labels": ["car"], "counts": {"car": 1}},
]
DETS = {  # file -> [(box, class, score)]
    "0000.png": [([1, 1, 10, 12], DOG, 0.9), ([2, 3, 20, 20], DOG, 0.6), ([0, 0, 5, 5], CAT, 0.4)],
    "0001.png": [([4, 4, 16, 16], CAT, 0.8)],
    "0002.png": [([0, 0, 24, 20], PERSON, 0.7), ([3, 3, 9, 9], PERSON, 0.3)],
    "0003.png": [],
}
# by hand at TISE's threshold 0.5 -- SOA pairs: (0,dog) yes, (1,cat) yes, (1,dog) no, (2,person) yes, (3,car) no
SOA_I = 60.0  # 3 of 5 pairs, in percent
SOA_C = 62.5  # per class: dog 1/2, cat 1/1, person 1/1, car 0/1 -> mean 0.625, in percent
CA = 0.75  # per image RMSE: |2-2|=0, |1-1|=0, |1-3|=2, |0-1|=1 -> mean 0.75


def _images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(RECORDS):
        a = np.full((24, 32, 3), 40 * i + 10, np.uint8)  # 32 wide, 24 high; distinct bytes per image
        Image.fromarray(a).save(folder / f"{r['id']}.png")
    return folder


def _v1(path: Path, **extra) -> Path:
    images = {
        f: {"boxes": [b for b, _, _ in d], "classes": [c for _, c, _ in d], "scores": [s for _, _, s in d]}
        for f, d in DETS.items()
    }
    images["0002.png"]["classes"] = ["person", "person"]  # class names are accepted as well as indices
    path.write_text(
        json.dumps(
            {
                "format": "tise_bench-detections-v1",
                "detector": "detectron2 mask_rcnn_R_50_FPN_3x",
                "images": images,
                **extra,
            }
        )
    )
    return path


def _coco(path: Path, bare: bool = False) -> Path:
    images = [{"id": 100 + i, "file_name": f, "width": 32, "height": 24} for i, f in enumerate(DETS)]
    ids = {im["file_name"]: im["id"] for im in images}
    results = [
        {
            ("file_name" if bare else "image_id"): (f if bare else ids[f]),
            "category_id": CAT_ID[c],
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "score": s,
        }
        for f, d in DETS.items()
        for b, c, s in d
    ]
    doc = (
        results
        if bare
        else {
            "format": "coco-results",
            "detector": "detectron2 mask_rcnn_R_50_FPN_3x",
            "images": images,
            "results": results,
        }
    )
    path.write_text(json.dumps(doc))
    return path


def _compose(tmp_path: Path, *overrides: str):
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        return compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                f"paths.cache_dir={tmp_path / 'c'}",
                f"paths.results_dir={tmp_path / 'res'}",
                "progress=false",
                "print_table=false",
                *overrides,
            ],
        )


def test_planted_detections_give_soa_and_ca_by_hand_through_the_cli_config(tmp_path) -> None:
    gen = _images(tmp_path / "gen")
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    js = _v1(tmp_path / "dets.json")
    args = [
        "model=folder",
        "model.name=mine",
        f"model.samples_dir={gen}",
        "data=custom",
        "data.name=tiny",
        f"data.manifest={man}",
        "metrics.ids=[soa_c,soa_i,ca]",
        f"backbones.detector.imported={js}",
    ]
    [res] = run(_compose(tmp_path, *args))
    assert res.metrics["soa_i"].value == pytest.approx(SOA_I)
    assert res.metrics["soa_c"].value == pytest.approx(SOA_C)
    assert res.metrics["ca"].value == pytest.approx(CA)
    det = res.provenance["backbones"]["detector"]
    assert det["imported"] == str(js) and det["detector"] == "detectron2 mask_rcnn_R_50_FPN_3x"
    assert det["random_weights"] is False and det["imported_sha256"] == hashlib.sha256(js.read_bytes()).hexdigest()
    assert res.provenance["backbone_forwards"]["detector"] == 4
    [again] = run(_compose(tmp_path, *args))  # cached: no lookups, same numbers
    assert again.provenance["backbone_forwards"]["detector"] == 0
    assert again.metrics["ca"].value == pytest.approx(CA)


@pytest.mark.parametrize("fmt", ["coco", "bare"])
def test_coco_results_formats_give_the_same_rows(tmp_path, fmt) -> None:
    v1 = ImportedDetections(path=_v1(tmp_path / "v1.json"), cache_dir=tmp_path / "c")
    other = ImportedDetections(path=_coco(tmp_path / f"{fmt}.json", bare=fmt == "bare"), cache_dir=tmp_path / "c")
    for f in DETS:
        if fmt == "bare" and not DETS[f]:
            with pytest.raises(DataError, match=f"{f}.*not in the imported detections"):
                other.lookup(f"/x/{f}", 32, 24)  # detectron2 wrote nothing for it: the bare list cannot tell
            continue
        np.testing.assert_allclose(other.lookup(f"/x/{f}", 32, 24), v1.lookup(f"/x/{f}", 32, 24), atol=1e-5)
    rows = v1.lookup("/x/0000.png", 32, 24)
    assert rows.shape == (100, 6) and rows[0].tolist() == pytest.approx([1, 1, 10, 12, 0.9, DOG])
    assert rows[2, 4] == pytest.approx(0.4) and (rows[3:] == -1).all()  # sorted by score, -1 padded


def test_bank_looks_images_up_by_path_and_names_a_missing_one(tmp_path) -> None:
    gen = _images(tmp_path / "gen")
    extra = tmp_path / "other" / "9999.png"
    extra.parent.mkdir()
    Image.fromarray(np.full((24, 32, 3), 250, np.uint8)).save(extra)
    js = _v1(tmp_path / "dets.json")
    bb = build_backbone(
        "detector", {"imported": str(js), "weights": None}, random=True, seed=0, cache_dir=tmp_path / "c", device="cpu"
    )
    assert isinstance(bb, ImportedDetections) and not bb.is_random
    bank = FeatureBank({"detector": bb}, tmp_path / "c")
    paths = [str(gen / f"{r['id']}.png") for r in RECORDS]
    got = bank.images(paths, {"detector": {"detections", "size"}}).features
    assert got["detector.size"].tolist() == [[32, 24]] * 4
    assert (got["detector.detections"][:, :, 4] >= 0.5).sum(1).tolist() == [2, 1, 1, 0]
    with pytest.raises(DataError, match=r"(?s)9999\.png is not in the imported detections .*dets\.json.*on_missing"):
        bank.images([str(extra)], {"detector": {"detections"}})

    js2 = _v1(tmp_path / "dets2.json", on_missing="empty")
    bb2 = ImportedDetections(path=js2, cache_dir=tmp_path / "c")
    got = FeatureBank({"detector": bb2}, tmp_path / "c").images([str(extra)], {"detector": {"detections"}}).features
    assert (got["detector.detections"] == -1).all() and bb2.describe()["n_missing"] == 1


def test_namespace_carries_the_json_sha256(tmp_path) -> None:
    js = _v1(tmp_path / "dets.json")
    a = ImportedDetections(path=js, cache_dir=tmp_path / "c")
    assert hashlib.sha256(js.read_bytes()).hexdigest()[:16] in a.namespace
    _v1(js, detector="detectron2 something else")  # same file name, other content
    b = ImportedDetections(path=js, cache_dir=tmp_path / "c2")
    assert b.namespace != a.namespace and b.describe()["detector"] == "detectron2 something else"
    d = a.describe()
    assert d["imported"] == str(js) and d["format"] == "tise_bench-detections-v1" and d["n_images_listed"] == 4


def test_one_key_for_two_files_is_refused(tmp_path) -> None:
    js = _v1(tmp_path / "dets.json")  # keys are basenames
    bb = ImportedDetections(path=js, cache_dir=tmp_path / "c")
    bb.lookup("/runs/a/0001.png", 32, 24)
    bb.lookup("/runs/a/0001.png", 32, 24)  # the same file again is fine
    with pytest.raises(DataError, match=r"key '0001\.png' matches two different images.*relative to the samples"):
        bb.lookup("/runs/b/0001.png", 32, 24)


def test_longest_key_wins(tmp_path) -> None:
    js = tmp_path / "d.json"
    js.write_text(
        json.dumps(
            {
                "format": "tise_bench-detections-v1",
                "images": {
                    "label_16_dog/7_0.png": {"boxes": [[0, 0, 4, 4]], "classes": ["dog"], "scores": [0.9]},
                    "label_15_cat/7_0.png": {"boxes": [[0, 0, 4, 4]], "classes": ["cat"], "scores": [0.9]},
                },
            }
        )
    )
    bb = ImportedDetections(path=js, cache_dir=tmp_path / "c")
    assert bb.lookup("/s/label_15_cat/7_0.png", 8, 8)[0, 5] == CAT
    assert bb.lookup("/s/label_16_dog/7_0.png", 8, 8)[0, 5] == DOG


def test_boxes_must_be_in_the_scored_files_pixels(tmp_path) -> None:
    bb = ImportedDetections(path=_v1(tmp_path / "d.json"), cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match=r"reach beyond the image .*0002\.png \(16x12.*resized copy"):
        bb.lookup("0002.png", 16, 12)
    bb = ImportedDetections(path=_coco(tmp_path / "c.json"), cache_dir=tmp_path / "c")  # carries width/height
    with pytest.raises(DataError, match=r"detected at 32x24 pixels but .*0003\.png is 64x48"):
        bb.lookup("0003.png", 64, 48)


@pytest.mark.parametrize(
    "doc,match",
    [
        (
            {
                "format": "tise_bench-detections-v1",
                "images": {"a.png": {"boxes": [[0, 0, 1, 1]], "classes": ["unicorn"], "scores": [0.9]}},
            },
            "class 'unicorn'",
        ),
        (
            {
                "format": "tise_bench-detections-v1",
                "images": {"a.png": {"boxes": [[0, 0, 1, 1]], "classes": [1], "scores": []}},
            },
            "lists of one length",
        ),
        ({"format": "detectron2"}, "expected 'tise_bench-detections-v1' or 'coco-results'"),
        ([{"image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}], "image_id 5 has no file name"),
        ([{"file_name": "a.png", "category_id": 12, "bbox": [0, 0, 1, 1], "score": 0.9}], "category_id 12 is not"),
        (
            {
                "format": "tise_bench-detections-v1",
                "images": {"a.png": {"boxes": [[0, 0, 1, 1]] * 3, "classes": [0] * 3, "scores": [0.9] * 3}},
            },
            "max_det=2",
        ),
    ],
)
def test_malformed_files_are_refused_naming_the_file(tmp_path, doc, match) -> None:
    js = tmp_path / "bad.json"
    js.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=match) as e:
        ImportedDetections(path=js, max_det=2, cache_dir=tmp_path / "c")
    assert str(js) in str(e.value)
