"""FeatureBank's parallel input (issue 13): any number of worker threads gives the serial path's cache keys,
features, skips and errors; Pillow's globals are left as found; a failing consumer stops the producer."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from helpers import RANDOM_BACKBONES, cached_keys, structured_images
from tise_bench import imagefile as decode
from tise_bench.backbones import build_backbones
from tise_bench.errors import ConfigError, DataError
from tise_bench.features.bank import CropRequest, FeatureBank
from tise_bench.features.crops import CropSpec
from tise_bench.features.store import FeatureStore

BCFG = {**RANDOM_BACKBONES, "detector": {"arch": "yolov8n.yaml", "imgsz": 64, "conf": 0.001, "max_crops": 3}}
NEEDS = {"clip": {"image"}, "inception": {"pool3", "logits_unbiased"}, "detector": {"detections", "size"}}


@pytest.fixture(scope="module")
def backbones(session_cache):  # the session's random weights (the detector's are added there once)
    return build_backbones(BCFG, {"clip", "inception", "detector"}, session_cache)


def _eval_set(folder: Path) -> list[str]:
    """11 images in 3 batches of 4: two sizes (two shape groups), the same bytes under two names (one of them in a
    later batch), a corrupt file and a text file named .png."""
    paths = [str(p) for p in structured_images(folder, 8, seed=13, size=48)]
    paths += [str(p) for p in structured_images(folder, 2, seed=14, size=40, prefix="small")]
    shutil.copy(paths[1], folder / "dup.png")
    (folder / "corrupt.png").write_bytes(Path(paths[0]).read_bytes()[:60])  # header, then cut
    (folder / "text.png").write_text("not an image")
    return paths[:3] + [str(folder / "corrupt.png")] + paths[3:] + [str(folder / "dup.png"), str(folder / "text.png")]


def _run(backbones, paths, cache: Path, workers: int, **kw):
    bank = FeatureBank(backbones, cache, batch_size=4, num_workers=workers, **kw)
    crops = CropRequest(spec=CropSpec(threshold=0.0, max_per_image=3), backbones={"inception": ""})
    return bank.images(paths, NEEDS, on_bad="skip", crops=crops)


def test_any_worker_count_gives_the_serial_keys_features_and_skips(backbones, tmp_path) -> None:
    paths = _eval_set(tmp_path / "imgs")
    decode.DECODE_COUNT = 0
    ref = _run(backbones, paths, tmp_path / "c0", 0)
    decodes = decode.DECODE_COUNT
    assert len(ref.bad) == 2 and len(ref.paths) == len(paths) - 2 and len(ref.features["crops.owner"]) > 0
    assert decodes == len(set(ref.shas)) + 2  # each content once (the duplicate's bytes too), the two bad files
    for workers, prefetch in ((1, 1), (2, 2), (3, 1)):
        decode.DECODE_COUNT = 0
        got = _run(backbones, paths, tmp_path / f"c{workers}", workers, prefetch=prefetch)
        assert decode.DECODE_COUNT == decodes, workers
        assert (got.paths, got.shas, got.bad) == (ref.paths, ref.shas, ref.bad), workers
        assert sorted(got.features) == sorted(ref.features)
        for k, v in ref.features.items():
            np.testing.assert_array_equal(got.features[k], v, err_msg=f"{k}, num_workers={workers}")
        assert cached_keys(tmp_path / f"c{workers}") == cached_keys(tmp_path / "c0")


def test_one_shape_inputs_are_written_into_the_batch_the_forward_gets(backbones, tmp_path, monkeypatch) -> None:
    """The detector's letterbox has one shape for every image: the workers write it straight into its row of a
        batch allocated before preprocessing, and the forward gets that very batch (nothing copied), with the serial
        path's values; a square and a non-square image size (a strided region of the row). (The batch is still
    referenced by its chunk while the forward runs, so a copy could not sit at its address.)"""
    folder = tmp_path / "imgs"
    paths = [str(p) for p in structured_images(folder, 4, seed=21, size=48)]
    for i in range(3):
        p = folder / f"wide{i}.png"
        Image.open(paths[i]).resize((48, 30)).save(p)
        paths.append(str(p))
    allocated: list[int] = []
    real_rows = FeatureBank._batch_rows

    def spy_rows(self, *args):
        rows, batches = real_rows(self, *args)
        allocated.extend(buf.data_ptr() for b, (_, buf) in batches.items() if b == "detector")
        return rows, batches

    forwarded: list[int] = []
    det = backbones["detector"]
    real_forward = det.forward

    def spy_forward(batch, meta=None):
        forwarded.append(batch.data_ptr())
        return real_forward(batch, meta)

    monkeypatch.setattr(FeatureBank, "_batch_rows", spy_rows)
    monkeypatch.setattr(det, "forward", spy_forward)
    needs = {"detector": {"detections", "size"}}
    got = FeatureBank(backbones, tmp_path / "c2", batch_size=4, num_workers=2).images(paths, needs)
    assert len(allocated) == 2 and forwarded == allocated  # 7 images: batches of 4 and 3, each forwarded as is
    forwarded.clear()
    ref = FeatureBank(backbones, tmp_path / "c0", batch_size=4, num_workers=0).images(paths, needs)
    assert len(forwarded) == 2  # serial: stacked from the per-image inputs, as before
    for k, v in ref.features.items():
        np.testing.assert_array_equal(got.features[k], v, err_msg=k)


def test_input_batches_are_reused_only_after_their_forwards(backbones, tmp_path, monkeypatch) -> None:
    """A chunk's input batches are taken back for a later chunk (no fresh memory per chunk), but only once its
    forwards have returned: a slow forward keeps its batch while the workers prepare the chunks behind it, and the
    values are the serial path's (a batch given back early would be overwritten under the forward)."""
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 14, seed=23, size=48)]
    needs = {"detector": {"detections", "size"}}
    ref = FeatureBank(backbones, tmp_path / "c0", batch_size=2).images(paths, needs)
    det = backbones["detector"]
    real_forward = det.forward
    seen: list[tuple[int, bytes]] = []

    def slow_forward(batch, meta=None):
        before = batch.numpy().tobytes()
        time.sleep(0.05)  # the producer fills the chunks behind this one meanwhile
        seen.append((batch.data_ptr(), before))
        assert batch.numpy().tobytes() == before, "an input batch changed while its forward ran"
        return real_forward(batch, meta)

    monkeypatch.setattr(det, "forward", slow_forward)
    got = FeatureBank(backbones, tmp_path / "c2", batch_size=2, num_workers=2, prefetch=2).images(paths, needs)
    assert len(seen) == 7 and len({ptr for ptr, _ in seen}) < 7  # 7 chunks, fewer batches
    for k, v in ref.features.items():
        np.testing.assert_array_equal(got.features[k], v, err_msg=k)


