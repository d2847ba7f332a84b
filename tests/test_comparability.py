"""Comparability fields and TISE protocol flags in metrics.json (issue 9)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from helpers import RANDOM_BACKBONES, structured_images

import tise_bench
from tise_bench.comparability import tise_divergences
from tise_bench.types import MetricValue


def _bb(ident, random=False, **desc):
    return SimpleNamespace(
        ident=ident, is_random=random, namespace=f"{ident}-0000-v1", describe=lambda: {"ident": ident, **desc}
    )


TISE_CLIP = {"clip": _bb("clip-ViT-B-32-openai")}


def test_rp_with_released_distractors_and_tise_clip_is_tise():
    mv = MetricValue(50.0, 10, extras={"n_with_mismatched": 10, "top_k": 1})
    assert tise_divergences("clip_rp", {"top_k": 1}, mv, TISE_CLIP, domain="coco") == []


def test_rp_divergences_are_named():
    mv = MetricValue(50.0, 10, extras={"n_with_mismatched": 4})
    div = tise_divergences("clip_rp", {"top_k": 1}, mv, {"clip": _bb("clip-ViT-L-14-openai")}, domain="coco")
    assert any(d.startswith("clip=clip-ViT-L-14-openai (TISE: ViT-B/32 openai)") for d in div)
    assert "distractors drawn from the set for some images (TISE: released mismatched_captions)" in div
    # the protocol string carries no counts: runs with 40 and 80 images of one sweep must compare equal
    for n in (40, 80):
        div_n = tise_divergences("clip_rp", {}, MetricValue(1.0, n, extras={"n_with_mismatched": 0}), TISE_CLIP)
        assert div_n == ["distractors drawn from the set (TISE: released mismatched_captions)"]
    cub = tise_divergences("clip_rp", {}, MetricValue(1.0, 1, extras={"n_with_mismatched": 1}), TISE_CLIP, domain="cub")
    assert cub == ["encoders=CLIP (TISE CUB: DAMSM image/text encoders)"]


def test_pa_threshold_and_random_weights():
    assert tise_divergences("pa", {}, MetricValue(1.0, 1, extras={"threshold": 0.6}), TISE_CLIP) == []
    div = tise_divergences(
        "pa",
        {},
        MetricValue(1.0, 1, extras={"threshold": 0.5}),
        {"clip": _bb("clip-ViT-B-32-random-seed0", random=True)},
    )
    assert div[0] == "random-weights clip" and "threshold=0.5 (TISE: 0.6)" in div


def test_detector_metrics_name_the_detector():
    yolo = {"detector": _bb("yolo-yolov8x", weights="yolov8x.pt")}
    div = tise_divergences("soa_c", {}, MetricValue(1.0, 1, extras={"threshold": 0.5}), yolo)
    assert "detector=yolov8x.pt (TISE: detectron2 Mask R-CNN R50-FPN 3x)" in div
    d2 = {"detector": _bb("imported-x", detector="detectron2 mask_rcnn_R_50_FPN_3x")}
    assert (
        tise_divergences("soa_c", {}, MetricValue(1.0, 1, extras={"threshold": 0.5, "empty_images": "drop"}), d2) == []
    )
    assert "counter=detector boxes (TISE: CountSeg)" in tise_divergences("ca", {}, MetricValue(1.0, 1), d2)


def test_is_star_temperature_pinned():
    ok = MetricValue(1.0, 1, extras={"temperature": 0.9091363549232483, "split_mode": "tise"})
    assert tise_divergences("is_star", {}, ok, {}, domain="coco") == []
    bad = MetricValue(1.0, 1, extras={"temperature": 0.95, "split_mode": "tise"})
    assert tise_divergences("is_star", {}, bad, {}, domain="coco") == [
        "temperature=0.95 (TISE COCO: 0.9091363549232483)"
    ]
    cub = tise_divergences("is_star", {}, ok, {}, domain="cub")
    assert "network=inception-v3-compat (TISE CUB: bird-fine-tuned Inception)" in cub


def test_metrics_json_carries_protocol_and_comparability(tmp_path, fresh_cache):
    gen = tmp_path / "gen"
    structured_images(gen, 4, seed=2, size=48, prefix="00")
    refs = [str(p) for p in structured_images(tmp_path / "ref", 4, seed=1, size=48)]
    caps = [f"a photo of thing {i}" for i in range(4)]

    def run(convention, out):
        tise_bench.evaluate(
            str(gen),
            caps,
            ids=[f"{i:06d}" for i in range(4)],
            references=refs,
            metrics=["clip_score", "fid"],
            params={"clip_score": {"convention": convention}},
            backbones=RANDOM_BACKBONES,
            cache_dir=fresh_cache,
            write_to=out,
            name=out.name,
        )
        return json.loads((out / "metrics.json").read_text())["metrics"]

    results = tmp_path / "results"
    a, b = run("clipscore", results / "set" / "run_a"), run("torchmetrics", results / "set" / "run_b")
    for m in (a, b):
        for mid in ("clip_score", "fid"):
            assert isinstance(m[mid]["protocol"], str) and m[mid]["protocol"]
            comp = m[mid]["comparability"]
            assert comp["protocol"] == m[mid]["protocol"]
            assert all(isinstance(v, (str, int, float, bool, type(None))) for v in comp.values())
    assert a["clip_score"]["comparability"]["backbone.clip"].startswith("clip-ViT-B-32-random-seed0-")
    assert a["fid"]["comparability"]["reference"].startswith("images:")
    assert a["fid"]["protocol"].startswith("not comparable to TISE's FID")
    assert a["clip_score"]["comparability"]["convention"] == "clipscore"
    assert a["clip_score"]["comparability"]["version"] == a["clip_score"]["version"] == "2"
    assert b["clip_score"]["comparability"]["convention"] == "torchmetrics"
    assert a["fid"]["comparability"] == b["fid"]["comparability"]

    # The leaderboard over these two real runs refuses the CLIP-S column, naming runs and field ...
    from tise_bench.errors import ConfigError
    from tise_bench.leaderboard.build import LeaderboardOptions, build

    opts = dict(
        data="set",
        results_dir=results,
        metrics=["clip_score", "fid"],
        aspects={"relevance": ["clip_score"], "realism": ["fid"]},
        formats=["md", "json"],
    )
    with pytest.raises(ConfigError) as e:
        build(LeaderboardOptions(**opts))
    msg = str(e.value)
    assert "CLIP-S" in msg and "convention" in msg and "run_a" in msg and "run_b" in msg
    assert "leaderboard.allow_mixed=true" in msg and "FID" not in msg.split("Runs:")[0]
    # ... and with allow_mixed ranks them and footnotes the mix
    lb, written = build(LeaderboardOptions(**opts, allow_mixed=True))
    md = written["md"].read_text()
    assert "MIXED" in md and "convention" in md
    assert lb["comparability"]["allow_mixed"] is True
