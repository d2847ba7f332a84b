"""Issue 11, items 3, 4 and 6: names and ids never write outside their folder; no file contents in results.

``model.name``, ``data.name``, the demo suite's names and the leaderboard's ``data`` are single path components
of a safe alphabet (tise_bench/names.py), refused when the config is read, before any work; the API's ids (written
as ``<id>.png`` into the cache) are single file names; the "not an image" message says the detected type, never
the file's bytes (with ``on_bad_image=skip`` it lands in metrics.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from PIL import Image

import tise_bench
from helpers import RANDOM_BACKBONES, structured_images
from tise_bench.errors import ConfigError, DataError
from tise_bench import imagefile as decode
from tise_bench.leaderboard.build import LeaderboardOptions
from tise_bench.names import check_file_id, check_name
from tise_bench.runner import run

BAD_NAMES = ["../../x", "../evil", "/abs", "a/b", "a\\b", "a\nb", ".hidden", "..", "", "a\x00b", "x" * 129]
GOOD_NAMES = ["faithful", "demo_all", "attngan_plus", "my-model.v2", "sd1.5+lora", "2024", "A"]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _cfg(tmp_path: Path, *overrides: str):
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        return compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                f"paths.cache_dir={tmp_path / 'cache'}",
                f"paths.results_dir={tmp_path / 'work' / 'res'}",
                "progress=false",
                "print_table=false",
                *overrides,
            ],
        )


@pytest.fixture()
def folder_inputs(tmp_path):
    samples = tmp_path / "work" / "gen"
    structured_images(samples, 2, seed=3, size=24)
    man = tmp_path / "work" / "m.jsonl"
    man.write_text("".join(json.dumps({"id": f"{i:04d}", "caption": f"scene {i}"}) + "\n" for i in range(2)))
    return samples, man


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_check_name_refuses_paths_and_odd_characters(bad):
    with pytest.raises(ConfigError) as e:
        check_name(bad, "model.name")
    msg = str(e.value)
    assert msg.startswith(f"model.name={bad!r} is not a valid name") and "ASCII letters, digits and . _ + -" in msg


@pytest.mark.parametrize("good", GOOD_NAMES)
def test_check_name_accepts_ordinary_names(good):
    assert check_name(good, "data.name") == good


@pytest.mark.parametrize(
    "key, value",
    [("model.name", "../../x"), ("model.name", "/abs"), ("model.name", ".hidden"), ("data.name", "../evil")],
)
def test_cli_refuses_unsafe_names_before_any_work(tmp_path, folder_inputs, key, value):
    samples, man = folder_inputs
    before = _tree(tmp_path)
    overrides = {"model.name": "m", "data.name": "t", key: value}
    cfg = _cfg(
        tmp_path,
        "model=folder",
        f"model.samples_dir={samples}",
        "data=custom",
        f"data.manifest={man}",
        *(f"{k}={v}" for k, v in overrides.items()),
    )
    with pytest.raises(ConfigError, match=rf"^{key}={value!r} is not a valid name"):
        run(cfg)
    assert _tree(tmp_path) == before  # no results, no cache, nothing at ../x or /abs
    assert not Path("/abs").exists()


def test_cli_refuses_a_name_with_a_newline_and_an_unsafe_suite_name(tmp_path, folder_inputs):
    samples, man = folder_inputs
    before = _tree(tmp_path)
    cfg = _cfg(tmp_path, "model=folder", f"model.samples_dir={samples}", "data=custom", "data.name=t")
    cfg.data.manifest, cfg.model.name = str(man), "m\nevil"
    with pytest.raises(ConfigError, match=r"^model\.name='m\\nevil' is not a valid name"):
        run(cfg)
    cfg = _cfg(tmp_path, "model.suite=[faithful,../../escaped]")  # the demo sweep: refused before the demo is made
    with pytest.raises(ConfigError, match=r"^model\.suite\[1\]='\.\./\.\./escaped' is not a valid name"):
        run(cfg)
    assert _tree(tmp_path) == before


def test_cli_command_exits_2_with_the_message(tmp_path, folder_inputs):
    samples, man = folder_inputs
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tise_bench",
            "backbones=random",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.results_dir={tmp_path / 'work' / 'res'}",
            "model=folder",
            "model.name=../../x",
            f"model.samples_dir={samples}",
            "data=custom",
            "data.name=t",
            f"data.manifest={man}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "tise_bench: error: model.name='../../x' is not a valid name" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "cache").exists()
    res = tmp_path / "work" / "res"  # only Hydra's own run folder (.hydra/) is there, no result
    assert not res.exists() or [p.name for p in res.iterdir()] == [".hydra"]


@pytest.mark.parametrize("kw", [{"name": "../../x"}, {"data_name": "/abs"}, {"name": ".m"}])
def test_api_refuses_unsafe_names_before_writing_images(tmp_path, kw):
    img = np.zeros((8, 8, 3), np.uint8)
    key = next(iter(kw))
    with pytest.raises(ConfigError, match=rf"^{key}="):
        tise_bench.evaluate([img], ["a caption"], backbones="random", cache_dir=tmp_path / "cache", **kw)
    assert not (tmp_path / "cache").exists()  # nothing materialised


@pytest.mark.parametrize("bad", ["../evil", "/abs", "a/b", "a\nb", ".hidden"])
def test_leaderboard_data_name_is_checked(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"^data=.* is not a valid name"):
        LeaderboardOptions.from_config({"data": bad, "paths": {"results_dir": str(tmp_path)}})
    with pytest.raises(ConfigError):
        LeaderboardOptions(data=bad, results_dir=tmp_path)


def test_leaderboard_command_refuses_a_path_as_data(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tise_bench.leaderboard", "data=../evil", f"paths.results_dir={tmp_path / 'res'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "data='../evil' is not a valid name" in proc.stderr, proc.stderr
    assert not (tmp_path / "evil").exists()


# ------------------------------------------------------------------------------------ item 4: the API's ids
@pytest.mark.parametrize("bad", ["../../x", "/abs/x", "a/b", "a\\b", "a\x00b", "a\nb", ".x", "", "  ", "é" * 200])
def test_check_file_id_refuses_what_is_not_one_file_name(bad):
    with pytest.raises(ConfigError, match=r"^ids\[0\]=.* cannot be an image file name"):
        check_file_id(bad, "ids[0]")


@pytest.mark.parametrize("good", ["000123", "COCO_val2014_000000000042", "a b", "ümlaut", "x.y", "123_1", "a-b+c"])
def test_check_file_id_keeps_ordinary_manifest_ids(good):
    assert check_file_id(good, "ids[0]") == good


def test_api_refuses_path_ids_and_writes_nothing(tmp_path):
    cache = tmp_path / "cache"
    imgs = [np.zeros((8, 8, 3), np.uint8)] * 2
    with pytest.raises(ConfigError, match=r"^ids\[0\]='\.\./\.\./x' cannot be an image file name"):
        tise_bench.evaluate(imgs, ["a", "b"], ids=["../../x", "ok"], backbones="random", cache_dir=cache)
    assert not cache.exists() and not (tmp_path / "x.png").exists()


def test_api_refuses_unsafe_manifest_ids_for_in_memory_images(tmp_path):
    man = tmp_path / "m.jsonl"
    man.write_text(json.dumps({"id": "../up", "caption": "c"}) + "\n")  # the manifest loader accepts any string id
    with pytest.raises(ConfigError, match=r"ids \(manifest .*m\.jsonl\)\[0\]='\.\./up' cannot be an image file"):
        tise_bench.evaluate([np.zeros((8, 8, 3), np.uint8)], manifest=man, backbones="random", cache_dir=tmp_path / "c")
    assert not (tmp_path / "up.png").exists() and not (tmp_path / "c" / "up.png").exists()


def test_api_ordinary_ids_still_work(tmp_path, fresh_cache):
    paths = structured_images(tmp_path / "imgs", 3, seed=5, size=24)
    ids = ["COCO_val2014_000000000042", "ümlaut id", "x.y"]
    res = tise_bench.evaluate(
        [Image.open(p) for p in paths],
        ["one", "two", "three"],
        ids=ids,
        metrics=["clip_score"],
        backbones=RANDOM_BACKBONES,
        cache_dir=fresh_cache,
    )
    assert res.metrics["clip_score"].n == 3 and sorted(res.samples["id"]) == sorted(ids)
    assert not (fresh_cache / "api-images").exists()  # in-memory images are scored in memory (issue 14 item 2)


# ------------------------------------------------------------------- item 6: no file contents in messages
SECRET = b"API_KEY=hunter2-do-not-leak\n"


@pytest.mark.parametrize(
    "data, kind",
    [
        (SECRET, "text file"),
        (b"PK\x03\x04" + b"\x00" * 40, "zip archive"),
        (b"%PDF-1.7 secret", "PDF document"),
        (bytes(range(256)), "unknown binary"),
        (b"\x80\x04\x95secret", "Python pickle"),
    ],
)
def test_not_an_image_message_names_the_type_not_the_bytes(data, kind):
    with pytest.raises(DataError) as e:
        decode.decode_image(data, "/gen/x.png")
    msg = str(e.value)
    assert msg.startswith(f"/gen/x.png: not an image file ({kind}, {len(data)} bytes;")
    assert "secret" not in msg and "hunter2" not in msg and "API_KEY" not in msg and "\\x" not in msg


def test_a_secret_file_as_reference_does_not_reach_metrics_json(tmp_path, session_cache):
    """A manifest ``reference`` pointing at a secret file: skipped and counted, its bytes nowhere in results."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    gen = tmp_path / "gen"
    structured_images(gen, 2, seed=7, size=24)
    refs = structured_images(tmp_path / "refs", 2, seed=8, size=24)
    man = tmp_path / "m.jsonl"
    man.write_text(
        json.dumps({"id": "0000", "caption": "a scene", "reference": str(secret)})
        + "\n"
        + json.dumps({"id": "0001", "caption": "b scene", "reference": str(refs[1])})
        + "\n"
    )
    res_dir = tmp_path / "res"
    cfg = _cfg(
        tmp_path,
        "model=folder",
        "model.name=m",
        f"model.samples_dir={gen}",
        "data=custom",
        "data.name=t",
        f"data.manifest={man}",
        "metrics.ids=[clip_i2i]",
        "on_bad_image=skip",
        f"paths.cache_dir={session_cache}",
        f"paths.results_dir={res_dir}",
        "bootstrap.replicates=0",
        "bootstrap.replicates_features=0",
    )
    run(cfg)
    text = "".join(p.read_text(errors="replace") for p in (res_dir / "t" / "m").rglob("*.json"))
    saved = json.loads((res_dir / "t" / "m" / "metrics.json").read_text())
    assert saved["counts"]["bad_images"] == 1
    assert "not an image file (text file, 28 bytes;" in saved["bad_images"][str(secret)]
    assert "hunter2" not in text and "API_KEY" not in text
