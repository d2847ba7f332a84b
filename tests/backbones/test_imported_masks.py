"""Imported instance masks (backbones.segmenter.imported=<segments file>): GenEval scored on GenEval's own
Mask2Former outputs. COCO RLE against hand-made masks and pycocotools; the per-class order of evaluate_images.py
(ties included); the same features and verdicts as the segmenter path given identical boxes and masks; a whole
run naming the imported detector in metrics.json; malformed files refused with the file, the key and a fix."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tise_bench.backbones.imported_detections import (
    ImportedSegments,
    rle_counts_from_string,
    rle_counts_to_string,
    rle_decode,
    rle_encode,
)
from helpers import tiny_clip_model
from tise_bench.data.manifest import Record
from tise_bench.errors import ConfigError, DataError
from tise_bench.metrics import geneval as G

DOG, CLOCK = G.GENEVAL_CLASSES.index("dog"), G.GENEVAL_CLASSES.index("clock")
DETECTOR = "mmdet mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco"
W, H = 64, 48


# ---- COCO RLE -------------------------------------------------------------------------------------------------------
def test_rle_decode_hand_made_masks() -> None:
    m = np.array([[0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]], bool)  # column-major: 0 0 1 | 1 1 1 | 1 0 0 | 0 0 0
    assert rle_decode({"size": [3, 4], "counts": [2, 5, 5]}).tolist() == m.tolist()  # uncompressed runs
    assert rle_decode({"size": [3, 4], "counts": "255"}).tolist() == m.tolist()  # one char per small count
    assert rle_encode(m) == {"size": [3, 4], "counts": "255"}
    starts_on = np.array([[1, 1], [1, 0]], bool)  # first pixel set: the zero-run count is 0
    assert rle_encode(starts_on)["counts"] == "031"
    assert rle_decode({"size": [2, 2], "counts": "031"}).tolist() == starts_on.tolist()
    assert rle_decode({"size": [2, 2], "counts": [0, 3, 1]}).tolist() == starts_on.tolist()
    # runs 0, 40, 3, 100, 2 worked through maskApi.c rleToString by hand: 40 -> 'X1' (two chunks), 3 -> '3',
    # 100 - 40 = 60 -> 'l1' (delta to the count two before), 2 - 3 = -1 -> 'O' (sign bit 0x10)
    assert rle_counts_to_string([0, 40, 3, 100, 2]) == "0X13l1O"
    assert rle_counts_from_string("0X13l1O") == [0, 40, 3, 100, 2]
    big = np.zeros((5, 29), bool)  # 145 pixels, columns of 5: ones 0..39, zeros 40..42, ones 43..142, zeros
    big[:, 0:8] = True
    big[3:5, 8] = True
    big[:, 9:28] = True
    big[0:3, 28] = True
    assert rle_decode({"size": [5, 29], "counts": "0X13l1O"}).tolist() == big.tolist()
    assert rle_encode(big)["counts"] == "0X13l1O"
    assert not rle_decode(rle_encode(np.zeros((3, 2), bool))).any()
    with pytest.raises(ValueError, match="cover 11 pixels"):
        rle_decode({"size": [3, 4], "counts": [2, 5, 4]})


def test_rle_matches_pycocotools() -> None:
    mask_util = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(3)
    for h, w, p in ((1, 1, 0.5), (7, 5, 0.5), (40, 33, 0.02), (40, 33, 0.97), (120, 90, 0.4)):
        m = rng.random((h, w)) < p
        m[: h // 3, : w // 2] = True  # long runs: multi-chunk and negative deltas
        ref = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
        ours = rle_encode(m)
        assert ours["counts"] == ref["counts"].decode() and ours["size"] == list(ref["size"])
        np.testing.assert_array_equal(rle_decode(ours), mask_util.decode(ref).astype(bool))
        np.testing.assert_array_equal(rle_decode({"size": [h, w], "counts": ref["counts"]}), m)


def runs(m: np.ndarray) -> dict:
    """From scratch, COCO's uncompressed RLE: run lengths of the column-major pixels, zeros first."""
    flat, out, cur, n = m.T.reshape(-1).tolist(), [], False, 0
    for v in flat:
        if bool(v) != cur:
            out.append(n)
            cur, n = bool(v), 0
        n += 1
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": [*out, n]}


