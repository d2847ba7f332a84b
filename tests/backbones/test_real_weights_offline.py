"""Issue 9, defect 1 for Inception and the detector: the whole real-weights path, offline, by standing in for
the download. A locally made checkpoint in the real format is put where the downloader puts it (torch hub's
checkpoints dir for torch-fidelity's Inception file; ultralytics' weights dir for a YOLO model name); then a
first run, a second run from the feature cache (same weights hash and namespace, zero forwards), a corrupt
file (clear error naming the file and the fix), and the "online" branch with the download function replaced
by one that writes the local checkpoint (the returned path is a real file that gets hashed)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import structured_images

import tise_bench.backbones.detector as detector_mod
import tise_bench.backbones.inception as inception_mod
from tise_bench.backbones.detector import DetectorBackbone, detector_weights_dir, find_weights
from tise_bench.backbones.inception import FILENAME, URL, InceptionBackbone
from tise_bench.errors import WeightsNotFoundError
from tise_bench.features.bank import FeatureBank

IMGSZ = 64


def _sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])  # an interrupted download


# ---------------------------------------------------------------------------------------------- Inception
@pytest.fixture()
def hub_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = Path(torch.hub.get_dir()) / "checkpoints" / FILENAME
    assert str(hub).startswith(str(tmp_path))
    return hub


def test_inception_first_run_then_cached_second_run(fidelity_ckpt, hub_file, tmp_path):
    hub_file.parent.mkdir(parents=True)
    shutil.copy(fidelity_ckpt, hub_file)
    paths = [str(p) for p in structured_images(tmp_path / "img", 2, seed=3, size=32)]
    needs = {"inception": {"pool3", "logits_unbiased"}}
    first = InceptionBackbone(cache_dir=tmp_path / "cache", device="cpu")
    assert first.is_random is False and first.weights_path == hub_file
    assert first.weights_hash == _sha(hub_file)
    d = first.describe()
    assert d["random_weights"] is False and d["weights_hash"] == _sha(hub_file) and d["weights"] == FILENAME
    assert d["ident"] == "inception-v3-compat-tf2015" and d["preproc_version"] == first.preproc_version
    got1 = FeatureBank({"inception": first}, tmp_path / "cache").images(paths, needs).features
    assert first.n_forward_images == 2 and got1["inception.pool3"].shape == (2, 2048)

    second = InceptionBackbone(cache_dir=tmp_path / "cache", device="cpu")  # a new process would do this
    assert second.namespace == first.namespace and second.weights_hash == first.weights_hash
    got2 = FeatureBank({"inception": second}, tmp_path / "cache").images(paths, needs).features
    assert second.n_forward_images == 0  # features came from the cache
    for k in got1:
        np.testing.assert_array_equal(got1[k], got2[k])


def test_inception_corrupt_hub_file_names_file_and_fix(fidelity_ckpt, hub_file, tmp_path):
    hub_file.parent.mkdir(parents=True)
    shutil.copy(fidelity_ckpt, hub_file)
    _truncate(hub_file)
    with pytest.raises(WeightsNotFoundError) as e:
        InceptionBackbone(cache_dir=tmp_path / "cache", device="cpu")
    msg = str(e.value)
    assert str(hub_file) in msg and "corrupt" in msg and URL in msg
    assert f"backbones.inception.weights=/path/to/{FILENAME}" in msg and "Traceback" not in msg
    bad = tmp_path / "given.pth"  # an explicitly given file that is not torch-fidelity's
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(WeightsNotFoundError, match=r"given\.pth have sha256 .*not that of torch-fidelity's"):
        InceptionBackbone(weights=str(bad), cache_dir=tmp_path / "cache", device="cpu")


def test_inception_online_download_returns_a_real_hashed_file(fidelity_ckpt, hub_file, tmp_path, monkeypatch):
    calls = []

    def fake_download(url, dst, *args, **kwargs):  # stands in for torch.hub.download_url_to_file
        calls.append(url)
        shutil.copy(fidelity_ckpt, dst)

    monkeypatch.setattr(inception_mod, "host_reachable", lambda *a, **k: True)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert not hub_file.exists()
    bb = InceptionBackbone(cache_dir=tmp_path / "cache", device="cpu")
    assert calls == [URL]
    assert bb.weights_path == hub_file and hub_file.is_file()
    assert bb.weights_hash == _sha(fidelity_ckpt)
    InceptionBackbone(cache_dir=tmp_path / "cache2", device="cpu")  # second run: found in the hub cache
    assert calls == [URL]


# ----------------------------------------------------------------------------------------------- detector
@pytest.fixture()
def yolo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our cache's folder for ultralytics model names (the run's cache is tmp_path / "cache"); cwd = tmp_path."""
    from ultralytics.utils import SETTINGS

    monkeypatch.setitem(SETTINGS, "weights_dir", str(tmp_path / "ultralytics-own"))  # never looked at by us
    monkeypatch.chdir(tmp_path)
    return detector_weights_dir(tmp_path / "cache")


