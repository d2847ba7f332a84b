"""The input matrix (docs/input_matrix.md): one test per row, asserting pixels, message content or counts.

Benign oddities must decode to the right 8-bit RGB pixels; everything else stops with a message naming the
file/line/key and the switch that fixes it, or (``on_bad_image=skip`` / ``on_mismatch=skip``) is skipped
and counted in ``metrics.json`` and the CLI table. Tiny images, random backbones, CLIP-only runs.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from PIL import Image

from helpers import RANDOM_BACKBONES, structured_images
from tise_bench.backbones import build_backbones
from tise_bench.data.manifest import load_manifest
from tise_bench.data.samples import find_images
from tise_bench.errors import ConfigError, DataError
from tise_bench.evalset import load_reference_stats
from tise_bench import imagefile as decode
from tise_bench.features.bank import FeatureBank
from tise_bench.metrics.inception import fid_statistics, inception_score
from tise_bench.report import format_table
from tise_bench.runner import run

SKIP_HINT = "on_bad_image=skip"


# ----------------------------------------------------------------------------------------------- helpers
def _encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _raw_png(
    arr: np.ndarray, color_type: int, bit_depth: int = 16, header_size: tuple[int, int] | None = None
) -> bytes:
    """A minimal PNG writer (Pillow cannot write 16-bit RGB): big-endian samples, filter 0 per row.
    ``header_size`` writes another (w, h) into IHDR (with a valid CRC): a decompression bomb's header."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2" if bit_depth == 16 else "u1").tobytes() for y in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", *(header_size or (w, h)), bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _px(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def _valid_png(size: int = 16, colour: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    return _encode(Image.new("RGB", (size, size), colour))


@pytest.fixture(scope="module")
def clip_bbs(session_cache):
    return build_backbones(RANDOM_BACKBONES, {"clip"}, session_cache)


def _cfg(tmp_path: Path, cache: Path, *overrides: str):
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        return compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                f"paths.cache_dir={cache}",
                f"paths.results_dir={tmp_path / 'res'}",
                "progress=false",
                "print_table=false",
                *overrides,
            ],
        )


def _manifest(path: Path, ids: list[str], captions: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    captions = captions or {}
    path.write_text(
        "".join(
            json.dumps({"id": i, "caption": captions.get(i, f"a scene number {i}")}, ensure_ascii=False) + "\n"
            for i in ids
        ),
        encoding="utf-8",
    )
    return path


def _folder_run(tmp_path: Path, cache: Path, samples: Path, manifest: Path, *extra: str):
    # Hydra's override grammar needs quotes around values with spaces or non-ASCII characters.
    return run(
        _cfg(
            tmp_path,
            cache,
            "model=folder",
            "model.name=m",
            f"model.samples_dir='{samples}'",
            "data=custom",
            "data.name=t",
            f"data.manifest='{manifest}'",
            "metrics.ids=[clip_score]",
            *extra,
        )
    )


# --------------------------------------------------------------------- unreadable files: fail with a message
def _corrupt_png() -> bytes:
    data = bytearray(_encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8))))
    i = data.index(b"IDAT") + 8
    data[i : i + 40] = b"\xff" * 40  # garbage in the compressed stream
    return bytes(data)


