"""GenEval protocol: every rule of djghosh13/geneval evaluate_images.py on hand-made detections, the verdicts and
reasons written from its code; the colour step's mechanics (mask, crop, templates, argmax) against a from-scratch
reimplementation on a tiny random CLIP; summary_scores.py's aggregation; a run with the random segmenter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers import tiny_clip_model
from tise_bench.metrics import geneval as G
from tise_bench.registry import get_metric


def det(*rows):
    """(n, 6) rows [x1, y1, x2, y2, score, coco id] padded with one -1 row, as the segmenter caches them."""
    return np.asarray([*rows, [-1] * 6], dtype=np.float32)


PERSON, DOG, CLOCK = 0, G.GENEVAL_CLASSES.index("dog"), G.GENEVAL_CLASSES.index("clock")


def test_published_constants() -> None:
    assert G.COLORS == ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
    assert [t.format(cls="dog").format(c="red") for t in G.COLOR_TEMPLATES] == [
        "a photo of a red dog",
        "a photo of a red-colored dog",
        "a photo of a red object",
    ]
    assert len(G.GENEVAL_CLASSES) == 80 and G.GENEVAL_CLASSES[:3] == ("person", "bicycle", "car")
    assert G.GENEVAL_CLASSES[64] == "computer mouse" and G.GENEVAL_CLASSES[65] == "tv remote"
    assert G.GENEVAL_CLASSES[66] == "computer keyboard"
    p = G.GenEvalParams()
    assert (p.threshold, p.counting_threshold, p.max_objects, p.max_overlap, p.position_threshold) == (
        0.3,
        0.9,
        16,
        1.0,
        0.1,
    )


# ---- box selection ------------------------------------------------------------------------------------------------
def test_threshold_is_strict_and_per_class_sorted_and_capped() -> None:
    d = det([0, 0, 10, 10, 0.3, DOG], [0, 0, 10, 10, 0.31, DOG], [5, 5, 9, 9, 0.95, DOG], [0, 0, 4, 4, 0.5, PERSON])
    assert G.keep_objects(d, 0.3, 16, 1.0) == {PERSON: [3], DOG: [2, 1]}  # 0.3 itself is not > 0.3
    assert G.keep_objects(d, 0.9, 16, 1.0) == {DOG: [2]}
    many = det(*[[i, 0, i + 5, 5, 0.99 - i * 0.01, CLOCK] for i in range(20)])
    assert G.keep_objects(many, 0.3, 16, 1.0)[CLOCK] == list(range(16))  # MAX_OBJECTS, highest first


def test_overlap_filter_uses_geneval_iou_with_plus_one() -> None:
    a, b = [0, 0, 9, 9], [0, 0, 9, 4]  # +1 areas: 100 and 50 -> IoU 0.5
    assert G.compute_iou(a, b) == pytest.approx(0.5)
    assert G.compute_iou([0, 0, 1, 1], [5, 5, 6, 6]) == 0
    d = det([*a, 0.9, DOG], [*b, 0.8, DOG], [20, 20, 29, 29, 0.7, DOG])
    assert G.keep_objects(d, 0.3, 16, 1.0)[DOG] == [0, 1, 2]  # 1.0: no filter (GenEval's default)
    assert G.keep_objects(d, 0.3, 16, 0.5)[DOG] == [0, 2]  # dropped when IoU >= max_overlap
    assert G.keep_objects(d, 0.3, 16, 0.6)[DOG] == [0, 1, 2]


def ref_relations(a, b, t=0.1):
    """From scratch: centre offset shrunk by t x (sum of the sides) per axis, direction by the unit offset."""
    ca, cb = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2), ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    off = (ca[0] - cb[0], ca[1] - cb[1])
    dims = ((a[2] - a[0]) + (b[2] - b[0]), (a[3] - a[1]) + (b[3] - b[1]))
    rev = [max(abs(o) - t * d, 0) * (1 if o > 0 else -1 if o < 0 else 0) for o, d in zip(off, dims)]
    if all(abs(r) < 1e-3 for r in rev):
        return set()
    n = (off[0] ** 2 + off[1] ** 2) ** 0.5
    dx, dy = rev[0] / n, rev[1] / n
    return {
        k for k, c in (("left of", dx < -0.5), ("right of", dx > 0.5), ("above", dy < -0.5), ("below", dy > 0.5)) if c
    }


@pytest.mark.parametrize(
    "a,b,want",
    [
        ([0, 0, 10, 10], [50, 0, 60, 10], {"left of"}),
        ([50, 0, 60, 10], [0, 0, 10, 10], {"right of"}),
        ([0, 0, 10, 10], [0, 40, 10, 50], {"above"}),
        ([0, 40, 10, 50], [0, 0, 10, 10], {"below"}),
        ([0, 0, 10, 10], [1, 1, 11, 11], set()),  # offset 1 < margin 0.1 x 20: no relation
        ([0, 0, 10, 10], [30, 30, 40, 40], {"left of", "above"}),  # diagonal: both components > 0.5
        ([0, 0, 10, 10], [30, 8, 40, 18], {"left of"}),
    ],
)
def test_relative_position(a, b, want) -> None:
    assert G.relative_position(a, b) == want == ref_relations(a, b)


def test_relative_position_margin_is_a_parameter() -> None:
    a, b = [0, 0, 10, 10], [13, 0, 23, 10]  # offset 13, sides 20: margin 2 (0.1) keeps it, 13 (0.65) erases it
    assert G.relative_position(a, b, 0.1) == {"left of"} and G.relative_position(a, b, 0.65) == set()


# ---- verdicts -----------------------------------------------------------------------------------------------------
def verdict(d, spec, colors=None, params=None):
    p = {**G.GenEvalParams().__dict__, **(params or {})}
    thr = p["counting_threshold"] if spec["tag"] == "counting" else p["threshold"]
    kept = G.keep_objects(d, thr, p["max_objects"], p["max_overlap"])
    objects = {G.GENEVAL_CLASSES[c]: [d[r] for r in rr] for c, rr in kept.items()}
    return G.evaluate(objects, spec, lambda found, cls: list(colors[cls][: len(found)]), p["position_threshold"])


def test_single_and_two_object() -> None:
    one = {"tag": "single_object", "include": [{"class": "dog", "count": 1}]}
    assert verdict(det([0, 0, 5, 5, 0.5, DOG]), one) == (True, "")
    assert verdict(det([0, 0, 5, 5, 0.25, DOG]), one) == (False, "expected dog>=1, found 0")
    two = {"tag": "two_object", "include": [{"class": "dog", "count": 1}, {"class": "clock", "count": 1}]}
    assert verdict(det([0, 0, 5, 5, 0.5, DOG]), two) == (False, "expected clock>=1, found 0")
    assert verdict(det([0, 0, 5, 5, 0.5, DOG], [9, 9, 20, 20, 0.4, CLOCK]), two) == (True, "")


def test_counting_uses_0_9_and_the_exclude_clause() -> None:
    spec = {
        "tag": "counting",
        "include": [{"class": "clock", "count": 2}],
        "exclude": [{"class": "clock", "count": 3}],
    }
    two = [[i * 10, 0, i * 10 + 5, 5, 0.95, CLOCK] for i in range(2)]
    assert verdict(det(*two), spec) == (True, "")
    assert verdict(det(*two, [50, 0, 55, 5, 0.85, CLOCK]), spec) == (True, "")  # 0.85: not counted at 0.9
    assert verdict(det(*two, [50, 0, 55, 5, 0.92, CLOCK]), spec) == (False, "expected clock<3, found 3")
    assert verdict(det(two[0]), spec) == (False, "expected clock>=2, found 1")


def test_colors_and_color_attribution() -> None:
    spec = {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "blue"}]}
    d = det([0, 0, 5, 5, 0.9, DOG], [9, 9, 20, 20, 0.8, DOG])
    assert verdict(d, spec, {"dog": ["blue", "red"]}) == (True, "")
    ok, why = verdict(d, spec, {"dog": ["red", "blue"]})  # only the most confident dog is judged
    assert not ok and why == "expected blue dog>=1, found 0 blue; and 1 red"
    attr = {
        "tag": "color_attr",
        "include": [{"class": "dog", "count": 1, "color": "blue"}, {"class": "clock", "count": 1, "color": "white"}],
    }
    d2 = det([0, 0, 5, 5, 0.9, DOG], [9, 9, 20, 20, 0.8, CLOCK])
    assert verdict(d2, attr, {"dog": ["blue"], "clock": ["white"]}) == (True, "")
    assert verdict(d2, attr, {"dog": ["white"], "clock": ["blue"]}) == (
        False,
        "expected blue dog>=1, found 0 blue; and 1 white\nexpected white clock>=1, found 0 white; and 1 blue",
    )


def test_position_rule() -> None:
    spec = {
        "tag": "position",
        "include": [{"class": "clock", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}],
    }
    clock, dog_right, dog_left = [0, 0, 10, 10, 0.9, CLOCK], [50, 0, 60, 10, 0.9, DOG], [0, 40, 10, 50, 0.9, DOG]
    assert verdict(det(clock, dog_right), spec) == (True, "")
    assert verdict(det(clock, dog_left), spec) == (False, "expected dog right of target, found below target")
    assert verdict(det(dog_right), spec) == (
        False,
        "expected clock>=1, found 0\nno target for dog to be right of",
    )
    near = [1, 1, 11, 11, 0.9, DOG]
    assert verdict(det(clock, near), spec) == (False, "expected dog right of target, found  target")


def test_summary_is_the_mean_over_tasks_of_image_means() -> None:
    tags = ["single_object"] * 4 + ["counting"] * 2
    s = G.summarize(tags, [1, 1, 1, 0, 0, 1])
    assert s["tasks"] == {"single_object": 0.75, "counting": 0.5} and s["overall"] == pytest.approx(0.625)
    df = pd.DataFrame({"tag": tags, "correct": [True, True, True, False, False, True]})  # summary_scores.py
    assert s["overall"] == pytest.approx(np.mean([t["correct"].mean() for _, t in df.groupby("tag", sort=False)]))


def test_record_checks_name_the_record() -> None:
    from tise_bench.data.manifest import Record
    from tise_bench.errors import DataError

    good = Record("1", "a photo of a dog", extra={"tag": "single_object", "include": [{"class": "dog", "count": 1}]})
    assert G.record_spec(good)["tag"] == "single_object"
    for extra, word in (
        ({"tag": "x", "include": [{"class": "dog", "count": 1}]}, "'tag'"),
        ({"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "teal"}]}, "'color'"),
        ({"tag": "colors", "include": [{"class": "wolf", "count": 1}]}, "'class'"),
        ({"tag": "position", "include": [{"class": "dog", "count": 1, "position": ["left of", 0]}]}, "'position'"),
    ):
        with pytest.raises(DataError, match=word) as e:
            G.record_spec(Record("r7", "x", extra=extra))
        assert "'r7'" in str(e.value)


# ---- the colour step ----------------------------------------------------------------------------------------------
def test_color_classifier_is_clip_benchmarks_zero_shot_classifier() -> None:
    rng = np.random.default_rng(0)
    text = rng.normal(size=(10, 3, 16))
    t = torch.from_numpy(text)
    w = torch.stack(
        [
            torch.nn.functional.normalize(t[i], dim=-1).mean(0)
            / torch.nn.functional.normalize(t[i], dim=-1).mean(0).norm()
            for i in range(10)
        ],
        dim=1,
    )
    np.testing.assert_allclose(G.color_classifier(text), w.numpy(), atol=1e-12)
    img = rng.normal(size=(5, 16))
    logits = 100.0 * torch.nn.functional.normalize(torch.from_numpy(img), dim=-1) @ w
    assert G.classify_colors(img, G.color_classifier(text)) == [G.COLORS[i] for i in logits.argmax(1).tolist()]


def ref_masked_crop(img: Image.Image, box, mask) -> np.ndarray:
    """From scratch: pixels outside the mask set to #999 (153, 153, 153), then rows/columns round(y1):round(y2)."""
    a = np.asarray(img.convert("RGB")).copy()
    a[~mask] = 153
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return a[y1:y2, x1:x2]


