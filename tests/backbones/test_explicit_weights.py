"""Issue 9, defect 4: a weights file given with backbones=random is used, never dropped (that backbone is then
real and describe() says so), for every backbone; what describe() carries for the comparability fields; the
detector's TISE thresholds (per-class NMS IoU 0.5) and their cache namespace; the config files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

import tise_bench.backbones as bb_mod
from tise_bench.backbones import build_backbone, build_backbones

CONF = Path(bb_mod.__file__).parent.parent / "configs" / "backbones"
COMMON = dict(random=True, seed=0, device="cpu")


def _sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _comparability(d: dict) -> None:
    for k in ("ident", "weights_hash", "preproc_version", "random_weights"):
        assert k in d, k


def test_inception_weights_file_is_used_under_random(fidelity_ckpt, tmp_path):
    b = build_backbone("inception", {"weights": str(fidelity_ckpt)}, cache_dir=tmp_path, **COMMON)
    d = b.describe()
    _comparability(d)
    assert b.is_random is False and d["random_weights"] is False
    assert d["weights_hash"] == _sha(fidelity_ckpt) and d["weights"] == fidelity_ckpt.name


def test_detector_weights_file_is_used_under_random(yolo_ckpt, tmp_path):
    cfg = {"weights": str(yolo_ckpt), "arch": "yolov8n.yaml", "imgsz": 64, "conf": 0.05, "iou": 0.5, "max_det": 10}
    b = build_backbone("detector", cfg, cache_dir=tmp_path, **COMMON)
    d = b.describe()
    _comparability(d)
    assert b.is_random is False and d["random_weights"] is False and d["ident"] == "detector-yolov8n"
    assert d["weights_hash"] == _sha(yolo_ckpt) and d["weights"] == "yolov8n.pt"
    assert (d["conf_floor"], d["iou"], d["imgsz"], d["nms"]) == (0.05, 0.5, 64, "per-class")


def test_object_classifier_weights_file_is_used_under_random(tise_objcls_ckpt, tmp_path):
    b = build_backbone(
        "object_classifier", {"weights": str(tise_objcls_ckpt), "num_classes": 80}, cache_dir=tmp_path, **COMMON
    )
    d = b.describe()
    _comparability(d)
    assert b.is_random is False and d["random_weights"] is False and d["weights_hash"] == _sha(tise_objcls_ckpt)
    assert d["features"] == ["logits", "pool3"]


def test_clip_weights_file_is_passed_through_as_real(monkeypatch, tmp_path):
    """ClipBackbone's own weights handling is tested with CLIP; here: build_backbone hands it the file, real."""
    import dataclasses

    from tise_bench.backbones import registry
    from tise_bench.backbones.clip import ClipBackbone

    seen = []

    class Recorder(ClipBackbone):
        def __init__(self, **kw):  # records instead of loading CLIP
            seen.append(kw)
            self.is_random, self.amp_capable, self.device = kw["random"], False, None

    monkeypatch.setitem(registry._ENTRIES, "clip", dataclasses.replace(registry.get_backbone("clip"), cls=Recorder))
    monkeypatch.setattr(bb_mod, "_BUILT", {})
    build_backbone(
        "clip", {"model": "ViT-B-32", "pretrained": "openai", "weights": "/x/clip.pt"}, cache_dir=tmp_path, **COMMON
    )
    build_backbone("clip", {"model": "ViT-B-32", "pretrained": "openai", "weights": None}, cache_dir=tmp_path, **COMMON)
    assert (seen[0]["weights"], seen[0]["random"]) == ("/x/clip.pt", False)
    assert (seen[1]["weights"], seen[1]["random"]) == (None, True)


def test_build_backbones_builds_object_classifier_for_crops_when_given(monkeypatch, tmp_path):
    built = []
    monkeypatch.setattr(
        bb_mod,
        "build_backbone",
        lambda name, cfg, **kw: (
            built.append((name, kw["random"], cfg.get("weights")))
            or type("B", (), {"is_random": kw["random"] and not cfg.get("weights")})()
        ),
    )
    monkeypatch.setattr("tise_bench.weights.check_before_build", lambda *a, **k: None)  # /x/objcls.pth: no file
    base = yaml.safe_load((CONF / "random.yaml").read_text())
    build_backbones(base, {"crops"}, tmp_path)
    assert [n for n, *_ in built] == ["detector", "inception"]  # no classifier given: flagged fallback
    built.clear()
    build_backbones({**base, "object_classifier": {"weights": "/x/objcls.pth"}}, {"crops"}, tmp_path)
    assert ("object_classifier", True, "/x/objcls.pth") in built
    built.clear()
    build_backbones({**base, "object_classifier": {"weights": None, "random": True}}, {"crops"}, tmp_path)
    assert [n for n, *_ in built] == ["detector", "inception", "object_classifier"]


def test_random_configs_carry_no_weights_and_real_detector_follows_tise():
    from tise_bench.config_schema import compose
    from tise_bench.runner import resolve_config

    # the groups as a run receives them (the YAML sets values, the backbones' dataclasses the defaults)
    rnd, real = (resolve_config(compose([f"backbones={option}"]))["backbones"] for option in ("random", "real"))
    for name in ("clip", "inception", "detector", "object_classifier", "bird_classifier"):
        assert rnd[name]["weights"] is None, name  # nothing given there can be silently dropped
    assert real["object_classifier"]["weights"] is None and real["bird_classifier"]["weights"] is None
    assert real["detector"]["iou"] == 0.5 and real["detector"]["conf"] == 0.05  # TISE: NMS 0.5, score 0.5 later


def test_detector_iou_changes_the_cache_namespace(tmp_path):
    cfg = {"arch": "yolov8n.yaml", "imgsz": 64, "conf": 0.05, "max_det": 10, "weights": None}
    a = build_backbone("detector", {**cfg, "iou": 0.5}, cache_dir=tmp_path, **COMMON)
    b = build_backbone("detector", {**cfg, "iou": 0.7}, cache_dir=tmp_path, **COMMON)
    assert "iou0.5" in a.namespace and "iou0.7" in b.namespace and a.namespace != b.namespace
    d = a.describe()
    _comparability(d)
    assert d["random_weights"] is True and d["iou"] == 0.5 and d["weights"].startswith("yolov8n.yaml")
