"""FeatureBank guarantees: one decode per image, one pass, zero forwards on a repeated run, cache integrity."""

from __future__ import annotations

import numpy as np

from helpers import RANDOM_BACKBONES, structured_images, tiny_demo_config
from tise_bench.backbones import build_backbones
from tise_bench import imagefile as decode
from tise_bench.features.bank import FeatureBank
from tise_bench.runner import run


def _demo_cfg(cache, results, extra=()):
    return tiny_demo_config(cache, results, *extra)


def _unique_contents(paths) -> int:
    return len({decode.content_hash(open(p, "rb").read()) for p in paths})


def test_every_image_decoded_once_and_rerun_makes_zero_forwards(fresh_cache, tmp_path):
    # 2 crops per image (8 by default): the crop counts below hold for any number, at a third of the Inception
    # forwards; the detector at 64 px, whose weights file the CLI tests' demo runs leave in the session cache
    cfg = _demo_cfg(fresh_cache, tmp_path / "res", ["backbones.detector.imgsz=64", "backbones.detector.max_crops=2"])
    bbs = build_backbones(dict(cfg.backbones), {"clip", "inception", "detector"}, fresh_cache)
    fwd0 = {n: b.n_forward_images for n, b in bbs.items()}
    txt0 = bbs["clip"].n_forward_texts
    decode.DECODE_COUNT = 0
    first = run(cfg)  # all metrics, all five demo models
    demo_root = fresh_cache / "demo"
    files = [p for p in demo_root.rglob("*.png")]
    assert decode.DECODE_COUNT == _unique_contents(files), "an image was decoded more than once (or skipped)"
    made = {n: b.n_forward_images - fwd0[n] for n, b in bbs.items()}
    crop_shards = [p for d in (fresh_cache / "features").glob("crops-*") for p in d.glob("*.npz")]
    n_crops = sum(len(np.load(p)["keys"]) for p in crop_shards)  # Inception also scores each object crop once
    assert n_crops > 0
    assert made["clip"] == made["detector"] == _unique_contents(files)
    assert made["inception"] == _unique_contents(files) + n_crops
    assert bbs["clip"].n_forward_texts > txt0

    fwd1 = {n: b.n_forward_images for n, b in bbs.items()}
    txt1 = bbs["clip"].n_forward_texts
    decode.DECODE_COUNT = 0
    second = run(cfg)
    assert decode.DECODE_COUNT == 0
    assert {n: b.n_forward_images for n, b in bbs.items()} == fwd1
    assert bbs["clip"].n_forward_texts == txt1
    for a, b in zip(first, second):
        assert a.model == b.model
        for mid, mv in a.metrics.items():
            assert np.array_equal(np.asarray(mv.value), np.asarray(b.metrics[mid].value), equal_nan=True), mid


def test_changed_bytes_miss_the_cache(fresh_cache, tmp_path):
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 3, seed=3, size=32)]
    bbs = build_backbones(RANDOM_BACKBONES, {"inception"}, fresh_cache)
    bank = FeatureBank(bbs, fresh_cache)
    a = bank.images(paths, {"inception": {"pool3"}})
    structured_images(tmp_path / "imgs", 1, seed=99, size=32)  # overwrite 0000.png with other pixels
    before = bbs["inception"].n_forward_images
    b = FeatureBank(bbs, fresh_cache).images(paths, {"inception": {"pool3"}})
    assert bbs["inception"].n_forward_images == before + 1
    assert not np.allclose(a.features["inception.pool3"][0], b.features["inception.pool3"][0])
    np.testing.assert_array_equal(a.features["inception.pool3"][1:], b.features["inception.pool3"][1:])


def test_corrupt_shard_is_detected_and_recomputed(fresh_cache, tmp_path, caplog):
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 2, seed=4, size=32)]
    bbs = build_backbones(RANDOM_BACKBONES, {"inception"}, fresh_cache)
    a = FeatureBank(bbs, fresh_cache).images(paths, {"inception": {"pool3"}})
    shard = next((fresh_cache / "features").rglob("*.npz"))
    shard.write_bytes(shard.read_bytes()[:-50])  # truncated
    before = bbs["inception"].n_forward_images
    b = FeatureBank(bbs, fresh_cache).images(paths, {"inception": {"pool3"}})
    assert bbs["inception"].n_forward_images == before + 2
    assert "corrupt" in caplog.text
    np.testing.assert_allclose(a.features["inception.pool3"], b.features["inception.pool3"], rtol=1e-6)