BAD_FILES = {
    "corrupt.png": (_corrupt_png, "corrupt or truncated image"),
    "truncated.jpg": (
        lambda: _encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:300],
        "corrupt or truncated image",
    ),
    "zero.png": (lambda: b"", "empty (0-byte) image file"),
    "text.png": (lambda: b"hello, I am not an image\n", "not an image file (text file, 25 bytes;"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unreadable_file_stops_naming_file_and_skip_switch(name):
    make, expected = BAD_FILES[name]
    with pytest.raises(DataError) as e:
        decode.decode_image(make(), f"/gen/{name}")
    msg = str(e.value)
    assert msg.startswith(f"/gen/{name}: ") and expected in msg and SKIP_HINT in msg


def test_decode_refuses_formats_outside_the_allow_list():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"  # Pillow would hand this to Ghostscript
    with pytest.raises(DataError, match=r"x\.png: not an image file .*readable formats: PNG, JPEG"):
        decode.decode_image(eps, "x.png")


def test_truncated_file_fails_even_if_a_library_enabled_load_truncated_images():
    from PIL import ImageFile

    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(DataError, match="truncated"):
            decode.decode_image(BAD_FILES["truncated.jpg"][0](), "t.jpg")
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def test_bad_files_skipped_and_counted_in_metrics_json_and_table(tmp_path, session_cache):
    """on_bad_image=skip: every unreadable kind (and a bomb, a dangling and a looping link) is counted."""
    gen = tmp_path / "gen"
    ids = [f"{i:02d}" for i in range(9)]
    structured_images(gen, 2, seed=1, size=24)  # 0000.png, 0001.png -> renamed to the first two ids
    (gen / "0000.png").rename(gen / "00.png")
    (gen / "0001.png").rename(gen / "01.png")
    for rid, name in zip(ids[2:6], sorted(BAD_FILES)):
        (gen / f"{rid}{Path(name).suffix}").write_bytes(BAD_FILES[name][0]())
    (gen / "06.png").write_bytes(_valid_png(size=40))  # 1600 px > max_pixels=1000
    os.symlink(tmp_path / "nowhere.png", gen / "07.png")  # dangling
    os.symlink("08.png", gen / "08.png")  # self-referencing
    man = _manifest(tmp_path / "m.jsonl", ids)
    # the default policy stops at the first unreadable file it meets (reads precede decodes within a batch)
    with pytest.raises(DataError, match=r"(?s)gen/0[2-8]\.(png|jpg)[: ].*on_bad_image=skip"):
        _folder_run(tmp_path, session_cache, gen, man, "max_pixels=1000")
    [res] = _folder_run(tmp_path, session_cache, gen, man, "max_pixels=1000", "on_bad_image=skip")
    saved = json.loads((tmp_path / "res" / "t" / "m" / "metrics.json").read_text())
    assert saved["counts"]["bad_images"] == 7 and saved["counts"]["images"] == 2
    assert saved["metrics"]["clip_score"]["n"] == 2
    reasons = saved["bad_images"]
    bad_names = [f"{rid}{Path(name).suffix}" for rid, name in zip(ids[2:6], sorted(BAD_FILES))]
    assert sorted(Path(p).name for p in reasons) == sorted(bad_names + ["06.png", "07.png", "08.png"])
    assert "max_pixels=1000" in reasons[str(gen / "06.png")]
    assert "No such file" in reasons[str(gen / "07.png")] and "symbolic link to" in reasons[str(gen / "07.png")]
    assert "symbolic link loop" in reasons[str(gen / "08.png")]
    table = format_table([res]).splitlines()
    head, row = table[1].split(), table[3].split()
    assert row[head.index("skipped")] == "7" and row[head.index("images")] == "2"


# ----------------------------------------------------------------------- benign oddities: the right pixels
def test_cmyk_jpeg_gives_rgb_pixels():
    rgb = Image.new("RGB", (16, 16), (200, 30, 90))
    img = decode.decode_image(_encode(rgb.convert("CMYK"), "JPEG", quality=100), "c.jpg")
    assert np.abs(_px(img) - [200, 30, 90]).max() <= 2


def test_16bit_grayscale_png_is_scaled_not_clipped():
    a = np.array([[0, 257, 1000], [32768, 60000, 65535]], dtype=np.uint16)
    data = _encode(Image.fromarray(a))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    got = _px(decode.decode_image(data, "g16.png"))
    expect = np.round(a / 257.0).astype(int)  # 0, 1, 4, 128, 233, 255 — Pillow's convert("RGB") gives 0,255,255,...
    assert np.array_equal(got[..., 0], expect) and np.array_equal(got[..., 0], got[..., 2])
    assert np.array_equal(_px(decode.decode_image(_raw_png(a, color_type=0), "raw16.png"))[..., 1], expect)


def test_32bit_integer_grayscale_mode_i_is_scaled_as_16bit():
    img = Image.fromarray(np.array([[-5, 0, 32768, 65535, 70000]], dtype=np.int32))
    assert img.mode == "I"
    assert _px(decode.to_rgb(img))[0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_16bit_rgb_png_gives_8bit_rgb():
    a = np.array([[[65535, 0, 32896], [257, 51400, 12850]]], dtype=np.uint16)
    got = _px(decode.decode_image(_raw_png(a, color_type=2), "rgb16.png"))
    assert np.abs(got - np.round(a / 257.0)).max() <= 1


def test_rgba_is_composited_on_white():
    a = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [255, 0, 0, 128], [0, 0, 0, 128]]], dtype=np.uint8)
    got = _px(decode.decode_image(_encode(Image.fromarray(a, "RGBA")), "a.png"))[0]
    assert got[0].tolist() == [255, 0, 0]  # opaque: unchanged
    assert got[1].tolist() == [255, 255, 255]  # transparent: the white background
    assert np.abs(got[2] - [255, 127, 127]).max() <= 1 and np.abs(got[3] - [127, 127, 127]).max() <= 1


