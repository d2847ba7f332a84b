"""Issue 11 item 5: only regular files are read, with a size limit, by a bounded reader.

A FIFO named ``x.png`` used to hang the run forever (``open`` blocks until a writer appears) and a link to
``/dev/zero`` read until memory ran out. Each case runs in a worker thread with a deadline, so a regression
fails here instead of hanging the suite.
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import RANDOM_BACKBONES
from tise_bench import imagefile
from tise_bench.backbones import build_backbones
from tise_bench.errors import ConfigError, DataError
from tise_bench.features.bank import FeatureBank
from tise_bench.runner import run

SKIP_HINT = "on_bad_image=skip"
DEADLINE_S = 10


def _png(size: int = 8, noise: bool = False) -> bytes:
    """A PNG; with ``noise`` it barely compresses (about 3 bytes per pixel)."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)) if noise else Image.new("RGB", (size, size))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _within_deadline(fn):
    """``fn()``'s return value or raised exception; fails the test if it has not finished by the deadline."""
    out: dict[str, object] = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(DEADLINE_S)
    assert not t.is_alive(), f"still reading after {DEADLINE_S} s (blocked on a special file)"
    return out


def _unblock_fifo(path: Path) -> None:
    """Open the FIFO for writing (non-blocking side) so a reader stuck in ``open`` is released at teardown."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


@pytest.fixture
def fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "x.png"
    os.mkfifo(path)
    yield path
    _unblock_fifo(path)


def test_fifo_named_like_an_image_is_refused_without_blocking(fifo):
    out = _within_deadline(lambda: imagefile.read_bytes(str(fifo)))
    err = out.get("error")
    assert isinstance(err, DataError), out
    msg = str(err)
    assert msg.startswith(f"cannot read image file {fifo}: not a regular file (a FIFO/named pipe)")
    assert "only regular files are read" in msg and SKIP_HINT in msg


def test_link_to_dev_zero_is_refused_before_reading(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    link = tmp_path / "z.png"
    os.symlink("/dev/zero", link)
    out = _within_deadline(lambda: imagefile.read_bytes(str(link)))
    err = out.get("error")
    assert isinstance(err, DataError), out
    msg = str(err)
    assert f"{link} (a symbolic link to /dev/zero): not a regular file (a character device)" in msg


def test_directory_is_refused_naming_it(tmp_path):
    d = tmp_path / "d.png"
    d.mkdir()
    with pytest.raises(DataError, match=r"d\.png: a directory; only regular files are read"):
        imagefile.read_bytes(str(d))


def test_file_over_max_file_bytes_is_refused_naming_the_switch(tmp_path):
    p = tmp_path / "big.png"
    data = _png(16, noise=True)
    p.write_bytes(data)
    with pytest.raises(DataError) as e:
        imagefile.read_bytes(str(p), max_bytes=100)
    msg = str(e.value)
    assert msg.startswith(f"{p}: {len(data)} bytes exceeds max_file_bytes=100")
    assert "max_file_bytes=<larger number>" in msg and "max_file_bytes=null" in msg and SKIP_HINT in msg
    assert imagefile.read_bytes(str(p), max_bytes=len(data)) == data  # the limit is inclusive
    assert imagefile.read_bytes(str(p), max_bytes=None) == data


def test_default_limit_is_one_gib():
    assert imagefile.DEFAULT_MAX_FILE_BYTES == 1073741824
    assert imagefile.read_bytes.__defaults__ == (1073741824,)


def test_read_is_bounded_even_when_the_size_lied(tmp_path, monkeypatch):
    """A file growing between ``fstat`` and the read (or a filesystem reporting size 0) is cut off at the limit."""
    p = tmp_path / "grows.png"
    p.write_bytes(b"\x89PNG" + b"\0" * 996)
    real_fstat = os.fstat

    class _Small:
        def __init__(self, st):
            self.st_mode, self.st_size = st.st_mode, 10

    monkeypatch.setattr(imagefile.os, "fstat", lambda fd: _Small(real_fstat(fd)))
    with pytest.raises(DataError, match=r"grows\.png: more bytes than its size said .* exceeds max_file_bytes=50"):
        imagefile.read_bytes(str(p), max_bytes=50)


@pytest.mark.parametrize("bad", ["lots", 0, -5, 1.5, True])
def test_invalid_max_file_bytes_is_a_config_error(bad, tmp_path):
    with pytest.raises(ConfigError, match=r"max_file_bytes=.* is not valid.*max_file_bytes=null"):
        imagefile.read_bytes(str(tmp_path / "x.png"), max_bytes=bad)
    with pytest.raises(ConfigError, match=r"max_file_bytes="):
        FeatureBank({}, tmp_path / "cache", max_file_bytes=bad)


def test_bank_skips_and_counts_fifo_and_oversized_file(fifo, tmp_path, session_cache):
    clip = build_backbones(RANDOM_BACKBONES, {"clip"}, session_cache)
    ok, big = tmp_path / "ok.png", tmp_path / "big.png"
    ok.write_bytes(_png(8))
    big.write_bytes(_png(32, noise=True))
    bank = FeatureBank(clip, tmp_path / "cache", max_file_bytes=len(_png(8)) + 10)
    out = _within_deadline(lambda: bank.images([str(ok), str(fifo), str(big)], {"clip": {"image"}}, on_bad="skip"))
    feats = out["value"]
    assert feats.paths == [str(ok)]
    assert sorted(feats.bad) == sorted([str(fifo), str(big)])
    assert "FIFO" in feats.bad[str(fifo)] and "max_file_bytes=" in feats.bad[str(big)]


def test_cli_switch_max_file_bytes_reaches_the_reader_and_skips_are_counted(tmp_path, session_cache):
    from hydra import compose, initialize_config_module

    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "a.png").write_bytes(_png(8))
    (gen / "b.png").write_bytes(_png(32, noise=True))  # ~3 KB
    os.mkfifo(gen / "c.png")
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps({"id": i, "caption": f"a scene {i}"}) + "\n" for i in "abc"))
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        cfg = compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                f"paths.cache_dir={session_cache}",
                f"paths.results_dir={tmp_path / 'res'}",
                "progress=false",
                "print_table=false",
                "model=folder",
                "model.name=m",
                f"model.samples_dir={gen}",
                "data=custom",
                "data.name=t",
                f"data.manifest={man}",
                "metrics.ids=[clip_score]",
                "on_bad_image=skip",
                "max_file_bytes=2000",
            ],
        )
    try:
        _within_deadline(lambda: run(cfg))
    finally:
        _unblock_fifo(gen / "c.png")
    saved = json.loads((tmp_path / "res" / "t" / "m" / "metrics.json").read_text())
    assert saved["counts"]["bad_images"] == 2 and saved["counts"]["images"] == 1
    reasons = saved["bad_images"]
    assert "max_file_bytes=2000" in reasons[str(gen / "b.png")] and "FIFO" in reasons[str(gen / "c.png")]
