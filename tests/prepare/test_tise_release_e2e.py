"""End to end: a miniature TISE release (real pickle names/keys, images in TISE's folders) is imported with
``python -m tise_bench.prepare`` and scored in place with model.layout=tise; RP ranks against the pickle's
released distractors (issue 9, defect 7)."""

from __future__ import annotations

import json
import subprocess
import sys

from hydra import compose, initialize_config_module
from tise_release_fixture import PA, RP, write_tise_images, write_tise_release

from tise_bench.runner import run


def test_tise_release_imported_and_scored_in_place(tmp_path, session_cache):
    root = write_tise_release(tmp_path / "tise-toolbox", cub=False)
    imgs = write_tise_images(root, "attngan++")
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "tise_bench.prepare",
            "data=coco",
            f"tise_pickles={root}",
            f"out={tmp_path / 'data' / 'coco'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "data" / "coco" / "rp.jsonl").is_file() and (tmp_path / "data" / "coco" / "soa.jsonl").is_file()

    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        cfg = compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                f"paths.cache_dir={session_cache}",
                f"paths.results_dir={tmp_path / 'res'}",
                f"paths.data_root={tmp_path / 'data'}",
                "progress=false",
                "print_table=false",
                "data=coco",
                "model=folder",
                "model.name=attngan_pp",
                f"model.samples_dir={root}",
                "model.layout=tise",
                f"model.subset_dirs.rp={imgs.subset_dirs['rp']}",
                f"model.subset_dirs.pa={imgs.subset_dirs['pa']}",
                "metrics.ids=[clip_rp,pa]",
            ],
        )
    [res] = run(cfg)
    saved = json.loads((tmp_path / "res" / "coco" / "attngan_pp" / "metrics.json").read_text())
    rp, pa = saved["metrics"]["clip_rp"], saved["metrics"]["pa"]
    assert rp["n"] == len(RP) and rp["n_with_mismatched"] == len(RP)  # every image ranked against its released list
    assert rp["n_candidates"] == rp["n_candidates_max"] == 1 + len(RP[0]["mismatched_captions"])
    assert pa["n"] == sum(len(v) for v in PA.values())
    assert saved["counts"]["missing"] == saved["counts"]["extra"] == 0
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before  # nothing copied or renamed