def test_palette_with_transparency_is_composited_on_white():
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255])
    p.putpixel((1, 0), 1)
    got = _px(decode.decode_image(_encode(p, transparency=1), "p.png"))[0]
    assert got.tolist() == [[255, 0, 0], [255, 255, 255]]
    q = Image.new("P", (1, 1))
    q.putpalette([12, 34, 56])
    assert _px(decode.decode_image(_encode(q), "q.png"))[0, 0].tolist() == [12, 34, 56]  # no transparency: plain


@pytest.mark.parametrize(
    "mode,value,expect", [("L", 77, [77, 77, 77]), ("LA", (77, 255), [77, 77, 77]), ("LA", (77, 0), [255, 255, 255])]
)
def test_grayscale_l_and_la(mode, value, expect):
    got = decode.decode_image(_encode(Image.new(mode, (3, 2), value)), "g.png")
    assert got.size == (3, 2) and (_px(got) == expect).all()


def test_one_bit_image():
    img = Image.new("1", (3, 1))
    img.putpixel((1, 0), 1)
    for fmt in ("PNG", "BMP"):
        got = decode.decode_image(_encode(img, fmt), f"b.{fmt.lower()}")
        assert _px(got)[0].tolist() == [[0, 0, 0], [255, 255, 255], [0, 0, 0]]


def test_one_by_one_image_gets_finite_features(clip_bbs, tmp_path):
    p = tmp_path / "px.png"
    p.write_bytes(_encode(Image.new("RGB", (1, 1), (1, 2, 3))))
    assert _px(decode.decode_image(p.read_bytes(), str(p))).tolist() == [[[1, 2, 3]]]
    feats = FeatureBank(clip_bbs, tmp_path / "cache").images([str(p)], {"clip": {"image"}})
    emb = feats.features["clip.image"]
    assert emb.shape[0] == 1 and np.isfinite(emb).all()


def test_exif_orientation_6_is_rotated():
    im = Image.new("RGB", (4, 2), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 2, 2))  # left half red, right half blue, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    got = decode.decode_image(_encode(im, "JPEG", exif=exif, quality=100), "o.jpg")
    assert got.size == (2, 4)
    px = _px(got)
    assert np.abs(px[0, 0] - [255, 0, 0]).max() < 8 and np.abs(px[3, 0] - [0, 0, 255]).max() < 8  # left -> top


def test_malformed_exif_leaves_the_image_as_stored(monkeypatch):
    def broken(img):
        raise SyntaxError("not a TIFF file")

    monkeypatch.setattr(decode.ImageOps, "exif_transpose", broken)
    assert decode.decode_image(_valid_png(4), "e.png").size == (4, 4)


# ---------------------------------------------------------------------------------- decompression bombs
def test_decompression_bomb_stops_naming_file_and_switch():
    data = _valid_png(size=40)
    with pytest.raises(DataError) as e:
        decode.decode_image(data, "/gen/big.png", max_pixels=1000)
    msg = str(e.value)
    assert msg.startswith("/gen/big.png: 40×40 = 1600 pixels exceeds max_pixels=1000")
    assert "max_pixels=<larger number>" in msg and "max_pixels=null" in msg and SKIP_HINT in msg
    assert decode.decode_image(data, "big.png", max_pixels=1600).size == (40, 40)
    assert decode.decode_image(data, "big.png", max_pixels=None).size == (40, 40)


