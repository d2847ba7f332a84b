"""hpsv2 and aesthetic: each equals its reference formula written here from the reference code (tgxs002/HPSv2
img_score.py / evaluation.py; christophschuhmann/improved-aesthetic-predictor simple_inference.py) on the same
weights — the adapters on given embeddings, the aesthetic head (sizes pinned) on a fake head file, and a whole run
on random backbones (per-sample values in samples.parquet, prompt-bootstrap replicates). Tiny open_clip
architectures registered here stand in for ViT-H-14 / ViT-L-14 (``backbones.<hps|aesthetic>.model``): the random
variants' default, the real architectures, is checked without building them (minutes on a CPU)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

import open_clip
from helpers import tiny_demo_config
from tise_bench.backbones import aesthetic as A
from tise_bench.backbones.hps import HpsBackbone
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.errors import ConfigError, WeightsNotFoundError
from tise_bench.metrics.preference import hps_score
from tise_bench.registry import get_metric

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
TINY_L14 = "tise-tiny-aesthetic-test"  # OpenAI ViT-L/14's kind (QuickGELU, 224 px, embed 768), one layer per tower
TINY_L14_CFG = {
    "embed_dim": 768,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 56},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TINY_H14 = "tise-tiny-hps-pref-test"  # ViT-H-14's kind (GELU, 224 px, embed 1024), one layer per tower
TINY_H14_CFG = {
    "embed_dim": 1024,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 56},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture()
def tiny_archs(monkeypatch):
    from open_clip import factory as oc_factory

    monkeypatch.setitem(oc_factory._MODEL_CONFIGS, TINY_L14, TINY_L14_CFG)
    monkeypatch.setitem(oc_factory._MODEL_CONFIGS, TINY_H14, TINY_H14_CFG)
    return TINY_H14, TINY_L14


class RefMLP(torch.nn.Module):
    """simple_inference.py ``MLP.layers``, as written there (the ReLUs commented out: the linearMSE head)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(input_size, 1024),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def normalized(a, axis=-1, order=2):
    """simple_inference.py ``normalized``."""
    l2 = np.atleast_1d(np.linalg.norm(a, order, axis))
    l2[l2 == 0] = 1
    return a / np.expand_dims(l2, axis)


