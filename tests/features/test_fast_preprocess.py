"""``backbones.preprocess=fast`` (issue 13 item 2): torch preprocessing of the uploaded uint8 pixels.

Checked against the exact (PIL / cv2) paths on the same pixels: every input pixel within one grey level, the same
shapes, geometry and padding; the bank's fast features have their own namespaces (CLIP, detector, crops), leave
Inception's (identical input) shared, give the same keys and values for any number of workers, and land in
metrics' comparability fields and protocol. ``exact`` is unchanged (its namespaces are pinned elsewhere:
``test_random_namespaces_are_unchanged``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from helpers import RANDOM_BACKBONES, cached_keys, structured_images
from tise_bench.backbones import build_backbones
from tise_bench.backbones.base import ImageBackbone
from tise_bench.backbones.letterbox import PAD_VALUE, geometry, letterbox, letterbox_tensor
from tise_bench.backbones.registry import validate
from tise_bench.comparability import comparability
from tise_bench.errors import ConfigError
from tise_bench.features.bank import CropRequest, FeatureBank
from tise_bench.features.crops import CropSpec, crop_batch_tensor, make_crop, make_crop_tensor
from tise_bench.types import MetricValue
from tise_bench.registry import get_metric

BCFG = {**RANDOM_BACKBONES, "detector": {"arch": "yolov8n.yaml", "imgsz": 64, "conf": 0.001, "max_crops": 3}}
NEEDS = {"clip": {"image"}, "inception": {"pool3"}, "detector": {"detections", "size"}}
OPENAI_STD_MIN = 0.26130258  # open_clip's OPENAI_DATASET_STD, smallest channel: one grey level = 1/255/std


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    w = tmp_path_factory.mktemp("weights")
    names = {"clip", "inception", "detector"}
    return build_backbones(BCFG, names, w), build_backbones({**BCFG, "preprocess": "fast"}, names, w)


def _smooth(w: int, h: int, seed: int = 0) -> Image.Image:
    """A natural-ish image (smooth colour fields): resampling filters differ by rounding only."""
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((9, 7, 3)) * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)


def _pixels(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)


@pytest.mark.parametrize("size", [(256, 256), (300, 180), (90, 160)])  # square, landscape, small portrait (upscaled)
def test_clip_fast_input_is_open_clips_within_one_grey_level(sets, size) -> None:
    exact, fast = sets[0]["clip"], sets[1]["clip"]
    img = _smooth(*size)
    a, b = exact.preprocess(img), fast.preprocess_tensor(_pixels(img))
    assert a.shape == b.shape == (3, 224, 224) and b.dtype == torch.float32
    assert fast.input_row(True) == ((3, 224, 224), torch.float32) and fast.input_row(False) is None
    row = torch.full((3, 224, 224), 7.0)  # its batch row: the same values written there
    assert fast.preprocess_tensor(_pixels(img), out=row) is row and torch.equal(row, b)
    assert (a - b).abs().max().item() <= 1.0 / 255.0 / OPENAI_STD_MIN + 1e-5
    assert (a - b).abs().mean().item() < 0.3 / 255.0 / OPENAI_STD_MIN  # most pixels equal, not all off by one


@pytest.mark.parametrize("size", [(640, 480), (50, 120), (64, 64)])  # downscaled, upscaled, none
def test_detector_fast_letterbox_is_cv2s_within_one_grey_level(size) -> None:
    img = _smooth(*size, seed=1)
    a, b = letterbox(img, 64), letterbox_tensor(_pixels(img), 64)
    assert a.shape == b.shape == (3, 64, 64) and b.dtype == torch.uint8
    row = torch.full((3, 64, 64), 7, dtype=torch.uint8)
    assert letterbox_tensor(_pixels(img), 64, out=row) is row and torch.equal(row, b)
    assert (a.int() - b.int()).abs().max().item() <= 1
    g = geometry(*size, 64)
    pad = torch.ones(64, 64, dtype=torch.bool)
    pad[g.top : g.top + g.new_h, g.left : g.left + g.new_w] = False
    assert bool((b[:, pad] == PAD_VALUE).all()) and bool((a[:, pad] == b[:, pad]).all())


@pytest.mark.parametrize("box", [(3, 5, 40, 30, 0), (10, 10, 13, 12, 1), (0, 0, 64, 48, 2)])  # small, tiny, all
def test_crop_fast_is_pils_within_one_grey_level(box) -> None:
    img = _smooth(64, 48, seed=2)
    a = torch.from_numpy(np.array(make_crop(img, box, 299))).permute(2, 0, 1)
    b = make_crop_tensor(_pixels(img), box, 299)
    assert a.shape == b.shape == (3, 299, 299) and b.dtype == torch.uint8
    assert (a.int() - b.int()).abs().max().item() <= 1


@pytest.mark.parametrize("seed", range(4))
def test_crop_fast_written_into_its_row_is_pils_within_one_grey_level(seed) -> None:
    """Random boxes on random images, smooth and noise: crops enlarged on both axes (cv2 on the CPU) and crops
    shrunk on an axis (torch's antialiased filter) both land in the row given as ``out`` within 1 of PIL."""
    rng = np.random.default_rng(seed)
    kinds = {"enlarged": 0, "shrunk": 0}
    for _ in range(32):
        w, h = (int(v) for v in rng.integers(8, 900, 2))
        noise = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        img = noise if seed % 2 else _smooth(w, h, seed=seed)
        x1, x2 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
        y1, y2 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        box = (x1, y1, x2, y2, 0)
        kinds["enlarged" if x2 - x1 <= 299 and y2 - y1 <= 299 else "shrunk"] += 1
        a = torch.from_numpy(np.array(make_crop(img, box, 299))).permute(2, 0, 1)
        row = torch.full((3, 299, 299), 7, dtype=torch.uint8)
        b = make_crop_tensor(_pixels(img), box, 299, out=row)
        assert b.data_ptr() == row.data_ptr()
        assert (a.int() - row.int()).abs().max().item() <= 1, box
    assert kinds["enlarged"] >= 5 and kinds["shrunk"] >= 2, kinds


def test_fast_bank_namespaces_and_closeness(sets, tmp_path) -> None:
    exact, fast = sets
    assert exact["clip"].fast is False and fast["clip"].fast is True
    assert fast["clip"].namespace == exact["clip"].namespace + "-fast"
    # the detector letterboxes in torch on a device only: on the CPU cv2 (its exact path) is faster, so it keeps
    # its exact namespace there; on another device it gets its own
    det = fast["detector"]
    assert det.fast is False and det.namespace == exact["detector"].namespace
    det.device = torch.device("cuda")  # (the attribute only: nothing is moved)
    try:
        assert det.fast is True and det.namespace == exact["detector"].namespace + "-fast"
        assert exact["detector"].fast is False
    finally:
        det.device = torch.device("cpu")
    assert fast["inception"].namespace == exact["inception"].namespace  # same input tensor: one cache
    assert "preprocess" not in exact["clip"].describe() and "fast" in str(fast["clip"].describe()["preprocess"])
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 5, seed=3, size=48)]
    crops = CropRequest(spec=CropSpec(threshold=0.0, max_per_image=3), backbones={"inception": ""})
    got = {}
    for mode, bbs in (("exact", exact), ("fast", fast)):
        got[mode] = FeatureBank(bbs, tmp_path / "cache", batch_size=2).images(paths, NEEDS, crops=crops)
    a, b = got["exact"].features, got["fast"].features
    np.testing.assert_array_equal(a["inception.pool3"], b["inception.pool3"])
    cos = (a["clip.image"] * b["clip.image"]).sum(1)
    assert cos.min() > 0.99 and not np.array_equal(a["clip.image"], b["clip.image"])
    dirs = {p.name for p in (tmp_path / "cache" / "features").iterdir()}
    assert any(d.startswith("crops-") and "-fastcrop-" in d for d in dirs)
    assert any(d.startswith("crops-") and "-fastcrop-" not in d for d in dirs)
    assert len(b["crops.owner"]) > 0


