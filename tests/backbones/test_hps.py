"""The HPSv2 backbone: the reference's preprocessing (tgxs002/HPSv2 hpsv2/src/open_clip/transform.py, ResizeMaxSize
with light_augmentation) rewritten here from its code, the checkpoint loading (a small fake ``{'state_dict': ...}``
file saved by the test, weights_only=True), the embeddings and HPS score against the test's own open_clip model, the
seeded random variant (ViT-H-14 by default), and the fail-fast message when the checkpoint is missing. A tiny
open_clip architecture registered by the test stands in for ViT-H-14 (same code path, milliseconds instead of
minutes on CPU)."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import Compose, InterpolationMode, Normalize, ToTensor

import open_clip
from open_clip import factory as oc_factory
import tise_bench.backbones as bb_mod
from tise_bench.backbones import build_backbones
from tise_bench.backbones import hps as H
from tise_bench.backbones.registry import get_backbone
from tise_bench.errors import ConfigError, WeightsNotFoundError

TINY = "tise-tiny-hps-test"
TINY_CFG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 56},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip constants.OPENAI_DATASET_MEAN (HPSv2's copy too)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
PROMPTS = ["a red fox in the snow", "an astronaut riding a horse, oil painting", "two cups"]


class RefResizeMaxSize(torch.nn.Module):
    """hpsv2/src/open_clip/transform.py ``ResizeMaxSize`` (tensor branch), as written there."""

    def __init__(self, max_size: int, fill: int = 0) -> None:
        super().__init__()
        self.max_size, self.fill = max_size, fill

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        height, width = img.shape[1:]
        scale = self.max_size / float(max(height, width))
        if scale != 1.0:
            new_size = tuple(round(dim * scale) for dim in (height, width))
            img = F.resize(img, new_size, InterpolationMode.BICUBIC)
            pad_h = self.max_size - new_size[0]
            pad_w = self.max_size - new_size[1]
            img = F.pad(img, padding=[pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=self.fill)
        return img


def reference_preprocess(size: int = 224) -> Compose:
    """image_transform(size, is_train=False, resize_longest_max=True) of HPSv2's open_clip copy (RGB input)."""
    return Compose([ToTensor(), RefResizeMaxSize(size), Normalize(mean=OPENAI_MEAN, std=OPENAI_STD)])


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    a[: h // 3, :] = (250, 20, 30)
    return Image.fromarray(a)


@pytest.fixture()
def tiny(monkeypatch, tmp_path):
    monkeypatch.setitem(oc_factory._MODEL_CONFIGS, TINY, TINY_CFG)
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))  # an empty hub cache
    return TINY


def _tiny_model(seed: int = 5) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.create_model(TINY, pretrained=None).eval()


@pytest.mark.parametrize("size", [(640, 480), (300, 512), (100, 60), (224, 224), (512, 512), (57, 301)])
def test_preprocessing_is_the_references_resize_max_size(size) -> None:
    img = _image(*size)
    want = reference_preprocess()(img)
    got = H.hps_preprocess(img)
    assert got.shape == (3, 224, 224) and got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), want.numpy())  # the same torchvision calls: bit-identical


def test_letterbox_is_black_before_normalisation_and_centred() -> None:
    x = H.hps_pixels(_image(448, 200))  # -> 224 x 100, padded 62 above and 62 below
    assert x.shape == (3, 224, 224)
    assert float(x[:, :62].abs().max()) == 0.0 and float(x[:, 162:].abs().max()) == 0.0
    assert float(x[:, 62:162].abs().max()) > 0.1
    odd = H.hps_pixels(_image(224 * 3, 3 * 75))  # 224 x 75: pad 149 -> 74 top, 75 bottom
    assert float(odd[:, :74].abs().max()) == 0.0 and float(odd[:, 74].abs().max()) > 0
    assert float(odd[:, 149:].abs().max()) == 0.0 and float(odd[:, 148].abs().max()) > 0


