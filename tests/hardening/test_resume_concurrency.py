"""Jobs get killed and share caches: a SIGKILLed run resumes from its finished shards to the same result,
and two processes writing one cache at once both get correct results and leave no corrupt file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import tise_bench
from helpers import structured_images
from tise_bench.features.store import FeatureStore

METRICS = ["clip_score", "is", "fid"]
N = 16  # per side (generated, references), batch size 4: the run is killed mid-extraction (asserted below)


def _random_cfg() -> dict:
    conf = Path(tise_bench.__file__).parent / "configs" / "backbones" / "random.yaml"
    return {**OmegaConf.to_container(OmegaConf.load(conf)), "device": "cpu"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, session_cache):
    """Two models' images, references, a manifest, a weights-only cache (the session's random weights files:
    no Inception calibration here) and each model's reference values (computed in-process through the API on
    one cache of their own: b's run reads the reference features a's run wrote)."""
    root = tmp_path_factory.mktemp("ws")
    for name, seed in (("a", 1), ("b", 2), ("refs", 3)):
        structured_images(root / name, N, seed=seed, size=40)
    man = root / "m.jsonl"
    man.write_text(
        "".join(
            json.dumps({"id": f"{i:04d}", "caption": f"shapes of kind {i}", "reference": f"refs/{i:04d}.png"}) + "\n"
            for i in range(N)
        )
    )
    weights = session_cache
    expected = {}
    cache = _cache_with_weights(weights, root / "api-cache")
    for name in ("a", "b"):
        res = tise_bench.evaluate(
            root / name, manifest=man, metrics=METRICS, backbones=_random_cfg(), cache_dir=cache, batch_size=4
        )
        expected[name] = res.values()
    return {"root": root, "man": man, "weights": weights, "expected": expected}


def _cache_with_weights(weights: Path, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    for sub in ("weights", "weights-hashes"):
        if (weights / sub).is_dir():
            shutil.copytree(weights / sub, cache / sub, dirs_exist_ok=True)
    return cache


def _args(ws, model: str, cache: Path, results: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tise_bench",
        "model=folder",
        f"model.name={model}",
        f"model.samples_dir={ws['root'] / model}",
        "data=custom",
        "data.name=t",
        f"data.manifest={ws['man']}",
        "backbones=random",
        "backbones.device=cpu",
        "batch_size=4",
        f"metrics.ids=[{','.join(METRICS)}]",
        f"paths.cache_dir={cache}",
        f"paths.results_dir={results}",
        "progress=false",
        "print_table=false",
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TISE_OFFLINE="1")
    env.pop("TISE_CACHE_DIR", None)
    return env


def _saved(results: Path, model: str) -> dict:
    return json.loads((results / "t" / model / "metrics.json").read_text())


def _assert_values(saved: dict, expected: dict[str, float]) -> None:
    """Equal to the in-process reference run. Not bit-exact: another process may split conv work over
    another number of threads (seen: IS differing by 1.4e-6 relative); a lost or doubled image would move
    these values by orders of magnitude more than 1e-5."""
    got = {k: v["value"] for k, v in saved["metrics"].items()}
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-9), k


def _shards(cache: Path) -> list[Path]:
    return sorted(cache.glob("features/*/*.npz"))


def _rows(cache: Path) -> int:
    return sum(
        len(FeatureStore(cache, d.name)._index)
        for d in (cache / "features").iterdir()
        if d.is_dir() and not d.name.endswith("-text")
    )


def test_sigkill_mid_extraction_then_rerun_resumes_to_the_uninterrupted_result(ws, tmp_path):
    cache = _cache_with_weights(ws["weights"], tmp_path / "cache")
    results = tmp_path / "res"
    proc = subprocess.Popen(
        _args(ws, "a", cache, results),
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while len(_shards(cache)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (results / "t" / "a" / "metrics.json").exists()
    left = _shards(cache)
    rows_before = _rows(cache)
    assert left and 0 < rows_before < 2 * 2 * N  # mid-extraction: some features stored, not all

    p = subprocess.run(
        _args(ws, "a", cache, results), cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-3000:]
    saved = _saved(results, "a")
    _assert_values(saved, ws["expected"]["a"])
    fwd = saved["backbone_forwards"]
    assert fwd["clip"] + fwd["inception"] == 2 * 2 * N - rows_before, fwd  # only what the killed run left undone
    assert all(s.exists() for s in left)  # finished shards were reused, not rewritten
    assert not any(FeatureStore(cache, d.name).n_corrupt for d in (cache / "features").iterdir())


def test_two_concurrent_runs_on_one_cache(ws, tmp_path):
    """Different models on the same eval set at once: both write the shared reference features."""
    cache = _cache_with_weights(ws["weights"], tmp_path / "cache")
    results = tmp_path / "res"
    procs = {
        m: subprocess.Popen(
            _args(ws, m, cache, results),
            cwd=tmp_path,
            env=_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in ("a", "b")
    }
    for m, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{m}: {err[-3000:]}"
    for m in ("a", "b"):
        _assert_values(_saved(results, m), ws["expected"][m])
    stores = [FeatureStore(cache, d.name) for d in (cache / "features").iterdir()]
    assert not any(s.n_corrupt for s in stores)
    assert not list(cache.rglob("*.tmp")) and not list(cache.rglob("*.tmp.npz"))
    # every image's features are in the shared cache: a third run of either model computes nothing
    p = subprocess.run(
        _args(ws, "b", cache, tmp_path / "res2"),
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    saved = _saved(tmp_path / "res2", "b")
    assert set(saved["backbone_forwards"].values()) == {0}
    _assert_values(saved, ws["expected"]["b"])