# ---- GenEval's per-class order --------------------------------------------------------------------------------------
def ref_detected(bbox: list[np.ndarray], thr: float, max_objects: int = 16) -> dict[int, list[list[float]]]:
    """evaluate_images.py evaluate_image's box selection on mmdet's per-class arrays (max_overlap 1)."""
    out = {}
    for index in range(len(bbox)):
        if not len(bbox[index]):
            continue
        ordering = np.argsort(bbox[index][:, 4])[::-1]
        ordering = ordering[bbox[index][ordering, 4] > thr]
        ordering = ordering[:max_objects].tolist()
        if ordering:
            out[index] = [bbox[index][o].tolist() for o in ordering]
    return out


def _write(path: Path, images: dict, jsonl: bool = False, **header) -> Path:
    head = {"format": "tise_bench-segments-v1", "detector": DETECTOR, **header}
    if jsonl:
        lines = [head] + [{"image": k, **v} for k, v in images.items()]
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    else:
        path.write_text(json.dumps({**head, "images": images}))
    return path


def _entry(objs: list, size=(W, H)) -> dict:
    """objs: (box, class, score, mask or None) -> mmdet's per-class layout (bbox = result[0], segm = result[1])."""
    bbox: list[list] = [[] for _ in G.GENEVAL_CLASSES]
    segm: list[list] = [[] for _ in G.GENEVAL_CLASSES]
    for n, (box, c, s, m) in enumerate(objs):
        bbox[c].append([*box, s])
        segm[c].append(None if m is None else (runs(m) if n % 2 else rle_encode(m)))  # both RLE kinds
    return {"size": list(size), "bbox": bbox, "segm": segm}


def test_rows_keep_evaluate_images_order_with_ties(tmp_path) -> None:
    objs = [
        ([0, 0, 5, 5], DOG, 0.9, None),
        ([10, 0, 15, 5], DOG, 0.9, None),  # tie: evaluate_images.py's argsort(...)[::-1] puts this one first
        ([20, 0, 25, 5], DOG, 0.95, None),
        ([30, 0, 35, 5], DOG, 0.2, None),
        ([0, 10, 5, 15], CLOCK, 0.9, None),
        ([9, 10, 15, 15], CLOCK, 0.5, None),
    ]
    e = _entry(objs)
    t = ImportedSegments(path=_write(tmp_path / "s.json", {"a.png": e}), cache_dir=tmp_path / "c")
    rows, index = t.entry(str(tmp_path / "a.png"), W, H)
    assert index == 0 and t.detector == DETECTOR and not t.has_masks
    bbox = [np.asarray(b, dtype=np.float32).reshape(-1, 5) for b in e["bbox"]]
    for thr in (0.3, 0.9, 0.1):
        kept = G.keep_objects(rows, thr, 16, 1.0)
        want = ref_detected(bbox, thr)
        assert {c: [rows[r][:5].tolist() for r in rr] for c, rr in kept.items()} == want
    assert rows[1, 0] == 10 and rows[2, 0] == 0  # the tied dogs, in the reference's order


