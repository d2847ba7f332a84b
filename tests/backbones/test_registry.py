"""Backbone registry: registration (duplicates refused), config blocks checked against the dataclasses (unknown
keys and names refused with the valid ones), every shipped config valid, the imported-detections variant, the
crops stage, the code defaults, and cache namespaces pinned to the values written before the registry."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import tise_bench.backbones as bb_mod
from tise_bench.backbones import build_backbone, build_backbones, registry
from tise_bench.backbones.base import ImageBackbone
from tise_bench.backbones.imported_detections import ImportedDetections
from tise_bench.errors import ConfigError

CONF = Path(bb_mod.__file__).parent.parent / "configs" / "backbones"
YAMLS = sorted(CONF.glob("*.yaml"))
COMMON = dict(random=True, seed=0, device="cpu")


@dataclasses.dataclass(frozen=True)
class _ToyConfig(registry.BackboneConfig):
    width: int = 4


class _Toy(ImageBackbone):
    provides = ("x",)
    preproc_version = "toy-v1"

    def __init__(
        self, *, width: int, weights: str | None, random: bool, seed: int, cache_dir: str, device: str
    ) -> None:
        super().__init__()
        self.width, self.weights, self.is_random, self.seed = width, weights, random, seed
        self.ident, self.weights_hash = f"toy{width}", "0" * 64

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return torch.zeros(3, 2, 2)

    def _forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": batch.flatten(1)[:, : self.width]}


@pytest.fixture()
def toy(monkeypatch):
    """A backbone registered the way a new module would (the registry is restored afterwards)."""
    monkeypatch.setattr(registry, "_ENTRIES", dict(registry.all_backbones()))
    monkeypatch.setattr(bb_mod, "_BUILT", {})
    return registry.register_backbone("toy", config=_ToyConfig)(_Toy)


def test_registered_backbones_and_their_names():
    entries = registry.all_backbones()
    assert {"clip", "inception", "detector", "object_classifier", "bird_classifier"} <= set(entries)
    for name, e in entries.items():
        assert e.cls.name == name and issubclass(e.config, registry.BackboneConfig)
    assert ImportedDetections.name == "detector"  # a variant keeps the config key of the backbone it replaces


def test_a_new_backbone_is_its_class_and_its_config(toy, tmp_path):
    b = build_backbone("toy", {"width": "3"}, cache_dir=tmp_path, **COMMON)
    assert isinstance(b, _Toy) and b.name == "toy" and b.width == 3 and b.is_random and b.weights is None
    assert build_backbone("toy", {"width": 3}, cache_dir=tmp_path, **COMMON) is b  # same config, same instance
    real = build_backbone("toy", {"weights": "/w/toy.pt"}, cache_dir=tmp_path, **COMMON)
    assert (real.width, real.weights, real.is_random) == (4, "/w/toy.pt", False)  # default; weights win
    with pytest.raises(ConfigError, match=r"backbones\.toy\.depth .*Valid keys: weights, random, width"):
        build_backbone("toy", {"depth": 2}, cache_dir=tmp_path, **COMMON)


def test_duplicates_and_bad_registrations_are_refused(toy):
    before = registry.all_backbones()
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_backbone("clip", config=_ToyConfig)(_Toy)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_backbone("crops", config=_ToyConfig)(_Toy)  # a stage's name is taken too
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_variant("detector", selector="imported", kwargs=registry.constructor_kwargs)(_Toy)
    with pytest.raises(ValueError, match="extending BackboneConfig"):
        registry.register_backbone("other", config=dict)(_Toy)
    assert registry.all_backbones() == before and registry.get_backbone("clip").cls is not _Toy


def test_unknown_backbone_name_gets_did_you_mean(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown backbone 'clpi'.*Did you mean 'clip'") as e:
        build_backbone("clpi", {}, cache_dir=tmp_path, **COMMON)
    assert f"Registered backbones: {', '.join(sorted(registry.all_backbones()))}; stages: crops." in str(e.value)
    with pytest.raises(ConfigError, match=r"unknown backbone 'inceptoin'.*Did you mean 'inception'"):
        build_backbones({"random": True, "inception": {}}, {"inceptoin"}, tmp_path)
    with pytest.raises(ConfigError, match=r"backbones\.clpi is neither .*Did you mean 'clip'"):
        build_backbones({"random": True, "clpi": {}}, set(), tmp_path)


def test_unknown_config_key_is_refused_naming_the_key_and_the_valid_ones(tmp_path):
    cfg = yaml.safe_load((CONF / "random.yaml").read_text())
    cfg["detector"]["iuo"] = 0.7
    with pytest.raises(ConfigError) as e:
        build_backbones(cfg, {"clip"}, tmp_path)  # checked before anything is built, needed or not
    msg = str(e.value)
    assert "backbones.detector.iuo" in msg and "Did you mean 'iou'" in msg
    assert "Valid keys: weights, random, arch, imgsz, conf, iou, max_det, imported, max_crops" in msg
    with pytest.raises(ConfigError, match=r"backbones\.detector\.imgsz='big': expected int"):
        build_backbone("detector", {"imgsz": "big"}, cache_dir=tmp_path, **COMMON)
    with pytest.raises(ConfigError, match=r"backbones\.object_classifier\.random='yes': expected true or false"):
        build_backbone("object_classifier", {"random": "yes"}, cache_dir=tmp_path, **COMMON)


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_every_shipped_backbone_config_validates(path):
    from tise_bench.config_schema import compose
    from tise_bench.runner import resolve_config

    raw = yaml.safe_load(path.read_text())  # values only: the dataclass defaults fill the rest (config_schema)
    cfg = resolve_config(compose([f"backbones={path.stem}"]))["backbones"]  # the group as a run receives it
    top = registry.validate(cfg)
    assert (top.random, top.seed, top.device) == (cfg["random"], cfg["seed"], cfg["device"])
    for name, entry in registry.all_backbones().items():
        assert raw.get(name) is not None, f"{path.name} has no block for registered backbone {name!r}"
        parsed = entry.parse(cfg[name])
        assert {k: getattr(parsed, k) for k in cfg[name]} == cfg[name]  # values survive typing unchanged
        assert raw[name].items() <= cfg[name].items()  # the YAML's own values survive composition


def test_code_defaults_live_in_the_dataclasses_as_before():
    """The defaults build_backbone had before the registry (one place now: the config dataclasses)."""
    d = {n: dataclasses.asdict(e.parse({})) for n, e in registry.all_backbones().items()}
    assert d["clip"] == {"weights": None, "random": False, "model": "ViT-B-32", "pretrained": "openai"}
    assert d["inception"] == {"weights": None, "random": False, "resize": "torch_fidelity"}
    assert d["detector"] == {
        "weights": None,
        "random": False,
        "arch": "yolov8n.yaml",
        "imgsz": 640,
        "conf": 0.05,
        "iou": 0.5,
        "max_det": 100,
        "imported": None,
        "max_crops": None,
    }
    assert d["object_classifier"] == {"weights": None, "random": False, "num_classes": 80}
    assert d["bird_classifier"] == {"weights": None, "random": False, "num_classes": 50}
    assert registry.BackboneSetConfig() == registry.BackboneSetConfig(random=False, seed=0, device="auto", amp=False)


def test_constructor_arguments_are_those_of_before():
    """The per-process cache key is built from these: same names (and values) as the if/elif chain passed."""
    ctx = registry.BuildContext(weights=None, random=True, seed=0, cache_dir="/c", device="cpu")
    common = ["cache_dir", "device", "random", "seed", "weights"]
    want = {
        "clip": ["model", "pretrained"],
        "inception": ["resize"],
        "detector": ["arch", "conf", "imgsz", "iou", "max_det"],
        "object_classifier": ["num_classes"],
        "bird_classifier": ["num_classes"],
    }
    for name in want:
        entry = registry.get_backbone(name)
        cls, kwargs = entry.select(entry.parse({}))
        assert cls is entry.cls and sorted(kwargs(entry.parse({}), ctx)) == sorted(common + want[name]), name
    det = registry.get_backbone("detector")
    config = det.parse({"imported": "/d/dets.json", "max_det": "7", "weights": "yolov8x.pt"})
    cls, kwargs = det.select(config)
    assert cls is ImportedDetections
    assert kwargs(config, ctx) == {"path": "/d/dets.json", "max_det": 7, "cache_dir": "/c"}


def test_crops_is_a_declared_stage():
    stage = registry.all_stages()["crops"]
    assert (stage.needs, stage.when_provided) == (("detector", "inception"), ("object_classifier",))
    cfg = yaml.safe_load((CONF / "random.yaml").read_text())
    assert registry.expand_stages(cfg, {"crops", "clip"}) == {"clip", "detector", "inception"}
    cfg["object_classifier"]["random"] = True
    assert registry.expand_stages(cfg, {"crops"}) == {"detector", "inception", "object_classifier"}


def test_no_construction_branch_over_backbone_names():
    pkg = Path(bb_mod.__file__).parent
    hits = [
        f"{p.name}: {m.group(0)}" for p in pkg.glob("*.py") for m in re.finditer(r"name\s*==\s*[\"']", p.read_text())
    ]
    assert hits == []


# Cache namespaces of the random backbones of configs/backbones/random.yaml (device cpu), computed with the code
# before the registry (commit 24d4616): existing caches stay valid only while these strings do not change.
PINNED = {
    "clip": "clip-ViT-B-32-random-seed0-3093d1970428d450-openclip224-shortest-bicubic-norma74486fd-qgelu-v2",
    "inception": "inception-v3-compat-random-seed0-db95fc98db23fd28-tf1bilinear299-v1",
    "detector": "detector-yolov8n-random-seed0-5c486df64092e7fa-letterbox640-conf0.05-iou0.5-max100-v1",
    "object_classifier": "objcls-inception_v3-80-random-seed0-24aaabbb445c4827-tise-ois-pm1+ofid-imagenet-v2",
    "bird_classifier": "birdcls-inception_v3-50bg-random-seed0-b0dd847d89fd919d-tise-cub-pil-bilinear299-pm1-v1",
}
# the same code's namespace for this detections file (imported variant), and its per-process cache key
DETS = (
    '{"format": "tise_bench-detections-v1", "images": {"a.png": {"boxes": [[0, 0, 4, 4]], "classes": [0], '
    '"scores": [0.9]}}}'
)


@pytest.mark.slow
def test_random_namespaces_are_unchanged(session_cache):
    cfg = {**yaml.safe_load((CONF / "random.yaml").read_text()), "device": "cpu"}
    built = build_backbones(cfg, set(PINNED), session_cache)
    assert {n: b.namespace for n, b in built.items()} == PINNED
    key = (
        "detector",
        True,
        (
            ("arch", "yolov8n.yaml"),
            ("cache_dir", str(session_cache)),
            ("conf", "0.05"),
            ("device", "cpu"),
            ("imgsz", "640"),
            ("iou", "0.5"),
            ("max_det", "100"),
            ("random", "True"),
            ("seed", "0"),
            ("weights", "None"),
        ),
    )
    assert key in bb_mod._BUILT  # the per-process cache key: same constructor arguments, same string values


def test_imported_namespace_and_build_key_are_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(bb_mod, "_BUILT", {})
    path = tmp_path / "dets.json"
    path.write_text(DETS)
    cfg = {**yaml.safe_load((CONF / "random.yaml").read_text()), "device": "cpu"}
    cfg["detector"] = {**cfg["detector"], "imported": str(path)}
    b = build_backbones(cfg, {"detector"}, tmp_path)["detector"]
    assert isinstance(b, ImportedDetections) and b.namespace == "imported-dets-79d4e92c57fbbf41-imported-max100-v1"
    assert list(bb_mod._BUILT) == [
        ("detector", True, (("cache_dir", str(tmp_path)), ("max_det", "100"), ("path", str(path))))
    ]