@pytest.mark.parametrize("workers", [0, 2])
def test_fast_hands_inception_the_pixels_it_made_with_the_exact_values(sets, tmp_path, monkeypatch, workers) -> None:
    """Under fast, Inception's input is the uint8 pixels the bank decoded for the fast paths (one conversion of the
    image, not two): bit-equal to the exact run's features, computed into separate caches, palette and grey
    images included (their conversion to RGB is the same)."""
    exact, fast = sets
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 4, seed=5, size=40)]
    for mode in ("L", "P", "RGBA"):
        path = tmp_path / "imgs" / f"mode-{mode}.png"
        Image.open(paths[0]).convert(mode).save(path)
        paths.append(str(path))
    needs = {"inception": {"pool3", "logits_unbiased"}, "clip": {"image"}}
    called = []
    real = fast["inception"].preprocess
    monkeypatch.setattr(fast["inception"], "preprocess", lambda img: called.append(1) or real(img))
    a = FeatureBank(exact, tmp_path / "e", batch_size=3, num_workers=workers).images(paths, needs)
    b = FeatureBank(fast, tmp_path / "f", batch_size=3, num_workers=workers).images(paths, needs)
    assert a.shas == b.shas and len(a.shas) == 7
    for k in ("inception.pool3", "inception.logits_unbiased"):
        np.testing.assert_array_equal(a.features[k], b.features[k], err_msg=k)
    assert called == [] and fast["inception"].pixels_input


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))],
)
def test_upload_gives_the_pixels_contiguous_on_the_device(device) -> None:
    """A device's copy of an image's pixels: the decoded (H, W, 3) array copied as it is and transposed there, or a
    (3, H, W) tensor of any layout: the same values, contiguous."""
    from tise_bench.features.bank import _pixels, upload

    img = _smooth(7, 5, seed=2)
    pixels = _pixels(img)
    assert pixels.permute(1, 2, 0).is_contiguous()  # the bank's pixels: a view of the decoded array
    for src in (pixels, pixels.contiguous(), pixels[:, 1:4, 2:6]):
        got = upload(src, torch.device(device))
        assert got.device.type == device and got.is_contiguous() and got.dtype == torch.uint8
        assert torch.equal(got.cpu(), src), tuple(src.shape)


