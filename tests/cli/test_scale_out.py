"""Scaling out: ``torchrun`` shards feature extraction across ranks; Hydra's joblib launcher runs a sweep's
models in parallel processes. Both must give the numbers a plain single-process run gives."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import structured_images
from hydra import compose, initialize_config_module

from tise_bench.runner import run

N = 8  # images per model; references as many (each rank extracts 8 of the 16)


def _tiny_set(root: Path, models: dict[str, int]) -> Path:
    """Folder models (name -> image seed) and a manifest with captions and reference images."""
    for name, seed in models.items():
        structured_images(root / "models" / name, N, seed=seed, size=32)
    structured_images(root / "ref", N, seed=99, size=32)
    man = root / "tiny.jsonl"
    man.write_text(
        "".join(
            json.dumps({"id": f"{i:04d}", "caption": f"a red square and shape {i}", "reference": f"ref/{i:04d}.png"})
            + "\n"
            for i in range(N)
        )
    )
    return man


def _args(root: Path, man: Path, ids: str) -> list[str]:
    return [
        "backbones=random",
        "backbones.device=cpu",
        "model=folder",
        "data=custom",
        "data.name=tiny",
        f"data.manifest={man}",
        f"metrics.ids=[{ids}]",
        "progress=false",
    ]


def _env(tmp_path: Path, cache: Path) -> dict[str, str]:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TISE_OFFLINE="1",
        HOME=str(tmp_path / "home"),
        TORCH_HOME=str(tmp_path / "torch"),
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        TISE_CACHE_DIR=str(cache),
        OMP_NUM_THREADS="1",
    )
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _weights_only_cache(session_cache: Path, dst: Path) -> Path:
    """An empty feature cache that reuses the session's random weights files (subprocesses skip ~6 s)."""
    dst.mkdir()
    for sub in ("weights", "weights-hashes"):
        if (session_cache / sub).is_dir():
            shutil.copytree(session_cache / sub, dst / sub)
    return dst


def _single_process(tmp_path: Path, session_cache: Path, man: Path, ids: str, model: str, samples: Path) -> dict:
    """The reference: a plain in-process run on a feature cache of its own, empty at a test's first reference run
    (a test's later reference runs read the reference images' features the first one wrote)."""
    cache = tmp_path / "cache-ref"
    if not cache.exists():
        _weights_only_cache(session_cache, cache)
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        cfg = compose(
            "config",
            overrides=[
                *_args(tmp_path, man, ids),
                f"model.name={model}",
                f"model.samples_dir={samples}",
                f"paths.cache_dir={cache}",
                f"paths.results_dir={tmp_path / 'ref-res'}",
                "print_table=false",
            ],
        )
    [res] = run(cfg)
    assert res.provenance["world_size"] == 1
    return res.values()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k, v in want.items():  # batches differ between the runs: float sums may differ in the last bits
        assert got[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


@pytest.mark.slow
def test_torchrun_two_ranks_shard_extraction_and_match_single_process(tmp_path, session_cache):
    man = _tiny_set(tmp_path, {"mine": 1})
    ids = "clip_score,clip_rp,is,fid"
    cache = _weights_only_cache(session_cache, tmp_path / "cache-dist")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "tise_bench",
        *_args(tmp_path, man, ids),
        "model.name=mine",
        f"model.samples_dir={tmp_path / 'models' / 'mine'}",
        f"paths.results_dir={tmp_path / 'res'}",
    ]
    p = subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path, cache), capture_output=True, text=True, timeout=300)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-4000:]

    # every rank extracted its own half of the 2N images (N generated + N references) with real forwards
    shards = {
        int(m[1]): (int(m[2]), int(m[3]), int(m[4]))
        for m in re.finditer(r"rank (\d) extracted its shard of (\d+)/(\d+) images \((\d+) backbone forwards\)", log)
    }
    assert sorted(shards) == [0, 1], log[-4000:]
    assert all(n == 2 * N // 2 and total == 2 * N and fwd > 0 for n, total, fwd in shards.values()), shards

    # rank 0 alone wrote the one result (and printed the one table)
    out = tmp_path / "res" / "tiny"
    assert sorted(x.name for x in out.iterdir()) == ["mine"]
    saved = json.loads((out / "mine" / "metrics.json").read_text())
    assert saved["world_size"] == 2
    assert p.stdout.count("data=tiny") == 1

    want = _single_process(tmp_path, session_cache, man, ids, "mine", tmp_path / "models" / "mine")
    _same({k: v["value"] for k, v in saved["metrics"].items()}, want)


@pytest.mark.slow
def test_joblib_launcher_sweep_runs_models_in_parallel_processes(tmp_path, session_cache):
    man = _tiny_set(tmp_path, {"a": 1, "b": 2})
    ids = "is,fid"
    cache = _weights_only_cache(session_cache, tmp_path / "cache-sweep")  # shared by both jobs, concurrently
    cmd = [
        sys.executable,
        "-m",
        "tise_bench",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *_args(tmp_path, man, ids),
        "model.name=a,b",
        f"model.samples_dir={tmp_path / 'models'}/${{model.name}}",
        f"paths.results_dir={tmp_path / 'res'}",
    ]
    p = subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path, cache), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "Joblib.Parallel(n_jobs=2" in p.stdout + p.stderr
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists(), (
        "Hydra wrote outside results_dir"
    )

    for model in ("a", "b"):
        saved = json.loads((tmp_path / "res" / "tiny" / model / "metrics.json").read_text())
        want = _single_process(tmp_path, session_cache, man, ids, model, tmp_path / "models" / model)
        _same({k: v["value"] for k, v in saved["metrics"].items()}, want)