# ---- the same features and verdicts as the segmenter path ----------------------------------------------------------
def _scene() -> tuple[list[str], list[Image.Image], list[list], list[Record], list[tuple[bool, str] | None]]:
    """Five images with hand-made detections + masks, their GenEval records and the verdicts by hand (None: the
    verdict depends on the colour, i.e. on the random CLIP)."""
    rng = np.random.default_rng(0)

    def rect(x1, y1, x2, y2, holes=0.0):
        m = np.zeros((H, W), bool)
        m[y1:y2, x1:x2] = rng.random((y2 - y1, x2 - x1)) >= holes
        return m

    def img(*colored):
        a = np.full((H, W, 3), 235, np.uint8)
        for (x1, y1, x2, y2), c in colored:
            a[y1:y2, x1:x2] = c
        return Image.fromarray(a)

    red, blue = (200, 30, 30), (30, 40, 210)
    scenes = [
        (  # single_object: a dog at 0.95
            img(((8, 8, 30, 40), red)),
            [([8, 8, 30, 40], DOG, 0.95, rect(8, 8, 30, 40, 0.2))],
            {"tag": "single_object", "include": [{"class": "dog", "count": 1}]},
            (True, ""),
        ),
        (  # counting: only one clock over 0.9
            img(((4, 4, 20, 20), blue), ((30, 4, 50, 20), blue)),
            [([4, 4, 20, 20], CLOCK, 0.95, rect(4, 4, 20, 20)), ([30, 4, 50, 20], CLOCK, 0.85, rect(30, 4, 50, 20))],
            {
                "tag": "counting",
                "include": [{"class": "clock", "count": 2}],
                "exclude": [{"class": "clock", "count": 3}],
            },
            (False, "expected clock>=2, found 1"),
        ),
        (  # position: the dog is right of the clock
            img(((2, 10, 22, 40), blue), ((38, 10, 62, 40), red)),
            [
                ([2, 10, 22, 40], CLOCK, 0.8, rect(2, 10, 22, 40)),
                ([38, 10, 62, 40], DOG, 0.7, rect(38, 10, 62, 40, 0.1)),
            ],
            {
                "tag": "position",
                "include": [{"class": "clock", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}],
            },
            (True, ""),
        ),
        (  # colors: two dogs, the colour of the first decides; a sub-pixel box gets no crop
            img(((6, 6, 40, 44), red), ((44, 6, 60, 30), blue)),
            [
                ([6, 6, 40, 44], DOG, 0.9, rect(6, 6, 40, 44, 0.3)),
                ([44, 6, 60, 30], DOG, 0.6, rect(44, 6, 60, 30)),
                ([50.2, 40.1, 50.4, 40.3], DOG, 0.5, rect(50, 40, 51, 41)),
            ],
            {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "red"}]},
            None,
        ),
        (  # color_attr, boxes without masks (GenEval's segm None): crops are not greyed
            img(((2, 2, 30, 46), red), ((34, 2, 62, 46), blue)),
            [([2, 2, 30, 46], DOG, 0.99, None), ([34, 2, 62, 46], CLOCK, 0.97, None)],
            {
                "tag": "color_attr",
                "include": [
                    {"class": "dog", "count": 1, "color": "red"},
                    {"class": "clock", "count": 1, "color": "blue"},
                ],
            },
            None,
        ),
    ]
    names = [f"{i:05d}.png" for i in range(len(scenes))]
    captions = [
        "a photo of a dog",
        "a photo of two clocks",
        "a dog right of a clock",
        "a red dog",
        "a red dog, blue clock",
    ]
    recs = [Record(f"{i:05d}", cap, extra=s[2]) for i, (s, cap) in enumerate(zip(scenes, captions))]
    return names, [s[0] for s in scenes], [s[1] for s in scenes], recs, [s[3] for s in scenes]