def test_fast_gives_the_same_keys_and_values_for_any_worker_count(sets, tmp_path) -> None:
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 6, seed=4, size=40)]
    crops = CropRequest(spec=CropSpec(threshold=0.0, max_per_image=3), backbones={"inception": ""})
    runs = [
        FeatureBank(sets[1], tmp_path / f"c{w}", batch_size=4, num_workers=w).images(paths, NEEDS, crops=crops)
        for w in (0, 2)
    ]
    assert runs[0].shas == runs[1].shas and sorted(runs[0].features) == sorted(runs[1].features)
    for k, v in runs[0].features.items():
        np.testing.assert_array_equal(runs[1].features[k], v, err_msg=k)


@pytest.mark.parametrize("seed", range(2))
def test_crops_cut_in_one_batch_are_pils_within_one_grey_level(seed) -> None:
    """``crop_batch_tensor`` (fast on a device): random boxes of three images, several per image (one grid_sample,
    the crops as tiles) and some shrunk on an axis (one by one, antialiased): crop i is the crop of ``items[i]``,
    within 1 grey level of PIL's and of the one-by-one device path (float bilinear, rounded) it replaces."""
    rng = np.random.default_rng(seed)
    w, h = 320, 240
    imgs = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) if seed else _smooth(w, h, i) for i in range(3)
    ]
    items = []
    while len(items) < 14:
        x1, x2 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
        y1, y2 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
        if x2 - x1 >= 1 and y2 - y1 >= 1:
            items.append((int(rng.integers(0, 3)), (x1, y1, x2, y2, 0)))
    items.append((1, (0, 0, w, h, 0)))  # shrunk on x (320 > 299)
    px = torch.stack([_pixels(im) for im in imgs])
    got = crop_batch_tensor(px, items, 299, sampled=True)
    assert got.shape == (len(items), 3, 299, 299) and got.dtype == torch.uint8
    for i, (b, box) in enumerate(items):
        pil = torch.from_numpy(np.array(make_crop(imgs[b], box, 299))).permute(2, 0, 1)
        crop = px[b][:, box[1] : box[3], box[0] : box[2]][None].float()
        one = F.interpolate(crop, size=(299, 299), mode="bilinear", antialias=True, align_corners=False)[0]
        one = one.round().clamp(0, 255).to(torch.uint8)
        assert (pil.int() - got[i].int()).abs().max().item() <= 1, (i, box)
        assert (one.int() - got[i].int()).abs().max().item() <= 1, (i, box)
        if box[2] - box[0] <= 299 and box[3] - box[1] <= 299:  # sampled: the same bilinear, rounding aside
            assert (one != got[i]).float().mean() < 0.01, (i, box)
    cpu = crop_batch_tensor(px, items, 299)  # on the CPU: each crop as make_crop_tensor makes it (cv2)
    assert all(torch.equal(cpu[i], make_crop_tensor(px[b], box, 299)) for i, (b, box) in enumerate(items))