def test_masked_crop_is_genevals_composite_then_crop() -> None:
    from tise_bench.backbones.segmenter import masked_crop

    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    mask = np.zeros((30, 40), bool)
    mask[5:20, 8:30] = rng.random((15, 22)) > 0.3
    box = (7.6, 4.4, 30.5, 21.49)
    np.testing.assert_array_equal(np.asarray(masked_crop(img, box, mask, "#999")), ref_masked_crop(img, box, mask))
    plain = np.asarray(masked_crop(img, box, None, "#999"))  # no mask (box-only detector): no greying
    np.testing.assert_array_equal(plain, np.asarray(img)[4:21, 8:30])


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    from tise_bench.backbones.segmenter import SegmenterBackbone

    cache = tmp_path_factory.mktemp("seg")
    return SegmenterBackbone(random=True, seed=0, imgsz=64, cache_dir=cache, device="cpu", clip_model=tiny_clip_model())


def test_random_segmenter_crop_embeddings_equal_a_from_scratch_pipeline(segmenter) -> None:
    """Masks from the segmenter; crop, greying, CLIP preprocessing and encoding recomputed independently."""
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    from tise_bench.backbones.segmenter import crop_rows

    assert segmenter.is_random and segmenter.has_masks and "RANDOM" in segmenter.describe()["clip"]
    imgs = [Image.new("RGB", (64, 48), c) for c in ((220, 20, 20), (20, 20, 220))]
    for im in imgs:
        im.paste((250, 250, 250), (10, 10, 40, 30))
    out = segmenter.forward(torch.stack([segmenter.preprocess(im) for im in imgs]))
    dets, masks = segmenter.detect(imgs)
    np.testing.assert_array_equal(out["detections"], np.stack(dets))
    tf = open_clip.image_transform(224, False, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    n = 0
    for i, im in enumerate(imgs):
        rows = [r for r in range(len(dets[i])) if out["crop"][i, r] > 0]
        assert rows == crop_rows(dets[i], 0.3, 16)
        for r in rows[:3]:
            crop = Image.fromarray(ref_masked_crop(im, dets[i][r, :4], masks[i][r]))
            with torch.no_grad():
                e = torch.nn.functional.normalize(segmenter.clip.encode_image(tf(crop)[None]).float(), dim=-1)[0]
            np.testing.assert_allclose(out["crop_image"][i, r], e.numpy(), atol=1e-5)
            n += 1
        assert not out["crop_image"][i][out["crop"][i] == 0].any()
    assert n > 0


def test_random_segmenter_crop_rows_are_the_top_16_per_class_over_conf() -> None:
    from tise_bench.backbones.segmenter import crop_rows

    d = det(
        *[[0, 0, 5, 5, 0.99 - 0.01 * i, DOG] for i in range(20)], [0, 0, 5, 5, 0.3, CLOCK], [0, 0, 5, 5, 0.5, CLOCK]
    )
    assert crop_rows(d, 0.3, 16) == list(range(16)) + [21]


# ---- the registered metrics and a run -----------------------------------------------------------------------------
def test_registered_ids_are_not_default() -> None:
    for tid in ("geneval", *(f"geneval_{t}" for t in G.TASKS)):
        spec = get_metric(tid)
        assert spec.higher_is_better and spec.subset == "geneval" and spec.unit == "score"
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        cfg = compose("config")
    assert not any(str(m).startswith("geneval") for m in cfg.metrics.ids)


def test_run_with_random_segmenter(tmp_path) -> None:
    """A whole run: manifest of GenEval records, a folder of images, backbones=random; per-image verdicts equal the
    rules applied to the run's own cached detections and colour embeddings."""
    from hydra import compose, initialize_config_module

    from tise_bench.prepare.geneval import generate_suite, prepare_geneval
    from tise_bench.runner import run

    prepare_geneval(tmp_path / "data", seed=43, n=2)
    recs = [json.loads(x) for x in (tmp_path / "data" / "geneval.jsonl").read_text().splitlines()[1:]]
    assert [r["caption"] for r in recs] == [s["prompt"] for s in generate_suite(43, 2)]
    pick = [r for r in recs if r["tag"] != "single_object"] + [r for r in recs if r["tag"] == "single_object"][:2]
    man = tmp_path / "g.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in pick))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for r in pick:
        a = np.full((48, 64, 3), rng.integers(0, 256, 3), np.uint8)
        a[8:30, 10:40] = rng.integers(0, 256, 3)
        Image.fromarray(a).save(imgs / f"{r['id']}.png")
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        cfg = compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                "backbones.segmenter.imgsz=64",
                f"backbones.segmenter.clip_model={tiny_clip_model()}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                f"paths.results_dir={tmp_path / 'res'}",
                "data=geneval",
                "data.name=g",
                f"data.subsets.geneval={man}",
                "model=folder",
                "model.name=m",
                f"model.samples_dir={imgs}",
                "bootstrap.replicates=20",
                "progress=false",
                "print_table=false",
            ],
        )
    run(cfg)
    folder = tmp_path / "res" / "g" / "m"
    mj = json.loads((folder / "metrics.json").read_text())
    df = pd.read_parquet(folder / "samples.parquet")
    m = mj["metrics"]
    assert sorted(m) == sorted(["geneval", *(f"geneval_{t}" for t in G.TASKS)])  # data=geneval selects them
    assert m["geneval"]["protocol"].startswith("GenEval protocol, yolov8n-seg.yaml (random seed 0)")
    assert set(df["geneval"].unique()) <= {0.0, 1.0} and "geneval_reason" in df.columns
    for ok, why in zip(df["geneval"], df["geneval_reason"]):
        assert (why == "") == bool(ok)  # a failure always says why
    tasks = {t: float(np.mean(df.loc[df["geneval_" + t].notna(), "geneval_" + t])) for t in G.TASKS}
    for t in G.TASKS:
        assert m[f"geneval_{t}"]["value"] == pytest.approx(tasks[t])
    assert m["geneval"]["value"] == pytest.approx(np.mean(list(tasks.values())))
    assert m["geneval"]["tasks"] == pytest.approx(tasks)
    assert mj["bootstrap"]["metrics"]["geneval"]["identity"] == pytest.approx(m["geneval"]["value"], rel=1e-9)


def test_random_segmenter_clip_is_geneval_architecture_seeded(monkeypatch, tmp_path) -> None:
    """backbones=random builds GenEval's CLIP architecture (ViT-L-14, QuickGELU as the openai tag) with seeded random
    weights; the test swaps in the tiny config at that point instead of building 428M parameters."""
    import tise_bench.backbones.hps as hps
    from tise_bench.backbones.segmenter import SegmenterBackbone

    asked: list[tuple[str, bool]] = []
    real = hps.random_open_clip

    def fake(model: str, seed: int, *, quick_gelu: bool = False):
        asked.append((model, quick_gelu))
        return real(tiny_clip_model(), seed)

    monkeypatch.setattr(hps, "random_open_clip", fake)
    seg = SegmenterBackbone(random=True, seed=0, imgsz=64, cache_dir=tmp_path, device="cpu")
    assert asked == [("ViT-L-14", True)]
    assert (
        seg.clip_ident == "ViT-L-14-random-seed0" and "RANDOM" in seg.clip_name and seg.clip_preproc == "clip224-openai"
    )
