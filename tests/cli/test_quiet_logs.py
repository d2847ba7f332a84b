"""Quiet logs (issue 14 item 7): a CLI run shows tise_bench's own log lines (on stderr) and the table (on stdout),
not other libraries' chatter, unless ``verbose=true``. One cheap run per mode: the tiny demo, one model, CLIP (open_clip
warns on the root logger when it builds a random model) and the random detector (importing ultralytics with a new
settings folder prints its settings banner)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: Lines other libraries print during the run above (measured before the change, through the CLI).
NOISE = ("No pretrained weights loaded", "Ultralytics Settings", "[root]")


def _run(tmp_path, cache, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TISE_OFFLINE="1",
        HOME=str(tmp_path / "home"),
        YOLO_CONFIG_DIR=str(tmp_path / "yolo"),  # a new settings folder: ultralytics would print its banner
    )
    for var in ("YOLO_VERBOSE", "HYDRA_FULL_ERROR", "TISE_CACHE_DIR"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "tise_bench", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_noise_only_with_verbose(tmp_path, fresh_cache, verbose):
    p = _run(
        tmp_path,
        fresh_cache,  # random weights files reused; features computed, so every backbone is built
        "backbones=random",
        "backbones.device=cpu",
        "backbones.detector.imgsz=32",
        f"paths.cache_dir={fresh_cache}",
        "data.n_prompts=2",
        "data.image_size=32",
        "model=demo",
        "metrics.ids=[clip_score,soa_c]",
        "progress=false",
        f"verbose={str(verbose).lower()}",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    both = p.stdout + p.stderr
    assert "RANDOM-WEIGHTS BACKBONES: numbers are for smoke tests only" in p.stderr  # our own warning stays
    assert "[tise_bench.runner][INFO] - wrote " in p.stderr
    if verbose:
        for line in NOISE:
            assert line in both, f"verbose=true hides {line!r}"
    else:
        noisy = [line for line in NOISE if line in both]
        assert not noisy, f"{noisy} printed without verbose=true:\n{both[-3000:]}"
        assert p.stdout.startswith("data=demo\n"), p.stdout[:500]  # stdout: the table only, log lines on stderr
