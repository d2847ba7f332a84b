"""The installed command, as a user runs it: offline failure, demo smoke run, clear config/data errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_module

from tise_bench.errors import ConfigError, DataError
from tise_bench.runner import run

CORE_IDS = {"clip_score", "clip_rp", "is", "is_star", "fid", "ref_clip_score", "clip_i2i"}


def _env(tmp_path, **extra):
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TISE_OFFLINE="1",
        HOME=str(tmp_path / "home"),
        TORCH_HOME=str(tmp_path / "torch"),
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        **extra,
    )
    env.pop("TISE_CACHE_DIR", None)
    return env


def _cli(args, tmp_path, timeout=600, **env):
    return subprocess.run(
        [sys.executable, "-m", "tise_bench", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_real_backbones_offline_fail_fast_with_instructions(tmp_path):
    t = time.monotonic()
    p = _cli(["data.n_prompts=4", "data.image_size=32"], tmp_path, timeout=120)
    elapsed = time.monotonic() - t
    assert p.returncode == 2, p.stderr[-2000:]
    assert "backbones.clip.weights" in p.stderr and "backbones=random" in p.stderr
    assert "Traceback" not in p.stderr
    assert elapsed < 30, f"offline failure took {elapsed:.1f}s (should be seconds, not download retries)"


@pytest.mark.slow
def test_demo_sweep_random_backbones_writes_every_metric(tmp_path, session_cache):
    p = _cli(
        [
            "backbones=random",
            "backbones.device=cpu",
            "data.n_prompts=4",
            "data.image_size=32",
            "progress=false",
            # the crop metrics' path at a tenth of its cost: 2 crops per image (8 by default: ~200 Inception
            # forwards here), the detector at 64 px (as test_modern_preset, whose run reuses its weights file)
            "backbones.detector.max_crops=2",
            "backbones.detector.imgsz=64",
        ],
        tmp_path,
        TISE_CACHE_DIR=str(session_cache),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "RANDOM-WEIGHTS" in p.stdout
    for model in ("faithful", "blurred", "noisy", "shuffled", "collapsed"):
        res = json.loads((tmp_path / "results" / "demo" / model / "metrics.json").read_text())
        assert CORE_IDS <= set(res["metrics"]), model
        assert res["random_weights"] is True
        assert (tmp_path / "results" / "demo" / model / "samples.parquet").is_file()
        assert model in p.stdout
    assert not (tmp_path / "outputs").exists(), "Hydra wrote outside the results dir"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["home", "results"]


def _cfg(tmp_path, session_cache, *overrides):
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        return compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                f"paths.cache_dir={session_cache}",
                f"paths.results_dir={tmp_path / 'res'}",
                "progress=false",
                "print_table=false",
                *overrides,
            ],
        )


def test_baseline_model_without_images_names_the_folder(tmp_path, session_cache):
    cfg = _cfg(
        tmp_path,
        session_cache,
        "model=dfgan",
        f"paths.samples_root={tmp_path / 'samples'}",
        "data.n_prompts=4",
        "data.image_size=32",
        "metrics.ids=[clip_score]",  # the default bag builds the random detector first (~8 s) for nothing
    )
    with pytest.raises(DataError, match=r"samples[/\\]dfgan[/\\]demo"):
        run(cfg)


def test_unknown_metric_id_gets_did_you_mean(tmp_path, session_cache):
    cfg = _cfg(tmp_path, session_cache, "metrics.ids=[clip_scor]", "data.n_prompts=4", "data.image_size=32")
    with pytest.raises(ConfigError, match="Did you mean 'clip_score'"):
        run(cfg)


def test_folder_model_on_custom_manifest_reports_missing(tmp_path, session_cache):
    from helpers import structured_images

    imgs = structured_images(tmp_path / "gen", 3, seed=5, size=32)
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps({"id": f"{i:04d}", "caption": f"scene {i}"}) + "\n" for i in range(4)))
    base = [
        "model=folder",
        "model.name=mine",
        f"model.samples_dir={tmp_path / 'gen'}",
        "data=custom",
        "data.name=tiny",
        f"data.manifest={man}",
        "metrics.ids=[clip_score,clip_rp]",
    ]
    with pytest.raises(DataError, match=r"(?s)1 missing \(0003\).*on_mismatch=skip"):
        run(_cfg(tmp_path, session_cache, *base))
    [res] = run(_cfg(tmp_path, session_cache, *base, "on_mismatch=skip"))
    assert res.provenance["counts"]["missing"] == 1 and res.metrics["clip_score"].n == len(imgs)
    saved = json.loads((tmp_path / "res" / "tiny" / "mine" / "metrics.json").read_text())
    assert saved["counts"]["missing"] == 1 and saved["mismatch"]["missing"] == ["0003"]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("backbones.detector.imgsz=abc", ["backbones.detector.imgsz", "could not be converted to Integer"]),
        ("backbones.clip.imgsz=640", ["backbones.clip.imgsz is not a setting of backbones.clip (ClipConfig"]),
        ("model.nmae=x", ["model.nmae is not a setting of model (ModelConfig", "Did you mean model.name?"]),
        ("+model.nmae=x", ["model.nmae is not a setting of model", "Did you mean model.name?"]),
        ("+backbone=random", ["backbone is not a setting of the config", "Did you mean backbones?"]),
    ],
)
def test_wrong_config_key_or_type_is_refused_naming_it(tmp_path, session_cache, override, expected):
    p = _cli(
        ["backbones=random", "backbones.device=cpu", "data.n_prompts=4", "data.image_size=32", override],
        tmp_path,
        timeout=300,
        TISE_CACHE_DIR=str(session_cache),
    )
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    for text in expected:
        assert text in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "results" / "demo").exists()  # refused before any work
