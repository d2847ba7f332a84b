"""Detector backbone: letterbox geometry, fixed-shape output in original pixels, random weights offline,
fail-fast real weights, thread hygiene and the feature cache."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import structured_images
from PIL import Image

from tise_bench.backbones import build_backbone
from tise_bench.backbones import letterbox as lb
from tise_bench.backbones.detector import DetectorBackbone, pack
from tise_bench.errors import WeightsNotFoundError
from tise_bench.features.bank import FeatureBank

IMGSZ = 320  # smaller than the default 640 to keep the tests fast


@pytest.fixture(scope="module")
def det(tmp_path_factory) -> DetectorBackbone:
    return DetectorBackbone(random=True, seed=0, imgsz=IMGSZ, cache_dir=tmp_path_factory.mktemp("c"), device="cpu")


def _run(d: DetectorBackbone, imgs: list[Image.Image]) -> dict[str, np.ndarray]:
    batch = torch.stack([d.preprocess(i) for i in imgs])
    meta = {"orig_size": torch.stack([d.preprocess_meta(i)["orig_size"] for i in imgs])}
    return d.forward(batch, meta)


def _images(tmp_path: Path) -> list[Image.Image]:
    paths = structured_images(tmp_path / "img", 12, seed=1, size=64)
    imgs = [Image.open(p).convert("RGB") for p in paths]
    return imgs + [imgs[2].resize((96, 64)), imgs[9].resize((64, 96))]  # non-square, aspect both ways


@pytest.mark.parametrize("w,h", [(96, 64), (64, 96), (640, 480), (33, 700), (320, 320)])
def test_letterbox_inverse_maps_planted_boxes_back(w: int, h: int) -> None:
    boxes = torch.tensor([[0.0, 0.0, w, h], [w * 0.25, h * 0.1, w * 0.5, h * 0.9], [1.0, 2.0, 3.0, 5.0]])
    there = lb.to_letterbox(boxes, w, h, IMGSZ)
    assert there.min() >= 0 and there.max() <= IMGSZ
    assert torch.allclose(lb.from_letterbox(there, w, h, IMGSZ), boxes, atol=1e-3)


def test_letterbox_pixels_match_ultralytics_and_planted_rectangle() -> None:
    a = np.full((64, 96, 3), 20, np.uint8)
    a[10:30, 40:80] = (250, 0, 0)  # planted red box x 40..80, y 10..30
    img = Image.fromarray(a)
    t = lb.letterbox(img, IMGSZ)
    assert t.shape == (3, IMGSZ, IMGSZ) and t.dtype == torch.uint8
    from ultralytics.data.augment import LetterBox

    ref = LetterBox((IMGSZ, IMGSZ), auto=False)(image=a.copy())  # channel order does not matter here
    assert torch.equal(t, torch.from_numpy(ref).permute(2, 0, 1))
    assert int(t[0, 0, 0]) == lb.PAD_VALUE  # top rows are padding for a landscape image
    ys, xs = np.nonzero(t[0].numpy() > 200)
    found = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
    back = lb.from_letterbox(found, 96, 64, IMGSZ)
    assert torch.allclose(back, torch.tensor([[40.0, 10.0, 80.0, 30.0]]), atol=0.5)


def test_pack_pads_sorts_and_drops_boxes_in_padding() -> None:
    g = lb.geometry(96, 64, IMGSZ)
    det = torch.tensor(
        [
            [10.0, g.top + 1, 50.0, g.top + 40, 0.3, 2],
            [5.0, 0.0, 60.0, g.top - 1, 0.9, 1],  # entirely in the top padding: dropped
            [20.0, g.top + 5, 300.0, IMGSZ, 0.7, 0],
        ]
    )
    out = pack(det, 96, 64, IMGSZ, max_det=5)
    assert out.shape == (5, 6)
    assert out[:2, 4].tolist() == pytest.approx([0.7, 0.3]) and out[:2, 5].tolist() == [0, 2]
    assert (out[2:] == -1).all()
    assert out[0, 2] <= 96 and out[0, 3] <= 64  # clipped to the original image


def test_random_detector_fixed_shape_original_coords(det: DetectorBackbone, tmp_path: Path) -> None:
    imgs = _images(tmp_path)
    out = _run(det, imgs)
    d, size = out["detections"], out["size"]
    assert d.shape == (len(imgs), 100, 6) and d.dtype == np.float32
    assert size.tolist() == [[i.width, i.height] for i in imgs]
    valid = d[..., 4] >= 0
    assert ((d[..., 4] >= det.conf) | ~valid).all()
    assert (d[~valid] == -1).all()  # padding rows are -1 everywhere
    for row, img in zip(d, imgs):
        v = row[row[:, 4] >= 0]
        assert (np.diff(v[:, 4]) <= 0).all()  # sorted by score
        assert (v[:, 0] >= 0).all() and (v[:, 1] >= 0).all()
        assert (v[:, 2] <= img.width).all() and (v[:, 3] <= img.height).all()
        assert (v[:, 2] > v[:, 0]).all() and (v[:, 3] > v[:, 1]).all()
        assert set(v[:, 5].astype(int)) <= set(range(80))
    assert (d[..., 4] >= 0.5).sum() > 0  # a calibrated random head: some boxes pass TISE's threshold
    assert det.describe()["random_weights"] is True and "random" in det.describe()["note"]


def test_random_detector_is_seeded(det: DetectorBackbone, tmp_path: Path) -> None:
    again = DetectorBackbone(random=True, seed=0, imgsz=IMGSZ, cache_dir=tmp_path, device="cpu")
    other = DetectorBackbone(random=True, seed=1, imgsz=IMGSZ, cache_dir=tmp_path, device="cpu")
    assert again.weights_hash == det.weights_hash != other.weights_hash
    imgs = _images(tmp_path)[:4]
    a, b = _run(det, imgs), _run(again, imgs)
    assert np.array_equal(a["detections"], b["detections"])


def test_thread_count_and_rng_are_left_alone(tmp_path: Path) -> None:
    torch.set_num_threads(2)
    state = torch.get_rng_state()
    d = DetectorBackbone(random=True, seed=3, imgsz=64, cache_dir=tmp_path, device="cpu")
    _run(d, [Image.new("RGB", (50, 40), (9, 99, 199))])
    assert torch.get_num_threads() == 2
    assert torch.equal(torch.get_rng_state(), state)


def test_namespace_changes_with_settings(tmp_path: Path) -> None:
    cfg = {"arch": "yolov8n.yaml", "imgsz": 64, "conf": 0.05, "iou": 0.7, "max_det": 10}
    a = build_backbone("detector", cfg, random=True, seed=0, cache_dir=tmp_path, device="cpu")
    b = build_backbone("detector", {**cfg, "conf": 0.1}, random=True, seed=0, cache_dir=tmp_path, device="cpu")
    assert a.namespace != b.namespace and "conf0.05" in a.namespace and "max10" in a.namespace
    with pytest.raises(Exception, match="multiple of 32"):
        build_backbone("detector", {**cfg, "imgsz": 100}, random=True, seed=0, cache_dir=tmp_path, device="cpu")
    with pytest.raises(ValueError, match="orig_size"):
        a.forward(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_real_weights_offline_fail_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TISE_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as e:
        DetectorBackbone(weights="yolov8x.pt", cache_dir=tmp_path, device="cpu")
    assert time.monotonic() - t0 < 10
    msg = str(e.value)
    assert "yolov8x.pt" in msg and "looked in" in msg and str(tmp_path) in msg
    assert "backbones.detector.weights=/path/to/yolov8x.pt" in msg
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        DetectorBackbone(weights=str(tmp_path / "nope" / "my.pt"), cache_dir=tmp_path, device="cpu")


def test_feature_bank_caches_detections(det: DetectorBackbone, tmp_path: Path) -> None:
    paths = [str(p) for p in structured_images(tmp_path / "img", 5, seed=1, size=64)]
    Image.new("RGB", (96, 64), (200, 30, 30)).save(tmp_path / "img" / "wide.png")
    paths.append(str(tmp_path / "img" / "wide.png"))
    bank = FeatureBank({"detector": det}, tmp_path / "cache", batch_size=4)
    needs = {"detector": {"detections", "size"}}
    before = det.n_forward_images
    first = bank.images(paths, needs)
    assert det.n_forward_images - before == len(paths)
    assert first.features["detector.detections"].shape == (len(paths), 100, 6)
    assert first.features["detector.size"][-1].tolist() == [96, 64]
    again = FeatureBank({"detector": det}, tmp_path / "cache", batch_size=4).images(paths, needs)
    assert det.n_forward_images - before == len(paths)  # second pass: zero forwards
    for k, v in first.features.items():
        assert np.array_equal(v, again.features[k])


def test_random_detector_is_calibrated_once_per_cache(tmp_path: Path, monkeypatch) -> None:
    """The calibrated random weights are written to the cache once; later builds read them back: the same tensors
    (same weights_hash, so the same namespace), BatchNorm momentum and outputs as a calibration from scratch."""
    from tise_bench.backbones import detector_random as dr
    from tise_bench.backbones.base import state_dict_sha256

    fresh, _ = dr.random_detector("yolov8n.yaml", 5, 64)  # no cache: calibrated here, nothing written
    first, _ = dr.random_detector("yolov8n.yaml", 5, 64, tmp_path)  # calibrated and written
    saved = dr.random_weights_file(tmp_path, "yolov8n.yaml", 5, 64)
    assert saved.is_file()

    def no_calibration(*_a: object) -> None:
        raise AssertionError("calibrated again although the cache holds the weights")

    monkeypatch.setattr(dr, "_init_random", no_calibration)
    loaded, names = dr.random_detector("yolov8n.yaml", 5, 64, tmp_path)
    assert len(names) == 80
    assert state_dict_sha256(fresh) == state_dict_sha256(first) == state_dict_sha256(loaded)
    bn = [m.momentum for m in fresh.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn == [m.momentum for m in loaded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(fresh(x)[0], loaded(x)[0])