def test_detector_never_loads_a_checkpoint_from_the_working_directory(yolo_ckpt, yolo_dir, tmp_path):
    """ultralytics checkpoints are pickles: a yolov8n.pt in the folder you run from must not be picked up (it
    would run code); a bare model name is looked up in our cache only, a file is used when named."""
    shutil.copy(yolo_ckpt, tmp_path / "yolov8n.pt")  # cwd
    with pytest.raises(WeightsNotFoundError) as e:
        _det(tmp_path)
    assert str(yolo_dir / "yolov8n.pt") in str(e.value) and "working directory is not used" in str(e.value)
    named = DetectorBackbone(weights="./yolov8n.pt", imgsz=IMGSZ, cache_dir=tmp_path / "cache", device="cpu")
    assert named.weights_path == Path("./yolov8n.pt") and named.weights_hash == _sha(yolo_ckpt)


def _det(tmp_path: Path, **kw) -> DetectorBackbone:
    return DetectorBackbone(weights="yolov8n.pt", imgsz=IMGSZ, cache_dir=tmp_path / "cache", device="cpu", **kw)


def test_detector_first_run_then_cached_second_run(yolo_ckpt, yolo_dir, tmp_path):
    yolo_dir.mkdir(parents=True)
    shutil.copy(yolo_ckpt, yolo_dir / "yolov8n.pt")
    paths = [str(p) for p in structured_images(tmp_path / "img", 2, seed=4, size=32)]
    needs = {"detector": {"detections", "size"}}
    first = _det(tmp_path)
    assert first.is_random is False and first.weights_path == yolo_dir / "yolov8n.pt"
    assert first.weights_hash == _sha(yolo_ckpt) and first.ident == "detector-yolov8n"
    got1 = FeatureBank({"detector": first}, tmp_path / "cache").images(paths, needs).features
    assert first.n_forward_images == 2 and got1["detector.detections"].shape == (2, 100, 6)
    second = _det(tmp_path)
    assert second.namespace == first.namespace
    got2 = FeatureBank({"detector": second}, tmp_path / "cache").images(paths, needs).features
    assert second.n_forward_images == 0
    for k in got1:
        np.testing.assert_array_equal(got1[k], got2[k])


def test_detector_corrupt_file_names_file_and_fix(yolo_ckpt, yolo_dir, tmp_path):
    yolo_dir.mkdir(parents=True)
    target = yolo_dir / "yolov8n.pt"
    shutil.copy(yolo_ckpt, target)
    _truncate(target)
    with pytest.raises(WeightsNotFoundError) as e:
        _det(tmp_path)
    msg = str(e.value)
    assert str(target) in msg and "corrupt" in msg and f"delete {target}" in msg
    assert "backbones.detector.weights=" in msg and "Traceback" not in msg


def test_detector_online_download_returns_a_real_hashed_file(yolo_ckpt, yolo_dir, tmp_path, monkeypatch):
    import ultralytics.utils.downloads as dl

    calls = []

    def fake_attempt_download_asset(file, *args, **kwargs):  # writes where ultralytics' downloader would
        if Path(file).is_file():  # as the real one: an existing file is returned as it is
            return str(file)
        calls.append(Path(file))
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(yolo_ckpt, file)
        return str(file)

    for var in ("TISE_OFFLINE", "HF_HUB_OFFLINE", "YOLO_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(detector_mod, "host_reachable", lambda *a, **k: True)
    monkeypatch.setattr(dl, "attempt_download_asset", fake_attempt_download_asset)
    got = find_weights("yolov8n.pt", tmp_path / "cache")
    assert calls == [yolo_dir / "yolov8n.pt"] and got == yolo_dir / "yolov8n.pt" and got.is_file()
    bb = _det(tmp_path)  # second run: found in the weights dir, no second download
    assert calls == [yolo_dir / "yolov8n.pt"] and bb.weights_hash == _sha(yolo_ckpt)


def test_detector_download_that_returns_no_file_is_a_clear_error(yolo_dir, tmp_path, monkeypatch):
    """The CLIP bug's analogue: a downloader answering with a name instead of a file must not be hashed."""
    import ultralytics.utils.downloads as dl

    for var in ("TISE_OFFLINE", "HF_HUB_OFFLINE", "YOLO_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(detector_mod, "host_reachable", lambda *a, **k: True)
    monkeypatch.setattr(dl, "attempt_download_asset", lambda file, *a, **k: "yolov8n.pt")
    with pytest.raises(WeightsNotFoundError, match=r"(?s)could not download 'yolov8n\.pt'.*backbones=random"):
        _det(tmp_path)