def test_bomb_is_refused_from_the_header_before_pixels_are_decoded():
    t = time.monotonic()  # a 100k × 100k PNG header: decoding it would need 30 GB
    with pytest.raises(DataError, match=r"100000×100000 = 10000000000 pixels exceeds max_pixels=178956970"):
        decode.decode_image(_raw_png(np.zeros((1, 1), np.uint8), 0, 8, header_size=(100_000, 100_000)), "bomb.png")
    assert time.monotonic() - t < 5


def test_decompression_bomb_skipped_and_counted_by_the_bank(clip_bbs, tmp_path):
    ok, big = tmp_path / "ok.png", tmp_path / "big.png"
    ok.write_bytes(_valid_png(size=8))
    big.write_bytes(_valid_png(size=40, colour=(1, 1, 1)))
    bank = FeatureBank(clip_bbs, tmp_path / "cache", max_pixels=1000)
    feats = bank.images([str(ok), str(big)], {"clip": {"image"}}, on_bad="skip")
    assert feats.paths == [str(ok)] and list(feats.bad) == [str(big)] and "max_pixels=1000" in feats.bad[str(big)]


@pytest.mark.parametrize("bad", ["lots", 0, -5, 1.5, True])
def test_invalid_max_pixels_is_a_config_error(bad):
    with pytest.raises(ConfigError, match=r"max_pixels=.* is not valid.*max_pixels=null"):
        decode.decode_image(_valid_png(4), "x.png", max_pixels=bad)


# ------------------------------------------------------------------------------- paths: unicode, spaces
def test_unicode_and_space_paths_for_images_and_manifest(tmp_path, session_cache):
    root = tmp_path / "dossier généré ü 日本"
    gen = root / "images à voir"
    ids = ["café 1", "ß-2", "日本"]
    gen.mkdir(parents=True)
    for i, rid in enumerate(ids):
        (gen / f"{rid}.png").write_bytes(_valid_png(size=16, colour=(40 * i, 90, 200)))
    man = _manifest(root / "mé nifest.jsonl", ids)
    [res] = _folder_run(tmp_path, session_cache, gen, man)
    assert res.metrics["clip_score"].n == 3 and res.provenance["counts"]["missing"] == 0
    assert set(res.samples["id"]) == set(ids)


def test_unquoted_unicode_path_gets_hydras_quoting_message():
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        with pytest.raises(Exception, match="override_grammar"):
            compose("config", overrides=["data=custom", "data.manifest=/tmp/日本/m.jsonl"])


def test_nfd_file_names_match_nfc_ids(tmp_path):
    rid = unicodedata.normalize("NFC", "café")
    (tmp_path / f"{unicodedata.normalize('NFD', rid)}.png").write_bytes(_valid_png(4))
    by_id, rep = find_images(tmp_path, [rid])
    assert list(by_id) == [rid] and rep.counts() == {"missing": 0, "extra": 0, "duplicate": 0}


# --------------------------------------------------------------------------------------------- symlinks
def test_symlink_to_valid_image_works(clip_bbs, tmp_path):
    real = tmp_path / "elsewhere" / "real.png"
    real.parent.mkdir()
    real.write_bytes(_valid_png(size=16))
    gen = tmp_path / "gen"
    gen.mkdir()
    os.symlink(real, gen / "a.png")
    by_id, rep = find_images(gen, ["a"])
    assert by_id == {"a": [(0, str(gen / "a.png"))]} and not any(rep.counts().values())
    feats = FeatureBank(clip_bbs, tmp_path / "cache").images([str(gen / "a.png"), str(real)], {"clip": {"image"}})
    assert feats.shas[0] == feats.shas[1] and not feats.bad