def test_preprocess_batch_rows_are_each_images_input(sets) -> None:
    """``preprocess_batch`` (``fast`` on a device: one call per batch of images of one size) gives, row by row, what
    ``preprocess_tensor`` gives each image: CLIP's transform, Inception's pixels, the letterbox with torch's uint8
    (CPU) and float (device) kernels, and the image-by-image default."""
    fast = sets[1]
    for size in ((48, 48), (60, 36)):
        px = torch.stack([_pixels(_smooth(*size, seed=i)) for i in range(3)])
        for name in ("clip", "inception"):
            bb = fast[name]
            want = torch.stack([bb.preprocess_tensor(p) for p in px])
            assert torch.equal(bb.preprocess_batch(px), want), (name, size)
            assert torch.equal(ImageBackbone.preprocess_batch(bb, px), want), (name, size)
        for uint8_math in (True, False):
            got = letterbox_tensor(px, 64, uint8_math=uint8_math)
            want = torch.stack([letterbox_tensor(p, 64, uint8_math=uint8_math) for p in px])
            assert got.shape == (3, 3, 64, 64) and torch.equal(got, want), (size, uint8_math)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_device_path_gives_the_input_workers_values(sets, tmp_path, monkeypatch, workers) -> None:
    """``fast`` on an accelerator: images preprocessed there in one batch per image size, crops cut one by one and
    preprocessed as one batch, all in the thread that runs the forwards. Run on the CPU (through the bank's one
    switch, ``_on_device``), it gives the CPU path's cache keys and values, with two image sizes and two crop
    backbones sharing each cut."""
    paths = [str(p) for p in structured_images(tmp_path / "imgs", 5, seed=8, size=40)]
    paths += [str(p) for p in structured_images(tmp_path / "imgs", 3, seed=9, size=32, prefix="small")]
    crops = CropRequest(spec=CropSpec(threshold=0.0, max_per_image=3), backbones={"inception": "", "clip": "clip_"})
    ref = FeatureBank(sets[1], tmp_path / "cpu", batch_size=4, num_workers=workers).images(paths, NEEDS, crops=crops)
    clip = sets[1]["clip"]
    batched: list[int] = []
    real = clip.preprocess_batch

    def spy(pixels):
        batched.append(pixels.shape[0])
        return real(pixels)

    monkeypatch.setattr(clip, "preprocess_batch", spy)
    monkeypatch.setattr(FeatureBank, "_on_device", lambda self, bb: True)
    got = FeatureBank(sets[1], tmp_path / "dev", batch_size=4, num_workers=workers).images(paths, NEEDS, crops=crops)
    assert len(ref.features["crops.owner"]) > 0 and sorted(got.features) == sorted(ref.features)
    for k, v in ref.features.items():
        np.testing.assert_array_equal(got.features[k], v, err_msg=k)
    assert cached_keys(tmp_path / "dev") == cached_keys(tmp_path / "cpu")
    # per chunk of 4: one batch per image size, one for the crops (never image by image)
    assert sum(batched) == len(paths) + len(ref.features["crops.owner"]) and len(batched) < sum(batched) / 2


def test_fast_is_a_comparability_field_and_a_protocol_note(sets) -> None:
    exact, fast = sets
    mv = MetricValue(value=1.0, n=4)
    for mid, touched in (("clip_score", True), ("is", False)):
        spec = get_metric(mid)
        _, fe = comparability(mid, spec, {}, mv, exact)
        proto, ff = comparability(mid, spec, {}, mv, fast)
        assert "preprocess" not in fe
        if touched:
            assert ff["preprocess"] == "fast: clip" and "preprocess=fast" in proto and ff != fe
        else:  # Inception's input is the same tensor in both modes: IS stays comparable
            assert ff == fe and "preprocess=fast" not in proto


def test_unknown_preprocess_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"backbones.preprocess='quick'.*exact.*fast"):
        validate({"preprocess": "quick"})