def _segmenter_rows(objs: list, max_det: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The segmenter's detect() output, built by hand: score-sorted rows (no ties here), -1 padding, masks aligned
    (None for an image without masks, as from a box-only model)."""
    order = sorted(range(len(objs)), key=lambda n: -objs[n][2])
    rows = np.full((max_det, 6), -1, np.float32)
    masks = np.zeros((max_det, H, W), bool)
    for r, n in enumerate(order):
        box, c, s, m = objs[n]
        rows[r] = [*box, s, c]
        if m is not None:
            masks[r] = m
    return rows, (None if all(o[3] is None for o in objs) else masks)


def _judge(feats: dict, bb, recs: list[Record]) -> list[tuple[bool, str]]:
    ctx = SimpleNamespace(
        gen=lambda k: feats[k.split(".", 1)[1]],
        text=lambda texts, backbone: bb.encode_text(texts)[0],
        samples=[SimpleNamespace(record_index=i) for i in range(len(recs))],
        records=recs,
    )
    _, ok, why = G.judge(ctx, G.GenEvalParams().__dict__)  # type: ignore[arg-type]
    return [(bool(o), w) for o, w in zip(ok, why)]


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("scene")
    names, imgs, objs, recs, hand = _scene()
    (d / "imgs").mkdir()
    for n, im in zip(names, imgs):
        im.save(d / "imgs" / n)
    path = _write(d / "segments.json", {n: _entry(o) for n, o in zip(names, objs)})
    return d, path


def test_imported_equals_the_segmenter_path_on_identical_boxes_and_masks(scene_file, monkeypatch) -> None:
    from tise_bench.backbones.segmenter import ImportedSegmenter, SegmenterBackbone

    d, path = scene_file
    names, imgs, objs, recs, hand = _scene()
    tiny = tiny_clip_model()
    seg = SegmenterBackbone(random=True, seed=0, imgsz=64, cache_dir=d / "c", device="cpu", clip_model=tiny)
    imp = ImportedSegmenter(path=path, random=True, seed=0, cache_dir=d / "c", device="cpu", clip_model=tiny)
    assert imp.clip_hash == seg.clip_hash and imp.has_masks and imp.is_random
    planted = [_segmenter_rows(o, seg.max_det) for o in objs]
    monkeypatch.setattr(seg, "detect", lambda ims: ([p[0] for p in planted], [p[1] for p in planted]))
    want = seg.forward(torch.stack([seg.preprocess(im) for im in imgs]))
    metas = [imp.preprocess_meta_for(str(d / "imgs" / n), im) for n, im in zip(names, imgs)]
    got = imp.forward(
        torch.stack([imp.preprocess(im) for im in imgs]), {k: torch.stack([m[k] for m in metas]) for k in metas[0]}
    )
    np.testing.assert_array_equal(got["detections"], want["detections"])
    np.testing.assert_array_equal(got["crop"], want["crop"])
    np.testing.assert_allclose(got["crop_image"], want["crop_image"], atol=1e-6)
    np.testing.assert_array_equal(got["size"], want["size"])
    assert set(np.unique(got["crop"])) == {-1.0, 0.0, 1.0, 2.0}  # masked, unmasked, empty crop, none
    v_imp, v_seg = _judge(got, imp, recs), _judge(want, seg, recs)
    assert v_imp == v_seg
    for v, h in zip(v_imp, hand):
        assert h is None or v == h
    assert imp.namespace != seg.namespace and "imported" in imp.namespace


def test_run_on_imported_masks_names_the_detector(scene_file, tmp_path) -> None:
    """data=geneval with backbones.segmenter.imported (JSON lines): per-image verdicts as the direct path (and the
    hand verdicts), and metrics.json's protocol names the imported detector."""
    from hydra import compose, initialize_config_module

    from tise_bench.backbones.segmenter import ImportedSegmenter
    from tise_bench.runner import run

    d, _ = scene_file
    names, imgs, objs, recs, hand = _scene()
    path = _write(tmp_path / "segments.jsonl", {n: _entry(o) for n, o in zip(names, objs)}, jsonl=True)
    man = tmp_path / "g.jsonl"
    man.write_text("".join(json.dumps({"id": r.id, "caption": r.caption, **r.extra}) + "\n" for r in recs))
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        cfg = compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                f"+backbones.segmenter.imported={path}",
                f"backbones.segmenter.clip_model={tiny_clip_model()}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                f"paths.results_dir={tmp_path / 'res'}",
                "data=geneval",
                "data.name=g",
                f"data.subsets.geneval={man}",
                "model=folder",
                "model.name=m",
                f"model.samples_dir={d / 'imgs'}",
                "bootstrap.replicates=10",
                "progress=false",
                "print_table=false",
            ],
        )
    run(cfg)
    folder = tmp_path / "res" / "g" / "m"
    m = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert m["geneval"]["protocol"].startswith(
        f"GenEval protocol, {DETECTOR} (imported) + open_clip {tiny_clip_model()}"
    )
    df = pd.read_parquet(folder / "samples.parquet").sort_values("id")
    imp = ImportedSegmenter(
        path=path, random=True, seed=0, cache_dir=tmp_path / "c2", device="cpu", clip_model=tiny_clip_model()
    )
    metas = [imp.preprocess_meta_for(n, im) for n, im in zip(names, imgs)]
    feats = imp.forward(
        torch.stack([imp.preprocess(im) for im in imgs]), {k: torch.stack([x[k] for x in metas]) for k in metas[0]}
    )
    direct = _judge(feats, imp, recs)
    assert [(bool(o), w) for o, w in zip(df["geneval"], df["geneval_reason"])] == direct
    for v, h in zip(direct, hand):
        assert h is None or v == h