def test_dangling_symlink_is_named_as_unreadable(tmp_path):
    os.symlink(tmp_path / "gone.png", tmp_path / "a.png")
    by_id, _ = find_images(tmp_path, ["a"])  # listed by name; the reader reports it
    with pytest.raises(DataError) as e:
        decode.read_bytes(by_id["a"][0][1])
    msg = str(e.value)
    assert f"cannot read image file {tmp_path / 'a.png'} (a symbolic link to {tmp_path / 'gone.png'})" in msg
    assert "No such file or directory" in msg and SKIP_HINT in msg


def test_self_referencing_file_symlink_is_reported_not_a_crash(tmp_path):
    os.symlink("a.png", tmp_path / "a.png")
    by_id, rep = find_images(tmp_path, ["a"])
    assert list(by_id) == ["a"]
    with pytest.raises(DataError, match=r"a\.png \(a symbolic link to a\.png\): symbolic link loop"):
        decode.read_bytes(by_id["a"][0][1])


def test_directory_symlink_loop_in_samples_folder_does_not_hang(tmp_path):
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "a.png").write_bytes(_valid_png(4))
    os.symlink(gen, gen / "loop")  # gen/loop/loop/loop/...
    os.symlink(gen, gen / "b.png")  # a directory (loop) named like an image: an extra, not an image
    t = time.monotonic()
    by_id, rep = find_images(gen, ["a"], policy="skip")
    assert time.monotonic() - t < 2
    assert list(by_id) == ["a"] and rep.extra == [str(gen / "b.png")] and rep.counts()["extra"] == 1


# ------------------------------------------------------------------------------ missing, extra, duplicate
def test_missing_extra_duplicate_exact_counts_and_message(tmp_path):
    for name in ("1.png", "1.jpg", "2_0.png", "2_1.png", "2_01.png", "zzz.png", "notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()  # a plain sub-folder is ignored
    ids = ["1", "2", "3", "4"]
    with pytest.raises(DataError) as e:
        find_images(tmp_path, ids)
    msg = str(e.value)
    assert f"images in {tmp_path} do not match the eval set's 4 prompt ids: " in msg
    assert "2 missing (3, 4); 2 extra (notes.txt, zzz.png); 2 duplicate (1.png, 2_1.png)." in msg
    assert "on_mismatch=skip" in msg
    by_id, rep = find_images(tmp_path, ids, policy="skip")
    assert rep.counts() == {"missing": 2, "extra": 2, "duplicate": 2}
    assert by_id == {
        "1": [(0, str(tmp_path / "1.jpg"))],
        "2": [(0, str(tmp_path / "2_0.png")), (1, str(tmp_path / "2_01.png"))],
    }


def test_invalid_on_mismatch_choice_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"on_mismatch='skp' is not valid; choose one of: fail, skip"):
        find_images(tmp_path, ["a"], policy="skp")


def test_unlistable_samples_folder_names_it(tmp_path, monkeypatch):
    """A folder the user may not list. chmod 0 does not stop root (CI runs as root), so os.listdir, which the
    real code calls, raises the PermissionError the kernel gives (EACCES) for this folder only."""
    import errno

    d = tmp_path / "locked"
    d.mkdir()
    real_listdir = os.listdir

    def listdir(path="."):
        if os.fspath(path) == os.fspath(d):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(DataError) as e:
        find_images(d, ["a"])
    msg = str(e.value)
    assert msg.startswith(f"cannot list the generated-images folder {d}: Permission denied\n"), msg
    assert "fix: check its permissions, or point model.samples_dir at a readable folder" in msg
    assert "[Errno" not in msg  # the OS error's text, not its repr


# ------------------------------------------------------------------------------------------- captions
@pytest.mark.parametrize("caption", ["", "   \t "])
def test_empty_or_whitespace_caption_names_file_and_line(tmp_path, caption):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"id": "a", "caption": "ok"}) + "\n\n" + json.dumps({"id": "b", "caption": caption}) + "\n")
    with pytest.raises(DataError, match=rf"{p}:3: record 'b' has an empty or missing 'caption'"):
        load_manifest(p)


