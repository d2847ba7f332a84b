"""Issue 11 item 10: each demo configuration has its own folder, never moved while another run reads it."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest

from tise_bench.data.demo import demo_folder_name, plan_scenes, prepare_demo
from tise_bench.data.manifest import load_manifest
from tise_bench.errors import DataError
from tise_bench.evalset import load_eval_set

N, SIZE = 6, 32


def _cfg(root: Path, seed: int) -> dict:
    return {"name": "demo", "kind": "demo", "root": str(root), "n_prompts": N, "image_size": SIZE, "seed": seed}


def _captions(seed: int) -> list[str]:
    return [s.record.caption for s in plan_scenes(N, seed)]


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_a_seed_sweep_reads_its_own_captions(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    first = load_eval_set(_cfg(root, 1), tmp_path)
    folder1 = Path(first.sources["realism"]).parent.parent
    before = _snapshot(folder1)
    ino = folder1.stat().st_ino
    listed = sorted(os.listdir(folder1 / "models" / "faithful"))  # a reader has listed seed 1's images ...
    second = load_eval_set(_cfg(root, 2), tmp_path)  # ... when a run with another seed prepares its demo
    # every path seed 1's run holds still names seed 1's bytes: nothing was renamed away or replaced
    assert [r.caption for r in load_manifest(first.sources["realism"])] == _captions(1)
    assert folder1.stat().st_ino == ino and _snapshot(folder1) == before
    assert sorted(os.listdir(folder1 / "models" / "faithful")) == listed
    assert [r.caption for r in first.subsets["realism"]] == _captions(1)
    assert [r.caption for r in second.subsets["realism"]] == _captions(2) != _captions(1)
    third = load_eval_set(_cfg(root, 1), tmp_path)  # the first seed again: reused, not re-rendered
    assert _snapshot(folder1) == before
    assert third.sources == first.sources and first.demo_models_dir != second.demo_models_dir
    assert sorted(p.name for p in root.iterdir()) == sorted(demo_folder_name(N, SIZE, s) for s in (1, 2))


def _prepare_and_read(args: tuple[str, int]) -> tuple[int, str, list[str]]:
    root, seed = args
    demo = prepare_demo(root, n_prompts=N, image_size=SIZE, seed=seed)
    return seed, str(demo.root), [r.caption for r in load_manifest(demo.manifests["realism"])]


def test_concurrent_seeds_leave_both_folders_intact(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    jobs = [(str(root), s) for s in (1, 2, 1, 2, 2, 1)]
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.map(_prepare_and_read, jobs, chunksize=1)
    for seed, folder, captions in results:
        assert folder == str(root / demo_folder_name(N, SIZE, seed)) and captions == _captions(seed)
    assert sorted(p.name for p in root.iterdir()) == sorted(demo_folder_name(N, SIZE, s) for s in (1, 2))
    for s in (1, 2):
        solo = prepare_demo(tmp_path / f"solo{s}", n_prompts=N, image_size=SIZE, seed=s).root
        assert {k: v for k, (_, v) in _snapshot(root / demo_folder_name(N, SIZE, s)).items()} == {
            k: v for k, (_, v) in _snapshot(solo).items()
        }


def test_a_folder_with_another_stamp_is_refused_not_moved(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    folder = prepare_demo(root, n_prompts=N, image_size=SIZE, seed=1).root
    (folder / "DEMO_VERSION").write_text("demo 0 something else\n")
    before = _snapshot(folder)
    with pytest.raises(DataError, match="(?s)DEMO_VERSION says 'demo 0 something else'.*never moves or deletes it"):
        prepare_demo(root, n_prompts=N, image_size=SIZE, seed=1)
    assert _snapshot(folder) == before and sorted(p.name for p in root.iterdir()) == [folder.name]
