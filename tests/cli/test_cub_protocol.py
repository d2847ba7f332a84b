"""data=cub follows TISE's CUB protocol (issue 9, defect 8): IS* with the bird classifier at T = 0.5980541706085205,
refused before any image is read when that classifier is not given; RP flagged as CLIP, not DAMSM."""

from __future__ import annotations

import json

import pytest
from helpers import structured_images
from hydra import compose, initialize_config_module

from tise_bench.errors import ConfigError
from tise_bench.runner import run


def _cub(tmp_path, n=4):
    root = tmp_path / "data" / "cub"
    root.mkdir(parents=True)
    lines = [json.dumps({"id": f"b{i}", "caption": f"a small bird number {i} with red wings"}) for i in range(n)]
    for s in ("realism", "rp"):
        (root / f"{s}.jsonl").write_text("\n".join(lines) + "\n")
    gen = tmp_path / "gen"
    for i, p in enumerate(structured_images(gen, n, seed=5, size=40)):
        p.rename(gen / f"b{i}.png")
    return gen


def _cfg(tmp_path, cache, *overrides):
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        return compose(
            "config",
            overrides=[
                "data=cub",
                "model=folder",
                "model.name=m",
                f"model.samples_dir={tmp_path / 'gen'}",
                f"paths.data_root={tmp_path / 'data'}",
                f"paths.cache_dir={cache}",
                f"paths.results_dir={tmp_path / 'res'}",
                "progress=false",
                "print_table=false",
                "backbones.device=cpu",
                *overrides,
            ],
        )


def test_cub_config_pins_tise_bird_protocol(tmp_path, session_cache):
    _cub(tmp_path)
    cfg = _cfg(tmp_path, session_cache, "backbones=random")
    assert cfg.data.domain == "cub"
    assert cfg.metrics.params.is_star.network == "bird_classifier"
    # temperature null = the network's TISE calibration, pinned here literally (TISE's bird classifier)
    from tise_bench.metrics.inception import TISE_TEMPERATURE

    assert cfg.metrics.params.is_star.temperature is None
    assert TISE_TEMPERATURE[cfg.metrics.params.is_star.network] == 0.5980541706085205
    # a command-line override still wins over the data config
    cfg2 = _cfg(tmp_path, session_cache, "backbones=random", "metrics.params.is_star.network=inception")
    assert cfg2.metrics.params.is_star.network == "inception"


def test_is_star_on_cub_without_bird_classifier_is_refused_before_any_network(tmp_path, session_cache, monkeypatch):
    _cub(tmp_path)
    import tise_bench.runner as runner

    def no_build(*a, **k):  # the refusal must come before any backbone is built (no minutes of work first)
        raise AssertionError("backbones were built before the CUB requirement was checked")

    monkeypatch.setattr(runner, "build_backbones", no_build)
    with pytest.raises(ConfigError) as e:
        run(_cfg(tmp_path, session_cache, "backbones=real", "metrics.ids=[is_star]"))
    msg = str(e.value)
    assert "backbones.bird_classifier.weights" in msg and "0.5980541706085205" in msg
    assert "metrics.params.is_star.network=inception" in msg


def test_cub_run_uses_bird_classifier_and_flags_rp(tmp_path, session_cache):
    _cub(tmp_path)
    [res] = run(_cfg(tmp_path, session_cache, "backbones=random", "metrics.ids=[is_star,clip_rp]"))
    m = json.loads((tmp_path / "res" / "cub" / "m" / "metrics.json").read_text())["metrics"]
    assert m["is_star"]["network"] == "bird_classifier"
    assert m["is_star"]["temperature"] == 0.5980541706085205
    assert m["is_star"]["feature"] == "bird_classifier.logits"
    assert m["is_star"]["comparability"]["backbone.bird_classifier"].startswith("birdcls")
    assert "encoders=CLIP (TISE CUB: DAMSM image/text encoders)" in m["clip_rp"]["protocol"]
    assert res.provenance["backbones"]["bird_classifier"]["random_weights"] is True


def test_bootstrap_recomputes_is_star_from_the_bird_classifier(tmp_path, session_cache):
    """IS* on CUB resamples the bird classifier's logits (the network the metric read), and the leaderboard gets
    its replicates from the run."""
    from tise_bench.leaderboard.build import LeaderboardOptions, build

    _cub(tmp_path, n=6)
    run(_cfg(tmp_path, session_cache, "backbones=random", "metrics.ids=[is_star]", "metrics.params.is_star.splits=2"))
    lb, _ = build(
        LeaderboardOptions(
            data="cub",
            results_dir=tmp_path / "res",
            metrics=["is_star"],
            aspects={"realism": ["is_star"]},
            bootstrap=20,
            formats=["json"],
        )
    )
    assert lb["bootstrap"]["skipped"] == {}, lb["bootstrap"]["skipped"]
    row = lb["rows"][0]
    m = json.loads((tmp_path / "res" / "cub" / "m" / "metrics.json").read_text())["metrics"]["is_star"]
    assert m["feature"] == "bird_classifier.logits"
    assert row["model"] == "m" and len(row["ci"]["is_star"]) == 2 and lb["bootstrap"]["replicates"]["is_star"] == 20