def test_over_long_caption_is_truncated_and_counted(tmp_path, session_cache):
    gen = tmp_path / "gen"
    gen.mkdir()
    for i, rid in enumerate(("a", "b")):
        (gen / f"{rid}.png").write_bytes(_valid_png(size=16, colour=(100 * i, 50, 50)))
    long = " ".join(f"word{i}" for i in range(400))  # ~1000 tokens, CLIP's context is 77
    man = _manifest(tmp_path / "m.jsonl", ["a", "b"], {"a": long})
    [res] = _folder_run(tmp_path, session_cache, gen, man)
    saved = json.loads((tmp_path / "res" / "t" / "m" / "metrics.json").read_text())
    assert saved["truncated_captions"] == 1 and saved["metrics"]["clip_score"]["n_truncated"] == 1
    assert np.isfinite(res.metrics["clip_score"].value) and res.metrics["clip_score"].n == 2


# ----------------------------------------------------------------------------------- malformed manifests
MALFORMED = {
    "bad JSON": ('{"id": "x", "caption": "c"', "malformed JSON (Expecting ',' delimiter at column 27)"),
    "non-object": ('["x", "c"]', "expected a JSON object, got list"),
    "missing id": ('{"caption": "c"}', "record has no 'id'"),
    "list id": ('{"id": ["x"], "caption": "c"}', "'id' must be a string (or an integer), got list"),
    "duplicate id": ('{"id": "a", "caption": "again"}', "duplicate id 'a' (first on line 1); ids must be unique"),
    "caption not a string": ('{"id": "x", "caption": 5}', "record 'x': 'caption' must be a string, got int 5"),
    "counts wrong type": (
        '{"id": "x", "caption": "c", "counts": {"dog": "two"}}',
        "record 'x': 'counts' must be an object of non-negative integers",
    ),
    "counts bool": ('{"id": "x", "caption": "c", "counts": {"dog": true}}', "'counts' must be an object"),
    "counts list": ('{"id": "x", "caption": "c", "counts": [1]}', "'counts' must be an object"),
    "labels a string": (
        '{"id": "x", "caption": "c", "labels": "dog"}',
        "'labels' must be a list of strings, got 'dog'",
    ),
    "mismatched a string": ('{"id": "x", "caption": "c", "mismatched": "y"}', "'mismatched' must be a list of strings"),
    "reference not a string": ('{"id": "x", "caption": "c", "reference": 3}', "'reference' must be a non-empty string"),
    "schema_version text": ('{"schema_version": "one"}', "'schema_version' must be an integer, got 'one'"),
    "schema too new": ('{"schema_version": 99}', "schema_version 99 is newer than this tise_bench supports"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_manifest_line_names_file_and_line(tmp_path, case):
    line, expected = MALFORMED[case]
    p = tmp_path / "man ü.jsonl"
    p.write_text(json.dumps({"id": "a", "caption": "first"}) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_manifest(p)
    assert str(e.value).startswith(f"{p}:2: ") and expected in str(e.value), str(e.value)


def test_manifest_invalid_utf8_names_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_bytes(b'{"id": "a", "caption": "ok"}\n{"id": "b", "caption": "caf\xe9"}\n')
    with pytest.raises(DataError, match=rf"{p}:2: not valid UTF-8 \(byte b'\\xe9' at column 28\)"):
        load_manifest(p)


def test_manifest_with_byte_order_mark_and_crlf_loads(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"id": "a", "caption": "one"}\r\n{"id": 2, "caption": " two "}\r\n')
    recs = load_manifest(p)
    assert [(r.id, r.caption) for r in recs] == [("a", "one"), ("2", "two")]


# ------------------------------------------------------------------------------ config: Hydra and ours
def _cli(args: list[str], tmp_path: Path, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TISE_OFFLINE="1", TISE_CACHE_DIR=str(cache), HOME=str(tmp_path))
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "tise_bench", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def test_unknown_config_key_is_refused_not_appended(tmp_path, session_cache):
    p = _cli(["foo=1"], tmp_path, session_cache)  # Hydra alone suggested '+foo=1' (issue 14 item 7)
    assert p.returncode == 2 and "tise_bench: error: foo is not a setting of the config" in p.stderr
    assert "+foo=1" not in p.stderr and "Traceback" not in p.stderr


def test_unknown_config_choice_lists_options(tmp_path, session_cache):
    p = _cli(["model=dfgn"], tmp_path, session_cache)
    assert p.returncode == 2 and "the config group model has no option 'dfgn'" in p.stderr
    assert "Did you mean model=dfgan? Options: attngan" in p.stderr and "Traceback" not in p.stderr


def test_our_input_error_through_the_cli_is_a_message_and_exit_2(tmp_path, session_cache):
    man = tmp_path / "m.jsonl"
    man.write_text('{"id": "a", "caption": "x"}\n{"id": "a", "caption": "y"}\n')
    p = _cli(
        [
            "backbones=random",
            "model=folder",
            "model.name=m",
            f"model.samples_dir={tmp_path}",
            "data=custom",
            "data.name=t",
            f"data.manifest={man}",
            "metrics.ids=[clip_score]",
        ],
        tmp_path,
        session_cache,
    )
    assert p.returncode == 2, p.stderr[-2000:]
    assert f"tise_bench: error: {man}:2: duplicate id 'a'" in p.stderr and "Traceback" not in p.stderr


# ------------------------------------------------------------------------------------- reference stats
def test_reference_stats_of_wrong_shape_names_file_and_expected_shape(tmp_path, session_cache):
    npz = tmp_path / "stats.npz"
    np.savez(npz, mu=np.zeros(64), sigma=np.eye(64))
    with pytest.raises(DataError) as e:
        load_reference_stats(str(npz), 2048)
    assert f"data.reference_stats={npz}" in str(
        e.value
    ) and "mu (64,) / sigma (64, 64), expected (2048,) / (2048, 2048)" in str(e.value)
    gen = tmp_path / "gen"
    structured_images(gen, 2, seed=3, size=24)
    man = _manifest(tmp_path / "m.jsonl", ["0000", "0001"])
    with pytest.raises(DataError, match=r"expected \(2048,\) / \(2048, 2048\) for Inception pool3"):
        run(
            _cfg(
                tmp_path,
                session_cache,
                "model=folder",
                "model.name=m",
                f"model.samples_dir={gen}",
                "data=custom",
                "data.name=t",
                f"data.manifest={man}",
                "metrics.ids=[fid]",
                f"data.reference_stats={npz}",
            )
        )


def test_reference_stats_variants(tmp_path):
    ok = tmp_path / "ok.npz"
    np.savez(ok, mu=np.ones((1, 8)), sigma=np.eye(8))  # (1, D) mu, as some tools save it
    mu, sigma = load_reference_stats(str(ok), 8)
    assert mu.shape == (8,) and sigma.shape == (8, 8)
    nan = tmp_path / "nan.npz"
    np.savez(nan, mu=np.full(8, np.nan), sigma=np.eye(8))
    with pytest.raises(DataError, match=r"nan\.npz: reference statistics contain 8 NaN/inf values; recompute"):
        load_reference_stats(str(nan), 8)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"junk\.npz is not a readable \.npz"):
        load_reference_stats(str(junk), 8)
    keys = tmp_path / "keys.npz"
    np.savez(keys, mean=np.zeros(8))
    with pytest.raises(DataError, match=r"expected arrays 'mu' and 'sigma' \(pytorch-fid format\), found \['mean'\]"):
        load_reference_stats(str(keys), 8)


def test_missing_reference_stats_file_fails_before_any_image_is_read(tmp_path):
    from tise_bench.evalset import load_eval_set

    man = _manifest(tmp_path / "m.jsonl", ["a"])
    with pytest.raises(DataError, match=r"data.reference_stats=.*nope\.npz does not exist"):
        load_eval_set({"name": "t", "manifest": str(man), "reference_stats": str(tmp_path / "nope.npz")}, tmp_path)


# -------------------------------------------------------------------------------------- NaN/inf features
def test_nan_features_are_refused_with_count_and_fix():
    x = np.random.default_rng(0).normal(size=(6, 4))
    x[[1, 4], 2] = np.nan
    x[5, 0] = np.inf
    for fn in (fid_statistics, inception_score):
        with pytest.raises(ValueError) as e:
            fn(x)
        msg = str(e.value)
        assert "3 of 6 rows contain NaN or inf (first bad row 1)" in msg and "re-extract features" in msg
