"""`python -m tise_bench.refstats` writes statistics that name their network; a run accepts them and gets the
same FID as from the reference images themselves (issue 9, defect 11)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import RANDOM_BACKBONES, structured_images

import tise_bench
from tise_bench.evalset import EXTRACTOR_KEY


def test_refstats_file_names_extractor_and_gives_the_same_fid(tmp_path, fresh_cache):
    refs = [str(p) for p in structured_images(tmp_path / "ref", 5, seed=1, size=48)]
    gen = tmp_path / "gen"
    structured_images(gen, 5, seed=2, size=48, prefix="00")
    out = tmp_path / "ref_stats.npz"
    env = dict(os.environ, TISE_CACHE_DIR=str(fresh_cache))
    p = subprocess.run(
        [sys.executable, "-m", "tise_bench.refstats", str(tmp_path / "ref"), str(out), "--random", "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    with np.load(out, allow_pickle=False) as z:
        assert str(z[EXTRACTOR_KEY]).startswith("inception-v3-compat-random-seed0:")
    kw = dict(ids=[f"{i:06d}" for i in range(5)], metrics=["fid"], backbones=RANDOM_BACKBONES, cache_dir=fresh_cache)
    caps = [f"c{i}" for i in range(5)]
    from_images = tise_bench.evaluate(str(gen), caps, references=refs, **kw).metrics["fid"].value
    from_file = tise_bench.evaluate(str(gen), caps, reference_stats=str(out), **kw).metrics["fid"].value
    assert from_file == pytest.approx(from_images, rel=1e-9)


def test_refstats_names_a_missing_folder(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "tise_bench.refstats", str(tmp_path / "nope"), str(tmp_path / "o.npz"), "--random"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "nope" in p.stderr and "Traceback" not in p.stderr
