"""Reference statistics are keyed by exactly the rows they are computed from (issue 9, defect 5).

Two eval sets whose records reference the same set of real images, one of them with a repeated reference,
must not share one cached (mu, sigma): the second set's FID on a shared cache equals its FID on a fresh cache.
"""

from __future__ import annotations

import shutil

import pytest
from helpers import RANDOM_BACKBONES, structured_images

import tise_bench


def _fid(gen_dir, refs, cache):
    captions = [f"caption {i}" for i in range(len(refs))]
    ids = [f"{i:06d}" for i in range(len(refs))]
    return (
        tise_bench.evaluate(
            str(gen_dir),
            captions,
            ids=ids,
            references=refs,
            metrics=["fid"],
            backbones=RANDOM_BACKBONES,
            cache_dir=cache,
        )
        .metrics["fid"]
        .value
    )


def test_repeated_reference_gets_its_own_statistics(tmp_path, fresh_cache):
    refs = [str(p) for p in structured_images(tmp_path / "ref", 4, seed=1, size=48)]
    gen_a = tmp_path / "gen_a"
    structured_images(gen_a, 4, seed=2, size=48, prefix="00")  # 000000.png ... (ids 000000-000003)
    gen_b = tmp_path / "gen_b"
    structured_images(gen_b, 5, seed=3, size=48, prefix="00")
    refs_b = [refs[0]] + refs  # same set of reference hashes, r0 twice

    shared = fresh_cache
    fresh = tmp_path / "fresh"
    shutil.copytree(fresh_cache, fresh)
    _fid(gen_a, refs, shared)  # caches statistics of {r0, r1, r2, r3}
    on_shared = _fid(gen_b, refs_b, shared)
    on_fresh = _fid(gen_b, refs_b, fresh)
    assert on_shared == pytest.approx(on_fresh, rel=1e-9, abs=1e-9)
