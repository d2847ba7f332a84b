"""Rows of docs/input_matrix.md that had no test of their own (issue 15 item 3): 32-bit float (``F``) images, a
tRNS colour key, Adobe-inverted CMYK JPEGs, the reference-statistics checksum (a truncated or altered
``<cache>/stats`` file is warned about, recomputed and gives the same FID), an altered feature shard, a socket
named like an image, a missing samples folder, a 1×1 image through Inception, the 50-entry lists of
``metrics.json`` and a full disk while a weights file is written. Tiny images made here with Pillow."""

from __future__ import annotations

import errno
import io
import logging
import socket
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import tise_bench
from helpers import RANDOM_BACKBONES, structured_images
from tise_bench import imagefile as decode
from tise_bench.backbones import build_backbones
from tise_bench.data.samples import SampleReport, find_images
from tise_bench.errors import DataError
from tise_bench.features.bank import FeatureBank
from tise_bench.features.store import FeatureStore
from tise_bench.results import EvalResult


def _encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _px(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


# ------------------------------------------------------------------------------------ 32-bit float (F) images
def test_float_mode_f_is_rounded_and_clipped_to_0_255():
    a = np.array([[-3.2, 0.4, 0.6, 126.5, 127.5, 254.4, 254.6, 300.0, np.nan, np.inf, -np.inf]], dtype=np.float32)
    img = Image.fromarray(a)
    assert img.mode == "F"
    want = [0, 0, 1, 126, 128, 254, 255, 255, 0, 255, 0]  # np.round (half to even), NaN -> 0, ±inf clipped
    got = _px(decode.to_rgb(img))
    assert got[0, :, 0].tolist() == want and (got[..., 0] == got[..., 1]).all() and (got[..., 0] == got[..., 2]).all()
    # from a file: a float TIFF (the format that stores F) goes through the same conversion
    tiff = _encode(Image.fromarray(a[:, :8]), "TIFF")
    assert Image.open(io.BytesIO(tiff)).mode == "F"
    assert _px(decode.decode_image(tiff, "f.tif"))[0, :, 0].tolist() == want[:8]


# --------------------------------------------------------------------------------------------- tRNS colour key
def test_trns_colour_key_in_an_rgb_png_is_composited_on_white():
    img = Image.new("RGB", (3, 1), (10, 20, 30))
    img.putpixel((1, 0), (1, 2, 3))  # the transparent colour
    img.putpixel((2, 0), (1, 2, 4))  # one step away: opaque
    data = _encode(img, transparency=(1, 2, 3))
    assert Image.open(io.BytesIO(data)).info["transparency"] == (1, 2, 3)  # a tRNS chunk, no alpha channel
    assert _px(decode.decode_image(data, "k.png"))[0].tolist() == [[10, 20, 30], [255, 255, 255], [1, 2, 4]]
    # without the key the same pixels are plain RGB
    assert _px(decode.decode_image(_encode(img), "n.png"))[0].tolist() == [[10, 20, 30], [1, 2, 3], [1, 2, 4]]


def test_trns_colour_key_in_grayscale_pngs():
    g = Image.new("L", (2, 1), 40)
    g.putpixel((1, 0), 7)
    assert _px(decode.decode_image(_encode(g, transparency=7), "l.png"))[0].tolist() == [[40] * 3, [255] * 3]
    # a 16-bit grayscale key is ignored (documented): the image is scaled as 16-bit and stays opaque
    w = Image.fromarray(np.array([[5140, 1000]], dtype=np.uint16))
    data = _encode(w, transparency=1000)
    assert Image.open(io.BytesIO(data)).info["transparency"] == 1000
    assert _px(decode.decode_image(data, "w.png"))[0, :, 0].tolist() == [20, 4]  # round(v·255/65535)


# -------------------------------------------------------------------------------------- Adobe-inverted CMYK
def test_adobe_inverted_cmyk_jpeg_gives_rgb_pixels():
    cmyk = Image.new("CMYK", (4, 16), (0, 0, 0, 0))  # white
    for x, ink in enumerate([(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 0, 255)]):  # cyan, magenta, black
        cmyk.paste(ink, (x + 1, 0, x + 2, 16))
    data = _encode(cmyk, "JPEG", quality=100, subsampling=0)
    info = Image.open(io.BytesIO(data)).info
    # an APP14 "Adobe" segment, transform 0: the samples are stored inverted, as Photoshop writes them
    assert "adobe" in info and info["adobe_transform"] == 0
    got = _px(decode.decode_image(data, "adobe.jpg"))[8]
    want = [[255, 255, 255], [0, 255, 255], [255, 0, 255], [0, 0, 0]]  # read uninverted, white would be black
    assert np.abs(got - want).max() <= 3, got.tolist()


# ------------------------------------------------------------------------------ reference-statistics checksum
def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip_a_byte(p: Path) -> None:  # inside sigma's data: the zip's CRC no longer matches
    b = bytearray(p.read_bytes())
    b[b.index(b"sigma.npy") + 200] ^= 0xFF
    p.write_bytes(bytes(b))


def _stale_checksum(p: Path) -> None:  # a valid .npz whose arrays were changed after the checksum was taken
    with np.load(p, allow_pickle=False) as z:
        mu, sigma, check = z["mu"], z["sigma"], z["checksum"]
    with open(p, "wb") as f:
        np.savez(f, mu=mu + 1.0, sigma=sigma, checksum=check)


def _not_a_zip(p: Path) -> None:
    p.write_bytes(b"not an npz at all")


def _empty(p: Path) -> None:
    p.write_bytes(b"")


DAMAGE = {
    "truncated": _truncate,
    "flipped byte": _flip_a_byte,
    "stale checksum": _stale_checksum,
    "not a zip": _not_a_zip,
    "empty": _empty,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_statistics_file_is_warned_about_and_recomputed(tmp_path, caplog, damage):
    bank = FeatureBank({}, tmp_path / "cache")
    mu, sigma = np.arange(4.0), np.diag(np.arange(1.0, 5.0))
    calls = []

    def compute():
        calls.append(1)
        return mu, sigma

    bank.cached_stats("k", compute)
    path = tmp_path / "cache" / "stats" / "k.npz"
    got = bank.cached_stats("k", compute)
    assert len(calls) == 1 and np.array_equal(got[0], mu)  # a sound file is read, not recomputed
    DAMAGE[damage](path)
    with caplog.at_level(logging.WARNING, logger="tise_bench.features.bank"):
        got = bank.cached_stats("k", compute)
    assert len(calls) == 2, "the damaged file was used"
    assert np.array_equal(got[0], mu) and np.array_equal(got[1], sigma)
    assert f"reference statistics cache {path} is corrupt" in caplog.text and "recomputing" in caplog.text
    with zipfile.ZipFile(path) as z:  # rewritten whole
        assert z.testzip() is None
    caplog.clear()
    bank.cached_stats("k", compute)
    assert len(calls) == 2 and "corrupt" not in caplog.text


def test_a_damaged_statistics_file_gives_the_same_fid(tmp_path, fresh_cache, caplog):
    refs = [str(p) for p in structured_images(tmp_path / "ref", 4, seed=21, size=32)]
    gen = tmp_path / "gen"
    structured_images(gen, 4, seed=22, size=32)

    def fid() -> float:
        res = tise_bench.evaluate(
            str(gen),
            [f"caption {i}" for i in range(4)],
            ids=[f"{i:04d}" for i in range(4)],
            references=refs,
            metrics=["fid"],
            backbones=RANDOM_BACKBONES,
            cache_dir=fresh_cache,
        )
        return res.metrics["fid"].value

    first = fid()
    [stats] = (fresh_cache / "stats").glob("*.npz")
    _flip_a_byte(stats)  # altered in place (the unit test above covers truncation and the other damages)
    with caplog.at_level(logging.WARNING, logger="tise_bench.features.bank"):
        again = fid()
    assert "is corrupt" in caplog.text and "recomputing" in caplog.text
    assert again == pytest.approx(first, rel=1e-9)
    assert list((fresh_cache / "stats").glob("*.npz")) == [stats]
    with np.load(stats, allow_pickle=False) as z:  # rewritten whole
        assert z["sigma"].shape == (2048, 2048)


# ------------------------------------------------------------------------------------------ altered feature shard
def test_an_altered_feature_shard_is_warned_about_and_its_rows_recomputed(tmp_path, caplog):
    FeatureStore(tmp_path, "ns").put(["a", "b"], {"pool3": np.arange(8.0).reshape(2, 4)})
    [shard] = (tmp_path / "features" / "ns").glob("*.npz")
    b = bytearray(shard.read_bytes())
    b[b.index(b"pool3.npy") + 160] ^= 0x01  # one bit of one feature value, same size
    shard.write_bytes(bytes(b))
    with caplog.at_level(logging.WARNING, logger="tise_bench.features.store"):
        store = FeatureStore(tmp_path, "ns")
    assert store.n_corrupt == 1 and "a" not in store and "b" not in store  # nothing read from it: recomputed
    assert f"feature cache shard {shard} is corrupt (checksum mismatch)" in caplog.text


# ------------------------------------------------------------------------------ a socket named like an image
def test_socket_named_like_an_image_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative name: AF_UNIX paths are limited to ~100 bytes
    with socket.socket(socket.AF_UNIX) as s:
        s.bind("s.png")
        with pytest.raises(DataError, match=r"cannot read image file s\.png: not a regular file \(a socket\)"):
            decode.read_bytes("s.png")


# --------------------------------------------------------------------------------------- missing samples folder
def test_missing_samples_folder_names_it_and_both_keys(tmp_path):
    with pytest.raises(DataError) as e:
        find_images(tmp_path / "nowhere", ["a"])
    msg = str(e.value)
    assert f"generated-images folder not found: {tmp_path / 'nowhere'}" in msg
    assert "model.samples_dir" in msg and "paths.samples_root" in msg


# ----------------------------------------------------------------------------------------- 1×1 through Inception
def test_one_by_one_image_gets_finite_inception_features(session_cache, tmp_path):
    p = tmp_path / "px.png"
    p.write_bytes(_encode(Image.new("RGB", (1, 1), (200, 10, 90))))
    bbs = build_backbones(RANDOM_BACKBONES, {"inception"}, session_cache)
    feats = FeatureBank(bbs, tmp_path / "cache").images([str(p)], {"inception": {"pool3", "logits_unbiased"}})
    for key in ("inception.pool3", "inception.logits_unbiased"):
        assert feats.features[key].shape[0] == 1 and np.isfinite(feats.features[key]).all(), key


# ------------------------------------------------------------------ metrics.json lists the first 50 of each kind
def test_metrics_json_lists_the_first_50_mismatches_and_bad_images():
    n = 60
    report = SampleReport(
        missing=[f"m{i:02d}" for i in range(n)],
        extra=[f"e{i:02d}.png" for i in range(n)],
        duplicate=[f"d{i:02d}.png" for i in range(n)],
    )
    res = EvalResult.build(
        model="m",
        data="d",
        specs={},
        metrics={},
        samples_by_subset={},
        evalset=SimpleNamespace(name="d", subsets={}, sources=[], reference_stats=None, limit=None),
        per_sample={},
        backbones={},
        counts={**report.counts(), "bad_images": n},
        not_applicable={},
        report=report,
        bad={f"b{i:02d}.png": "corrupt" for i in range(n)},
        n_truncated=0,
        config={},
    )
    prov = res.provenance
    assert prov["counts"] == {"missing": n, "extra": n, "duplicate": n, "bad_images": n}  # counted in full
    assert prov["mismatch"]["missing"] == [f"m{i:02d}" for i in range(50)]
    assert prov["mismatch"]["extra"][-1] == "e49.png" and len(prov["mismatch"]["duplicate"]) == 50
    assert list(prov["bad_images"]) == [f"b{i:02d}.png" for i in range(50)]


# ----------------------------------------------------------------------------- a full disk while weights are written
def test_full_disk_while_writing_random_weights_is_one_message_and_leaves_nothing(tmp_path, monkeypatch):
    import torch

    from tise_bench.backbones import inception
    from tise_bench.errors import StorageError

    # a small network in place of Inception (building and initialising it takes seconds): the write is the point
    monkeypatch.setattr(inception, "_architecture", lambda features: torch.nn.Linear(4, 2))
    monkeypatch.setattr(inception, "_init_random", lambda net, gen: None)
    real = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(StorageError, match=r"cannot write to the cache folder .*weights: the disk is full \(ENOSPC"):
        inception.random_inception_weights(tmp_path / "cache")
    assert list((tmp_path / "cache" / "weights").iterdir()) == []  # no half file, no temporary