def test_a_forward_reusing_its_output_buffer_does_not_change_the_stored_rows(backbones, tmp_path, monkeypatch) -> None:
    """The rows of a batch are stored from the forward's output, written to disk later by the writer thread: a
    forward that hands out the same buffer for every batch (refilled in place) must not change earlier batches'
    rows, with or without workers."""
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 9, seed=22, size=48)]
    needs = {"detector": {"detections", "size"}}
    ref = FeatureBank(backbones, tmp_path / "ref", batch_size=4).images(paths, needs)
    det = backbones["detector"]
    real_forward = det.forward
    reused: dict[str, np.ndarray] = {}

    def reusing_forward(batch, meta=None):
        out = real_forward(batch, meta)
        for k, v in out.items():
            if k not in reused or reused[k].shape != v.shape:
                reused[k] = np.empty_like(v)
            reused[k][...] = v
        return dict(reused)

    monkeypatch.setattr(det, "forward", reusing_forward)
    real_write = FeatureStore._write

    def slow_write(self, *args):  # the writer thread lags behind the forwards (as on a busy disk)
        time.sleep(0.3)
        return real_write(self, *args)

    monkeypatch.setattr(FeatureStore, "_write", slow_write)
    for workers in (0, 2):
        got = FeatureBank(backbones, tmp_path / f"c{workers}", batch_size=4, num_workers=workers).images(paths, needs)
        again = FeatureBank(backbones, tmp_path / f"c{workers}", batch_size=4).images(paths, needs)  # from the files
        for k, v in ref.features.items():
            np.testing.assert_array_equal(got.features[k], v, err_msg=f"{k}, num_workers={workers}")
            np.testing.assert_array_equal(again.features[k], v, err_msg=f"{k} read back, num_workers={workers}")


def test_the_first_bad_image_is_raised_whatever_the_workers(backbones, tmp_path) -> None:
    paths = _eval_set(tmp_path / "imgs")
    messages = []
    for workers in (0, 2):
        bank = FeatureBank(backbones, tmp_path / f"c{workers}", batch_size=4, num_workers=workers)
        with pytest.raises(DataError) as e:
            bank.images(paths, {"inception": {"pool3"}})
        messages.append(str(e.value))
    assert messages[0] == messages[1] and "corrupt.png" in messages[0]


def test_pillow_globals_are_left_as_found(backbones, tmp_path) -> None:
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 6, seed=2, size=32)]
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    FeatureBank(backbones, tmp_path / "c", batch_size=2, num_workers=3).images(paths, {"clip": {"image"}})
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_a_failing_forward_stops_the_producer(backbones, tmp_path, monkeypatch) -> None:
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 12, seed=3, size=32)]
    bb = backbones["clip"]

    def boom(batch):
        raise RuntimeError("forward failed")

    monkeypatch.setattr(bb, "_forward", boom)
    with pytest.raises(RuntimeError, match="forward failed"):
        FeatureBank({"clip": bb}, tmp_path / "c", batch_size=2, num_workers=2).images(paths, {"clip": {"image"}})
    assert not [t for t in threading.enumerate() if t.name.startswith(("tise-prefetch", "tise-input"))]


def test_num_workers_is_checked() -> None:
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="num_workers"):
            FeatureBank({}, ".", num_workers=bad)  # type: ignore[arg-type]
    assert FeatureBank({}, ".", num_workers=None).num_workers >= 1


def test_workers_run_torch_single_threaded_and_the_count_is_put_back(backbones, tmp_path, monkeypatch) -> None:
    """Each input worker runs torch with 1 intra-op thread (the workers are the parallelism; N workers x the cores'
    OpenMP threads oversubscribe); the thread running the forwards keeps its count, and threads started after the
    pass get the process's count again."""
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 4, seed=21, size=40)]
    n0 = torch.get_num_threads()
    torch.set_num_threads(max(2, n0))  # (a count the workers' 1 differs from)
    try:
        inc, seen = backbones["inception"], []
        real = inc.preprocess

        def probe(img):
            seen.append((threading.current_thread().name, torch.get_num_threads()))
            return real(img)

        monkeypatch.setattr(inc, "preprocess", probe)
        FeatureBank(backbones, tmp_path / "c", batch_size=2, num_workers=2).images(paths, {"inception": {"pool3"}})
        assert seen and all(name.startswith("tise-input") and n == 1 for name, n in seen), seen
        assert torch.get_num_threads() == max(2, n0)
        later: list[int] = []
        t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert later == [max(2, n0)]
    finally:
        torch.set_num_threads(n0)
