"""O-IS and O-FID equal torch-fidelity's IS and FID computed on the same object crops (saved as PNG)
with the same Inception weights file; the crops are cut from the detector's cached detections."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch_fidelity
from PIL import Image

import tise_bench
from helpers import RANDOM_BACKBONES, structured_images
from tise_bench.backbones import build_backbones
from tise_bench.features.crops import CropSpec, crop_boxes, make_crop
from tise_bench.imagefile import content_hash
from tise_bench.features.store import FeatureStore

DET = {**RANDOM_BACKBONES, "detector": {"arch": "yolov8n.yaml", "imgsz": 320, "max_crops": 4}}


def _save_crops(paths, det, cache, spec, out):
    out.mkdir()
    store = FeatureStore(cache, det.namespace)
    n = 0
    for p in paths:
        got = store.get([content_hash(p.read_bytes())], ("detections", "size"))
        w, h = (int(round(v)) for v in got["size"][0])
        img = Image.open(p).convert("RGB")
        for box in crop_boxes(got["detections"][0], w, h, spec):
            make_crop(img, box, spec.size).save(out / f"{n:05d}.png")
            n += 1
    return n


@pytest.mark.slow
def test_o_is_o_fid_equal_torch_fidelity_on_the_same_crops(tmp_path, fresh_cache):
    gen = structured_images(tmp_path / "gen", 24, seed=11, size=96)
    ref = structured_images(tmp_path / "ref", 24, seed=12, size=96)
    man = tmp_path / "m.jsonl"
    man.write_text(
        "".join(
            json.dumps({"id": g.stem, "caption": f"objects {i}", "reference": str(r)}) + "\n"
            for i, (g, r) in enumerate(zip(gen, ref))
        )
    )
    res = tise_bench.evaluate(
        tmp_path / "gen",
        manifest=man,
        metrics=["o_is", "o_fid"],
        backbones=DET,
        cache_dir=fresh_cache,
        crops={"threshold": 0.1},  # random detector: few boxes at 0.5
        params={"o_is": {"split_mode": "torch_fidelity"}},
    )  # torch-fidelity's IS splits
    bbs = build_backbones(DET, {"crops"}, fresh_cache)
    spec = CropSpec(threshold=0.1, max_per_image=4)
    n_gen = _save_crops(gen, bbs["detector"], fresh_cache, spec, tmp_path / "gen_crops")
    n_ref = _save_crops(ref, bbs["detector"], fresh_cache, spec, tmp_path / "ref_crops")
    assert n_gen >= 8 and n_ref >= 8, (n_gen, n_ref)
    assert res.metrics["o_is"].n == n_gen and res.metrics["o_fid"].extras["n_reference_crops"] == n_ref
    assert res.metrics["o_is"].extras["fallback"] is True
    ref_vals = torch_fidelity.calculate_metrics(
        input1=str(tmp_path / "gen_crops"),
        input2=str(tmp_path / "ref_crops"),
        cuda=False,
        isc=True,
        fid=True,
        verbose=False,
        cache=False,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(bbs["inception"].weights_path),
        batch_size=16,
    )
    assert np.isclose(res.metrics["o_is"].value, ref_vals["inception_score_mean"], rtol=1e-6, atol=0)  # measured 3e-16
    assert np.isclose(res.metrics["o_fid"].value, ref_vals["frechet_inception_distance"], rtol=1e-4)
    assert "o_is" not in res.samples.columns  # set-level metric: no misleading per-sample column