def test_longest_side_already_224_is_padded_where_the_reference_is_not() -> None:
    """The documented difference: the reference skips the pad when scale == 1, which its ViT could not take."""
    img = _image(224, 150)
    assert reference_preprocess()(img).shape == (3, 150, 224)
    got = H.hps_preprocess(img)
    assert got.shape == (3, 224, 224)
    padded = F.pad(F.to_tensor(img), [0, 37, 0, 37], fill=0)
    np.testing.assert_array_equal(got.numpy(), Normalize(OPENAI_MEAN, OPENAI_STD)(padded).numpy())


def test_published_names_and_architecture_are_pinned() -> None:
    assert H.ARCH == "ViT-H-14" and H.IMAGE_SIZE == 224 and H.HF_REPO == "xswu/HPSv2"
    assert H.CHECKPOINTS == {"v2": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
    # hpsv2/src/open_clip/model_configs/ViT-H-14.json, the architecture HPS was trained on
    assert open_clip.get_model_config("ViT-H-14") == {
        "embed_dim": 1024,
        "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24},
    }
    cfg = get_backbone("hps").parse({})
    assert (cfg.version, cfg.weights, cfg.random) == ("v2.1", None, False)
    assert [H.canonical_version(v) for v in ("v2", "v2.0", "2.1", "V2.1", 2.1)] == ["v2", "v2", "v2.1", "v2.1", "v2.1"]
    with pytest.raises(ConfigError, match=r"backbones\.hps\.version='v3'.*v2, v2\.1"):
        H.canonical_version("v3")


def test_checkpoint_state_dict_is_loaded_and_scores_as_the_reference(tiny, tmp_path) -> None:
    ref = _tiny_model()
    path = tmp_path / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": ref.state_dict(), "epoch": 3}, path)  # the released files' layout
    bb = H.HpsBackbone(weights=str(path), version="v2.1", model=tiny, cache_dir=tmp_path, device="cpu")
    assert bb.is_random is False and bb.weights_path == str(path) and bb.ident == f"hps-v2.1-{tiny}"
    assert bb.weights_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert all(torch.equal(bb.net.state_dict()[k], v) for k, v in ref.state_dict().items())
    d = bb.describe()
    assert d["version"] == "v2.1" and d["checkpoint"] == "HPS_v2.1_compressed.pt" and d["random_weights"] is False
    # the reference's forward (img_score.py): model(image, text) with normalize=True, image @ text.T, diagonal
    imgs = [_image(300, 200, 1), _image(120, 400, 2), _image(224, 224, 3)]
    tokenizer = open_clip.get_tokenizer("ViT-H-14")
    with torch.no_grad():
        image = torch.stack([reference_preprocess()(i) for i in imgs])
        want_img = ref.encode_image(image, normalize=True)
        want_txt = ref.encode_text(tokenizer(PROMPTS), normalize=True)
        want = torch.diagonal(want_img @ want_txt.T).numpy()
    got_img = bb.forward(torch.stack([bb.preprocess(i) for i in imgs]))["image"]
    got_txt, truncated = bb.encode_text(PROMPTS)
    np.testing.assert_allclose(got_img, want_img.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_txt, want_txt.numpy(), rtol=0, atol=1e-6)
    assert truncated.tolist() == [False, False, False] and bb.n_forward_texts == 3

    from tise_bench.metrics.preference import hps_score

    np.testing.assert_allclose(hps_score(got_img, got_txt, scale=1.0), want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(hps_score(got_img, got_txt), 100.0 * want, rtol=0, atol=1e-4)
    # a 'module.'-prefixed state dict (saved from DDP) loads the same
    ddp = tmp_path / "ddp.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, ddp)
    bb2 = H.HpsBackbone(weights=str(ddp), version="v2", model=tiny, cache_dir=tmp_path, device="cpu")
    np.testing.assert_array_equal(bb2.forward(torch.stack([bb2.preprocess(imgs[0])]))["image"], got_img[:1])
    assert bb2.describe()["checkpoint"] == "HPS_v2_compressed.pt" and bb2.namespace != bb.namespace


def test_long_prompts_are_truncated_and_flagged(tiny, tmp_path) -> None:
    path = tmp_path / "hps.pt"
    torch.save({"state_dict": _tiny_model().state_dict()}, path)
    bb = H.HpsBackbone(weights=str(path), model=tiny, cache_dir=tmp_path, device="cpu")
    emb, truncated = bb.encode_text(["cat " * 80, "cat"])
    assert truncated.tolist() == [True, False] and emb.shape == (2, 24)


class _Boom:
    def __reduce__(self):  # a crafted checkpoint: calls something when unpickled
        return (Path.touch, (Path(self.target),))

    target = ""


def test_bad_checkpoints_are_refused_with_the_key_and_the_fix(tiny, tmp_path) -> None:
    marker = tmp_path / "pwned"
    _Boom.target = str(marker)
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": _tiny_model().state_dict(), "payload": _Boom()}, evil)
    with pytest.raises(WeightsNotFoundError, match=r"backbones\.hps\.weights=.*weights_only=True"):
        H.HpsBackbone(weights=str(evil), model=tiny, cache_dir=tmp_path, device="cpu")
    assert not marker.exists()
    partial = tmp_path / "partial.pt"
    sd = _tiny_model().state_dict()
    sd.pop("text_projection")
    torch.save({"state_dict": sd}, partial)
    with pytest.raises(WeightsNotFoundError, match=r"not an HPS checkpoint of open_clip .*text_projection"):
        H.HpsBackbone(weights=str(partial), model=tiny, cache_dir=tmp_path, device="cpu")
    with pytest.raises(WeightsNotFoundError, match=r"backbones\.hps\.weights=.*nope\.pt does not exist"):
        H.HpsBackbone(weights=str(tmp_path / "nope.pt"), model=tiny, cache_dir=tmp_path, device="cpu")


@pytest.mark.parametrize("version, name", [("v2.1", "HPS_v2.1_compressed.pt"), ("v2", "HPS_v2_compressed.pt")])
def test_missing_checkpoint_fails_fast_naming_file_repo_and_key(tiny, tmp_path, monkeypatch, version, name) -> None:
    opened: list = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: opened.append(a))
    monkeypatch.setattr(open_clip, "create_model", lambda *a, **k: pytest.fail("a model was built before the check"))
    with pytest.raises(WeightsNotFoundError) as e:
        H.HpsBackbone(version=version, cache_dir=tmp_path, device="cpu")
    msg = str(e.value)
    assert f"HPS {version} needs its checkpoint {name} (xswu/HPSv2)" in msg
    assert f"huggingface-cli download xswu/HPSv2 {name}" in msg
    assert f"backbones.hps.weights=/path/to/{name}" in msg and f"backbones.hps.version={version}" in msg
    assert "backbones=random" in msg and opened == []


def test_checkpoint_in_the_hugging_face_cache_is_found(tiny, tmp_path) -> None:
    import huggingface_hub.constants as hfc

    snap = Path(hfc.HF_HUB_CACHE) / "models--xswu--HPSv2" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc123")
    torch.save({"state_dict": _tiny_model().state_dict()}, snap / "HPS_v2.1_compressed.pt")
    bb = H.HpsBackbone(model=tiny, cache_dir=tmp_path, device="cpu")
    assert bb.weights_path == str(snap / "HPS_v2.1_compressed.pt") and not bb.is_random
    with pytest.raises(WeightsNotFoundError, match="HPS_v2_compressed.pt"):  # v2's file is not there
        H.HpsBackbone(version="v2", model=tiny, cache_dir=tmp_path, device="cpu")


def test_random_variant_is_vit_h_14_by_default(tmp_path, monkeypatch, caplog) -> None:
    """backbones=random builds open_clip's ViT-H-14 itself (the build is intercepted here: ~1 B parameters, see the
    README for its cost) and names it in the ident; the random.yaml block changes nothing of that."""
    import yaml

    import tise_bench

    monkeypatch.setitem(oc_factory._MODEL_CONFIGS, TINY, TINY_CFG)
    monkeypatch.setattr(bb_mod, "_BUILT", {})  # no instance from another test
    real_create = open_clip.create_model
    calls: list = []

    def create(name, *a, **k):
        calls.append((name, a, k))
        return real_create(TINY, *a, **k)  # the same call on a tiny architecture

    monkeypatch.setattr(open_clip, "create_model", create)
    assert H.HpsConfig.model == "ViT-H-14" and get_backbone("hps").parse({}).model == "ViT-H-14"
    conf = Path(tise_bench.__file__).parent / "configs" / "backbones" / "random.yaml"
    block = yaml.safe_load(conf.read_text())["hps"]
    assert block == {}  # the default architecture, no tiny override
    with caplog.at_level("WARNING"):
        bb = build_backbones({"random": True, "seed": 3, "device": "cpu", "hps": block}, {"hps"}, tmp_path)["hps"]
    assert [(n, a, k) for n, a, k in calls] == [("ViT-H-14", (), {"pretrained": None, "force_quick_gelu": False})]
    assert bb.ident == "hps-ViT-H-14-random-seed3" and bb.describe()["model"] == "ViT-H-14 (RANDOM WEIGHTS)"
    assert bb.describe()["random_weights"] is True and bb.describe()["checkpoint"] is None
    assert "RANDOM-WEIGHTS open_clip ViT-H-14, not HPS" in caplog.text


def test_random_open_clip_is_open_clips_own_init_seeded(tiny) -> None:
    state = torch.random.get_rng_state()
    a = H.random_open_clip(tiny, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    b, c = H.random_open_clip(tiny, seed=4), H.random_open_clip(tiny, seed=5)
    torch.manual_seed(4)
    want = open_clip.create_model(tiny, pretrained=None)  # what ClipBackbone's random variant builds
    for k, v in want.state_dict().items():
        assert torch.equal(a.state_dict()[k], v) and torch.equal(b.state_dict()[k], v), k
    assert not torch.equal(a.state_dict()["visual.conv1.weight"], c.state_dict()["visual.conv1.weight"])
    with pytest.raises(ConfigError, match=r"'ViT-Q-99' is not an open_clip architecture"):
        H.random_open_clip("ViT-Q-99", seed=0)


def test_random_variant_on_a_chosen_architecture_is_seeded_and_loudly_marked(tiny, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(bb_mod, "_BUILT", {})
    state = torch.random.get_rng_state()
    cfg = {"random": True, "seed": 0, "device": "cpu", "hps": {"model": tiny}}  # the config key, for tests
    with caplog.at_level("WARNING"):
        a = build_backbones(cfg, {"hps"}, tmp_path)["hps"]
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    assert f"RANDOM-WEIGHTS open_clip {tiny}, not HPS" in caplog.text
    b = H.HpsBackbone(random=True, seed=0, model=tiny, cache_dir=tmp_path, device="cpu")
    c = H.HpsBackbone(random=True, seed=1, model=tiny, cache_dir=tmp_path, device="cpu")
    assert isinstance(a, H.HpsBackbone) and a.is_random and a.describe()["random_weights"] is True
    assert a.ident == f"hps-{tiny}-random-seed0" and a.describe()["model"] == f"{tiny} (RANDOM WEIGHTS)"
    assert a.weights_hash == b.weights_hash != c.weights_hash and a.namespace != c.namespace
    x = torch.stack([a.preprocess(_image(90, 60, s)) for s in range(3)])
    emb = a.forward(x)["image"]
    assert emb.shape == (3, 24) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(emb, b.forward(x)["image"])
    assert np.ptp(emb @ a.encode_text(PROMPTS)[0].T) > 1e-4  # random, but not constant
    with pytest.raises(ConfigError, match=r"backbones\.hps\.model='ViT-Q-99' is not an open_clip architecture"):
        build_backbones({**cfg, "hps": {"model": "ViT-Q-99"}}, {"hps"}, tmp_path)
    with pytest.raises(ConfigError, match=r"backbones\.hps\.model='ViT-Q-99'"):  # the real path: before any file
        H.HpsBackbone(model="ViT-Q-99", weights=str(tmp_path / "missing.pt"), device="cpu")
    # a weights file given for hps is used under backbones=random (that backbone is then real)
    real_cfg = {"random": True, "device": "cpu", "hps": {"weights": str(tmp_path / "missing.pt")}}
    with pytest.raises(WeightsNotFoundError, match="missing.pt does not exist"):
        build_backbones(real_cfg, {"hps"}, tmp_path)
