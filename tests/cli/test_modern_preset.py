"""``metrics=modern`` (issue 12): the TISE bag plus the beyond-TISE metrics in one run of the demo, from one feature
pass, with bootstrap replicates and every value in metrics.json; the leaderboard ranks them with
``leaderboard.aspects=modern``."""

from __future__ import annotations

import json
import math

import pytest

from helpers import tiny_demo_config
from tise_bench.runner import run

NEW = ["kid", "precision", "recall", "density", "coverage", "cmmd", "fd_dinov2", "clip_fid", "hpsv2", "aesthetic"]
TINY = "tise-tiny-cmmd-preset"  # CMMD's CLIP at its 336 px input but one tiny layer: the real ViT-L/14 costs ~2.5 s
TINY_CFG = {  # per image on this CPU with random weights
    "embed_dim": 16,
    "vision_cfg": {"image_size": 336, "layers": 1, "width": 32, "head_width": 16, "patch_size": 48},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
# backbones=random builds the real ViT-H-14 (HPS) and ViT-L-14 (aesthetic): tiny open_clip configs of their kind here
TINY_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
TINY_HPS, TINY_HPS_CFG = (
    "tise-tiny-hps-preset",
    {
        "embed_dim": 1024,
        "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 56},
        "text_cfg": TINY_TEXT,
    },
)
TINY_AES, TINY_AES_CFG = (
    "tise-tiny-aesthetic-preset",
    {
        "embed_dim": 768,  # what the aesthetic head takes
        "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 56},
        "text_cfg": TINY_TEXT,
    },
)


@pytest.mark.slow
def test_modern_preset_runs_the_new_metrics_on_the_demo(tmp_path, monkeypatch, session_cache):
    from open_clip import factory as oc_factory

    from tise_bench.leaderboard.build import LeaderboardOptions, build

    for name, arch in ((TINY, TINY_CFG), (TINY_HPS, TINY_HPS_CFG), (TINY_AES, TINY_AES_CFG)):
        monkeypatch.setitem(oc_factory._MODEL_CONFIGS, name, arch)
    cfg = tiny_demo_config(
        session_cache,
        tmp_path / "results",
        "metrics=modern",
        "model=demo_all",
        "model.suite=[faithful,collapsed]",  # two models are enough to rank; five would triple the test's time
        "data.n_prompts=8",  # density / coverage need k + 1 = 6 images per side
        "data.image_size=32",
        f"backbones.clip_cmmd.model={TINY}",
        f"backbones.hps.model={TINY_HPS}",
        f"backbones.aesthetic.model={TINY_AES}",
        "backbones.dinov2.model=vit_small_patch14_dinov2",  # random.yaml: ViT-L/14
        "backbones.dinov2.image_size=56",
        "backbones.detector.imgsz=64",
        "backbones.detector.max_crops=2",  # the object path still runs; 8 crops per image cost ~10 s of Inception
        "bootstrap.replicates=20",
        "bootstrap.replicates_features=5",
    )
    assert list(cfg.metrics.ids)[:13] == [
        "clip_score", "clip_rp", "is", "is_star", "fid", "soa_c", "soa_i", "o_is", "o_fid", "ca", "pa",
        "ref_clip_score", "clip_i2i",
    ]  # fmt: skip
    assert list(cfg.metrics.ids)[13:] == NEW
    assert cfg.metrics.params.kid.shrink_subset_size is True  # the schema fills every default beside it
    results = run(cfg)
    assert [r.model for r in results] == ["faithful", "collapsed"]
    for res in results:
        saved = json.loads((tmp_path / "results" / "demo" / res.model / "metrics.json").read_text())
        for mid in NEW:
            entry = saved["metrics"][mid]
            assert entry["value"] is not None and math.isfinite(entry["value"]), (res.model, mid, entry)
        assert saved["backbones"]["hps"]["ident"] == f"hps-{TINY_HPS}-random-seed0"
        assert saved["backbones"]["dinov2"]["model"] == "vit_small_patch14_dinov2"
        boot = saved["bootstrap"]["metrics"]
        assert {"kid", "precision", "recall", "cmmd", "fd_dinov2", "hpsv2"} <= set(boot), sorted(boot)
    lb, _ = build(
        LeaderboardOptions.from_config(
            {
                "data": "demo",
                "paths": {"results_dir": str(tmp_path / "results")},
                "leaderboard": {"aspects": "modern", "on_missing": "exclude", "formats": ["json"]},
            }
        )
    )
    # the demo has no GenEval / CompBench prompts: their metrics are excluded, composition is dropped from RS
    assert lb["aspects"] == {
        "fidelity": ["fd_dinov2", "cmmd", "precision"],
        "diversity": ["recall", "coverage"],
        "alignment": ["clip_score"],
        "preference": ["hpsv2", "aesthetic"],
    }
    assert all(r.get("rs") is not None for r in lb["rows"])