# ---- malformed files ------------------------------------------------------------------------------------------------
def _bad(tmp_path: Path, entry: object, jsonl: bool = False, **header) -> str:
    path = _write(tmp_path / ("bad.jsonl" if jsonl else "bad.json"), {"k/0001.png": entry}, jsonl=jsonl, **header)
    with pytest.raises(ConfigError) as e:
        ImportedSegments(path=path, cache_dir=tmp_path / "c")
    msg = str(e.value)
    assert str(path) in msg and "Fix" in msg
    return msg


def test_malformed_files_name_the_file_the_key_and_the_fix(tmp_path) -> None:
    good = _entry([([1, 1, 9, 9], DOG, 0.9, np.ones((H, W), bool))])
    msg = _bad(tmp_path, {**good, "bbox": good["bbox"][:79]})
    assert "'k/0001.png'" in msg and "80 lists" in msg and "result[0]" in msg
    segm = [list(s) for s in good["segm"]]
    segm[DOG] = [{"size": [H, W]}]  # no counts
    msg = _bad(tmp_path, {**good, "segm": segm})
    assert "'k/0001.png'" in msg and f"segm[{DOG}][0]" in msg and "pycocotools.mask.encode" in msg
    segm[DOG] = []  # one box, no mask entry
    assert "must match" in _bad(tmp_path, {**good, "segm": segm})
    bbox = [list(b) for b in good["bbox"]]
    bbox[DOG] = [[1, 1, 9, 9]]  # no score
    assert f"bbox[{DOG}][0]" in _bad(tmp_path, {**good, "bbox": bbox})
    msg = _bad(tmp_path, good, jsonl=True, format="tise_bench-detections-v1")
    assert '"format"' in msg and "tise_bench-segments-v1" in msg
    (tmp_path / "x.jsonl").write_text(json.dumps({"format": "tise_bench-segments-v1"}) + "\n{oops\n")
    with pytest.raises(ConfigError, match=r"line 2 is not JSON.*Fix"):
        ImportedSegments(path=tmp_path / "x.jsonl", cache_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="no such file.*Fix"):
        ImportedSegments(path=tmp_path / "none.json", cache_dir=tmp_path / "c")


def test_masks_of_another_size_or_broken_runs_fail_at_use(tmp_path) -> None:
    small = _entry([([1, 1, 9, 9], DOG, 0.9, np.ones((H // 2, W // 2), bool))])
    broken = _entry([([1, 1, 9, 9], DOG, 0.9, None)])
    broken["segm"][DOG] = [{"size": [H, W], "counts": [5, 7]}]
    path = _write(tmp_path / "s.json", {"small.png": small, "broken.png": broken})
    t = ImportedSegments(path=path, cache_dir=tmp_path / "c")
    _, i = t.entry("/x/small.png", W, H)
    with pytest.raises(DataError, match=r"'small.png' has a 32x24 mask .* is 64x48\. Fix") as e:
        t.mask(i, 0, W, H)
    assert str(path) in str(e.value)
    _, i = t.entry("broken.png", W, H)
    with pytest.raises(DataError, match=r"'broken.png', mask of row 0 is not a valid COCO RLE .*Fix"):
        t.mask(i, 0, W, H)
    with pytest.raises(DataError, match="not in the imported"):
        t.entry("missing.png", W, H)
