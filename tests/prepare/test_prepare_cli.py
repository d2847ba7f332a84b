"""``python -m tise_bench.prepare`` as a user runs it, the packaged config, and the data=coco round trip."""

from __future__ import annotations

import os
import subprocess
import sys

from prepare_fixtures import write_coco
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from tise_bench.data.manifest import load_manifest
from tise_bench.evalset import SUBSETS, load_eval_set
from tise_bench.prepare import run_prepare


def _cli(args: list[str], cwd, **env: str) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    e = {k: v for k, v in os.environ.items() if k != "TISE_DATA_ROOT"}
    return subprocess.run(
        [sys.executable, "-m", "tise_bench.prepare", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**e, **env},
    )


def test_cli_writes_manifests_and_nothing_in_cwd(tmp_path):
    coco = write_coco(tmp_path / "coco")
    cwd = tmp_path / "cwd"
    p = _cli(["data=coco", f"coco_root={coco.root}", f"out={tmp_path / 'out'}", "sizes.realism=8", "sizes.rp=4"], cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "realism" in p.stdout and "rp" in p.stdout
    assert len(load_manifest(tmp_path / "out" / "realism.jsonl")) == 8
    assert {f.name for f in (tmp_path / "out").iterdir()} == {f"{s}.jsonl" for s in SUBSETS}
    assert list(cwd.iterdir()) == [], "Hydra left outputs/ or .hydra/ or a log in the working directory"


def test_cli_default_out_and_missing_file_error(tmp_path):
    coco = write_coco(tmp_path / "coco")
    cwd = tmp_path / "cwd"
    p = _cli(["data=coco", f"coco_root={coco.root}", "sizes.realism=3"], cwd, TISE_DATA_ROOT=str(tmp_path / "dr"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "dr" / "coco" / "soa.jsonl").is_file() and list(cwd.iterdir()) == []
    (coco.root / "annotations" / "instances_val2014.json").unlink()
    p = _cli(["data=coco", f"coco_root={coco.root}", f"out={tmp_path / 'o2'}"], cwd)
    assert p.returncode == 2 and "instances_val2014.json" in p.stderr and "Traceback" not in p.stderr
    p = _cli(["data=coco"], cwd)
    assert p.returncode == 2 and "coco_root=<dir>" in p.stderr
    assert list(cwd.iterdir()) == []


def test_compose_then_evaluate_config_finds_all_five(tmp_path, monkeypatch):
    monkeypatch.setenv("TISE_DATA_ROOT", str(tmp_path / "data"))
    coco = write_coco(tmp_path / "coco")
    with initialize_config_module(version_base="1.3", config_module="tise_bench.prepare.conf"):
        cfg = compose("prepare", overrides=["data=coco", f"coco_root={coco.root}", "sizes.rp=5"])
    assert cfg.out == str(tmp_path / "data" / "coco")
    paths = run_prepare(OmegaConf.to_container(cfg, resolve=True))
    assert set(paths) == set(SUBSETS)
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        main = compose("config", overrides=["data=coco"])
    es = load_eval_set(OmegaConf.to_container(main.data, resolve=True), tmp_path / "cache")
    assert set(es.subsets) == set(SUBSETS) and len(es.subsets["rp"]) == 5
