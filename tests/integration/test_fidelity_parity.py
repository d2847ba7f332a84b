"""IS and FID from the FeatureBank pipeline equal torch-fidelity's calculate_metrics on the same images
and the same Inception weights file (SPEC §3 allows FID ≤ 1e-4 relative, IS mean ≤ 1e-3 relative; IS is checked
at 1e-6: same inputs, same weights, fp32 forwards, float64 statistics — measured 2e-16)."""

from __future__ import annotations

import json

import pytest
import torch_fidelity

import tise_bench
from helpers import RANDOM_BACKBONES, structured_images
from tise_bench.backbones import build_backbones


@pytest.fixture()
def two_sets(tmp_path):
    gen = structured_images(tmp_path / "gen", 24, seed=1)
    ref = structured_images(tmp_path / "ref", 24, seed=2)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "\n".join(
            json.dumps({"id": p.stem, "caption": f"shape scene {i}", "reference": str(r)})
            for i, (p, r) in enumerate(zip(gen, ref))
        )
        + "\n"
    )
    return tmp_path / "gen", tmp_path / "ref", manifest


@pytest.mark.slow
def test_is_fid_equal_torch_fidelity(two_sets, fresh_cache):
    gen_dir, ref_dir, manifest = two_sets
    ours = tise_bench.evaluate(
        gen_dir, manifest=manifest, metrics=["is", "fid"], backbones=RANDOM_BACKBONES, cache_dir=fresh_cache
    )
    inc = build_backbones(RANDOM_BACKBONES, {"inception"}, fresh_cache)["inception"]
    ref = torch_fidelity.calculate_metrics(
        input1=str(gen_dir),
        input2=str(ref_dir),
        cuda=False,
        isc=True,
        fid=True,
        verbose=False,
        cache=False,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(inc.weights_path),
        batch_size=8,
        isc_splits=10,
    )
    is_ref, fid_ref = ref["inception_score_mean"], ref["frechet_inception_distance"]
    assert ours.metrics["is"].value > 1.05, "random Inception collapsed: IS ~ 1"
    assert fid_ref > 1.0, "random Inception collapsed: FID ~ 0"
    assert abs(ours.metrics["is"].value - is_ref) / is_ref <= 1e-6
    assert abs(ours.metrics["is"].std - ref["inception_score_std"]) <= 1e-6 * is_ref
    assert abs(ours.metrics["fid"].value - fid_ref) / fid_ref <= 1e-4