def openai_clip_preprocess() -> Compose:
    """OpenAI clip.load's transform (clip/clip.py ``_transform(224)``) for RGB input."""
    return Compose(
        [
            Resize(224, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(224),
            ToTensor(),
            Normalize(OPENAI_MEAN, OPENAI_STD),
        ]
    )


def hps_reference_preprocess(img: Image.Image) -> torch.Tensor:
    """HPSv2's ToTensor + ResizeMaxSize(224) + Normalize (hpsv2/src/open_clip/transform.py), as written there."""
    t = ToTensor()(img)
    height, width = t.shape[1:]
    scale = 224 / float(max(height, width))
    if scale != 1.0:
        new_size = tuple(round(dim * scale) for dim in (height, width))
        t = F.resize(t, new_size, InterpolationMode.BICUBIC)
        pad_h, pad_w = 224 - new_size[0], 224 - new_size[1]
        t = F.pad(t, padding=[pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
    return Normalize(OPENAI_MEAN, OPENAI_STD)(t)


def _image(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = np.empty((h, w, 3), np.uint8)
    a[:] = rng.integers(0, 256, 3)
    a[h // 4 : h // 2, w // 3 :] = rng.integers(0, 256, 3)
    return Image.fromarray(a)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- hpsv2 -------------------------------------------------------------------------------------------------------


def test_hps_score_is_the_diagonal_of_normalised_image_times_text() -> None:
    rng = np.random.default_rng(0)
    img, txt = 4.0 * rng.normal(size=(5, 16)), rng.normal(size=(5, 16))  # unnormalised on purpose
    ti, tt = torch.tensor(img), torch.tensor(txt)
    ti, tt = ti / ti.norm(dim=-1, keepdim=True), tt / tt.norm(dim=-1, keepdim=True)
    want = torch.diagonal(ti @ tt.T).numpy()  # img_score.py: logits_per_image = image_features @ text_features.T
    np.testing.assert_allclose(hps_score(img, txt, scale=1.0), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hps_score(img, txt), 100.0 * want, rtol=0, atol=1e-10)  # evaluation.py: * 100
    with pytest.raises(ConfigError, match="metrics.params.hpsv2.scale"):
        hps_score(img, txt, scale=0.0)


def _ctx() -> tuple[MetricContext, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    recs = [
        Record(id="a", caption="a dog", category="photo"),
        Record(id="b", caption="a castle, concept art", category="concept-art"),
        Record(id="c", caption="a cat", category="photo"),
    ]
    samples = [
        Sample(0, 0, "a0.png", "x"),
        Sample(0, 1, "a1.png", "y"),
        Sample(1, 0, "b.png", "z"),
        Sample(2, 0, "c", "w"),
    ]
    texts = get_metric("hpsv2").texts(recs, {})
    assert texts == ["a dog", "a castle, concept art", "a cat"]  # the prompts as given, no prefix
    hps_text = {t: v for t, v in zip(texts, _unit(rng.normal(size=(3, 12))))}
    img = 2.0 * rng.normal(size=(4, 12))
    ctx = MetricContext(
        subset="realism",
        records=recs,
        samples=samples,
        gen_features={"hps.image": img, "aesthetic.score": np.array([5.0, 6.5, 4.25, 7.0], dtype=np.float32)},
        text_features={t: np.zeros(3) for t in texts},  # CLIP's text space: must not be read
        other_text={"hps": (hps_text, {"a cat"})},
    )
    return ctx, img, hps_text


def test_hpsv2_adapter_equals_the_reference_formula() -> None:
    ctx, img, hps_text = _ctx()
    cap = np.stack([hps_text[c] for c in ["a dog", "a dog", "a castle, concept art", "a cat"]])
    per = 100.0 * np.array([float(np.dot(i / np.linalg.norm(i), t)) for i, t in zip(img, cap)])
    v = get_metric("hpsv2").compute(ctx, {})
    np.testing.assert_allclose(v.per_sample, per, rtol=1e-12)
    assert v.value == pytest.approx(per.mean(), rel=1e-12) and v.n == 4  # mean over images (evaluation.py)
    assert v.extras["scale"] == 100.0 and v.extras["n_truncated"] == 1
    assert v.extras["per_category"] == pytest.approx({"photo": per[[0, 1, 3]].mean(), "concept-art": per[2]})
    assert v.resample(np.arange(3))[0] == pytest.approx(v.value, rel=1e-12)  # identity draw reproduces the value
    assert v.resample(np.array([[1, 1, 1]]))[0] == pytest.approx(per[2])  # prompts drawn, not images
    cos = get_metric("hpsv2").compute(ctx, {"scale": 1.0})
    assert cos.value == pytest.approx(per.mean() / 100.0, rel=1e-12)
    with pytest.raises(KeyError, match="hps text embedding not pre-computed"):
        get_metric("hpsv2").compute(MetricContext(**{**ctx.__dict__, "other_text": {}}), {})


# --- aesthetic ---------------------------------------------------------------------------------------------------


def test_aesthetic_head_sizes_and_keys_are_the_references() -> None:
    assert A.HEAD_SIZES == (768, 1024, 128, 64, 16, 1) and A.HEAD_DROPOUT == (0.2, 0.2, 0.1)
    head = A.AestheticMLP()
    linears = [(m.in_features, m.out_features) for m in head.layers if isinstance(m, torch.nn.Linear)]
    assert linears == [(768, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)]
    assert [m.p for m in head.layers if isinstance(m, torch.nn.Dropout)] == [0.2, 0.2, 0.1]
    assert all(isinstance(m, (torch.nn.Linear, torch.nn.Dropout)) for m in head.layers)  # no activation
    want = {f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")}
    assert set(head.state_dict()) == set(RefMLP(768).state_dict()) == want
    assert A.HEAD_FILE == "sac+logos+ava1-l14-linearMSE.pth"
    assert A.HEAD_REPO == "christophschuhmann/improved-aesthetic-predictor" and (A.ARCH, A.TAG) == (
        "ViT-L-14",
        "openai",
    )


@pytest.fixture(scope="module")
def head_file(tmp_path_factory):
    torch.manual_seed(7)
    ref = RefMLP(768).eval()
    path = tmp_path_factory.mktemp("aes") / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(ref.state_dict(), path)  # the released file: a plain state dict
    return path, ref


def test_aesthetic_score_equals_simple_inference_on_the_same_weights(head_file, tiny_archs, tmp_path) -> None:
    path, ref_head = head_file
    bb = A.AestheticBackbone(random=True, seed=0, head=str(path), model=TINY_L14, cache_dir=tmp_path, device="cpu")
    assert bb.head_path == str(path) and bb.describe()["head_random"] is False and bb.is_random
    imgs = [_image(300, 200, 1), _image(150, 260, 2), _image(224, 224, 3)]
    with torch.no_grad():  # simple_inference.py on the backbone's (random, tiny) CLIP and the test's head
        feats = bb.net.encode_image(torch.stack([openai_clip_preprocess()(i) for i in imgs]))
        want = ref_head(torch.from_numpy(normalized(feats.numpy())).float())[:, 0].numpy()
    out = bb.forward(torch.stack([bb.preprocess(i) for i in imgs]))
    np.testing.assert_allclose(out["score"], want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["image"], normalized(feats.numpy()), rtol=0, atol=1e-6)
    ctx = MetricContext(
        "realism", [Record(id=str(i), caption="x") for i in range(3)], [], {"aesthetic.score": out["score"]}
    )
    ctx.samples = [Sample(i, 0, f"{i}.png", "s") for i in range(3)]
    v = get_metric("aesthetic").compute(ctx, {})
    assert v.value == pytest.approx(float(np.mean(want)), abs=1e-5) and v.n == 3
    np.testing.assert_allclose(v.per_sample, out["score"], rtol=1e-7)
    assert v.resample(np.arange(3))[0] == pytest.approx(v.value, rel=1e-12)


@pytest.fixture()
def tiny_l14(monkeypatch, tmp_path, tiny_archs):
    from open_clip import pretrained as oc_pretrained

    tag = {**oc_pretrained.get_pretrained_cfg("ViT-L-14", "openai"), "hf_hub": "tise-test/none/", "url": ""}
    monkeypatch.setitem(oc_pretrained._PRETRAINED, TINY_L14, {"openai": tag})
    torch.manual_seed(11)
    net = open_clip.create_model(TINY_L14, pretrained=None).eval()
    path = tmp_path / "tiny-l14.pt"
    torch.save(net.state_dict(), path)
    return path, net


def test_real_path_loads_the_clip_file_and_the_head_file(tiny_l14, head_file, tmp_path) -> None:
    clip_path, net = tiny_l14
    path, ref_head = head_file
    kw = dict(model=TINY_L14, cache_dir=tmp_path, device="cpu")
    bb = A.AestheticBackbone(weights=str(clip_path), head=str(path), **kw)
    assert not bb.is_random and bb.weights_path == str(clip_path) and bb.ident == f"aesthetic-{TINY_L14}-tiny-l14"
    d = bb.describe()
    assert (
        d["pretrained_tag"] == "openai"
        and d["head_file"] == str(path)
        and d["head_sizes"] == [768, 1024, 128, 64, 16, 1]
    )
    img = _image(320, 180, 4)
    with torch.no_grad():
        want = ref_head(torch.from_numpy(normalized(net.encode_image(openai_clip_preprocess()(img)[None]).numpy())))
    np.testing.assert_allclose(bb.forward(bb.preprocess(img)[None])["score"], want[:, 0].numpy(), rtol=0, atol=1e-5)
    other = tmp_path / "other-head.pth"
    torch.manual_seed(8)
    torch.save(RefMLP(768).state_dict(), other)
    assert A.AestheticBackbone(weights=str(clip_path), head=str(other), **kw).namespace != bb.namespace  # head in key


def test_missing_or_wrong_head_fails_fast_naming_file_repo_and_key(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(A, "ClipBackbone", lambda **k: pytest.fail("the CLIP was built before the head was checked"))
    with pytest.raises(WeightsNotFoundError) as e:
        A.AestheticBackbone(cache_dir=tmp_path, device="cpu")
    msg = str(e.value)
    assert "sac+logos+ava1-l14-linearMSE.pth" in msg and "christophschuhmann/improved-aesthetic-predictor" in msg
    assert "backbones.aesthetic.head=/path/to/sac+logos+ava1-l14-linearMSE.pth" in msg and "backbones=random" in msg
    with pytest.raises(WeightsNotFoundError, match=r"backbones\.aesthetic\.head=.*nope\.pth does not exist"):
        A.AestheticBackbone(head=str(tmp_path / "nope.pth"), cache_dir=tmp_path, device="cpu")
    bad = tmp_path / "relu-head.pth"
    torch.save({k: v for k, v in RefMLP(512).state_dict().items()}, bad)  # another input size
    with pytest.raises(WeightsNotFoundError, match=r"not the aesthetic MLP head \(768, 1024, 128, 64, 16, 1\)"):
        A.AestheticBackbone(head=str(bad), cache_dir=tmp_path, device="cpu")


def test_aesthetic_clip_offline_message_names_the_aesthetic_block(head_file, tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants as hfc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsNotFoundError) as e:
        A.AestheticBackbone(head=str(head_file[0]), cache_dir=tmp_path, device="cpu")
    msg = str(e.value)
    assert "ViT-L-14/openai" in msg and "backbones.aesthetic.weights=/path/to/checkpoint" in msg
    assert "backbones.clip." not in msg


def test_random_aesthetic_is_vit_l_14_by_default(tmp_path, monkeypatch, tiny_archs) -> None:
    """backbones=random builds open_clip's ViT-L-14 itself, with the openai tag's QuickGELU (the build is intercepted
    here: ~430 M parameters, see the README for its cost) and names it in the ident."""
    import tise_bench.backbones as bb_mod
    from tise_bench.backbones import build_backbones

    monkeypatch.setattr(bb_mod, "_BUILT", {})
    real_create = open_clip.create_model
    calls: list = []

    def create(name, *a, **k):
        calls.append((name, k))
        return real_create(TINY_L14, *a, **k)  # the same call on a tiny architecture

    monkeypatch.setattr(open_clip, "create_model", create)
    assert A.AestheticConfig.model == "ViT-L-14"
    bb = build_backbones({"random": True, "seed": 2, "device": "cpu", "aesthetic": {}}, {"aesthetic"}, tmp_path)
    a = bb["aesthetic"]
    assert calls == [("ViT-L-14", {"pretrained": None, "force_quick_gelu": True})]
    assert a.ident == "aesthetic-ViT-L-14-random-seed2" and a.describe()["model"] == "ViT-L-14 (RANDOM WEIGHTS)"
    assert a.describe()["random_weights"] and a.describe()["head_random"] and a.describe()["pretrained_tag"] is None


def test_random_aesthetic_is_seeded_and_marked(tmp_path, tiny_archs, monkeypatch) -> None:
    import tise_bench.backbones as bb_mod
    from tise_bench.backbones import build_backbones

    monkeypatch.setattr(bb_mod, "_BUILT", {})
    state = torch.random.get_rng_state()
    cfg = {"random": True, "seed": 0, "device": "cpu", "aesthetic": {"model": TINY_L14}}  # the config key
    a = build_backbones(cfg, {"aesthetic"}, tmp_path)["aesthetic"]
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    b = A.AestheticBackbone(random=True, seed=0, model=TINY_L14, cache_dir=tmp_path, device="cpu")
    c = A.AestheticBackbone(random=True, seed=1, model=TINY_L14, cache_dir=tmp_path, device="cpu")
    assert a.ident == f"aesthetic-{TINY_L14}-random-seed0" and a.describe()["random_weights"]
    assert a.describe()["head_random"] and "RANDOM" in str(a.describe()["model"])
    assert a.weights_hash == b.weights_hash != c.weights_hash
    assert a.settings.quick_gelu and a.settings.tag == "openai"  # OpenAI ViT-L/14's QuickGELU and preprocessing
    x = torch.stack([a.preprocess(_image(100, 80, s)) for s in range(2)])
    np.testing.assert_array_equal(a.forward(x)["score"], b.forward(x)["score"])
    assert not np.array_equal(a.forward(x)["score"], c.forward(x)["score"])
    with pytest.raises(ConfigError, match=r"backbones\.aesthetic\.model='tise-tiny-hps-pref-test'.*1024.*takes 768"):
        A.AestheticBackbone(random=True, model=TINY_H14, cache_dir=tmp_path, device="cpu")
    with pytest.raises(ConfigError, match=r"backbones\.aesthetic\.model='ViT-Q-99': not an open_clip architecture"):
        A.AestheticBackbone(random=True, model="ViT-Q-99", cache_dir=tmp_path, device="cpu")


# --- a whole run -------------------------------------------------------------------------------------------------


def test_run_writes_per_sample_scores_equal_to_the_reference_formulas(tmp_path, tiny_archs) -> None:
    cache, results = tmp_path / "cache", tmp_path / "results"  # no Inception here: no weights files to share
    from tise_bench.runner import run

    cfg = tiny_demo_config(
        cache,
        results,
        "model.suite=[faithful]",
        "bootstrap.replicates=50",
        "metrics.ids=[clip_score,hpsv2,aesthetic]",
        f"backbones.hps.model={TINY_H14}",
        f"backbones.aesthetic.model={TINY_L14}",
    )
    run(cfg)
    folder = results / "demo" / "faithful"
    mj = json.loads((folder / "metrics.json").read_text())
    df = pd.read_parquet(folder / "samples.parquet")
    assert mj["backbones"]["hps"]["version"] == "v2.1" and mj["backbones"]["hps"]["random_weights"] is True
    hps = HpsBackbone(random=True, seed=0, model=TINY_H14, cache_dir=tmp_path, device="cpu")
    aes = A.AestheticBackbone(random=True, seed=0, model=TINY_L14, cache_dir=tmp_path, device="cpu")
    assert (
        mj["backbones"]["hps"]["namespace"] == hps.namespace
        and mj["backbones"]["aesthetic"]["namespace"] == aes.namespace
    )
    imgs = [Image.open(p).convert("RGB") for p in df["file"]]
    tok = open_clip.get_tokenizer("ViT-H-14")
    with torch.no_grad():
        i = hps.net.encode_image(torch.stack([hps_reference_preprocess(im) for im in imgs]), normalize=True)
        t = hps.net.encode_text(tok(list(df["caption"])), normalize=True)
        want_hps = 100.0 * torch.diagonal(i @ t.T).numpy()
        f = aes.net.encode_image(torch.stack([openai_clip_preprocess()(im) for im in imgs])).numpy()
        ref_head = RefMLP(768).eval()
        ref_head.load_state_dict(aes.head.state_dict())
        want_aes = ref_head(torch.from_numpy(normalized(f)).float())[:, 0].numpy()
    np.testing.assert_allclose(df["hpsv2"].to_numpy(), want_hps, rtol=0, atol=1e-4)
    np.testing.assert_allclose(df["aesthetic"].to_numpy(), want_aes, rtol=0, atol=1e-5)
    for m, want in (("hpsv2", want_hps), ("aesthetic", want_aes)):
        assert mj["metrics"][m]["value"] == pytest.approx(float(want.mean()), abs=1e-4)
        assert mj["bootstrap"]["metrics"][m]["kind"] == "mean"
        assert mj["bootstrap"]["metrics"][m]["identity"] == pytest.approx(mj["metrics"][m]["value"], rel=1e-9)
    assert np.isfinite(df["clip_score"]).all()  # CLIP's texts still embedded by CLIP beside HPS's
    assert np.ptp(want_hps) > 0.1
