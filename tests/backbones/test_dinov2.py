"""DINOv2 backbone vs dgm-eval's pipeline, written from scratch here: its transform (torchvision on the PIL image),
DINOv2's position-embedding resampling and DINOv2's forward (blocks with LayerScale, CLS after the final norm), on
locally made checkpoints in Meta's and timm's layouts (no real weights); the random variant (ViT-L/14 under
backbones=random, ViT-S/14 in the tests); fail-fast offline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision.transforms as TF
from PIL import Image

from tise_bench.backbones import build_backbone
from tise_bench.backbones import dinov2 as D
from tise_bench.errors import ConfigError, WeightsNotFoundError

SMALL = "vit_small_patch14_dinov2"


def _image(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = np.repeat(np.repeat(rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)), 4, 0), 4, 1)[:h, :w]
    return Image.fromarray(a.astype(np.uint8))


def _ref_interpolate_pos_encoding(pos_embed: torch.Tensor, w: int, h: int, patch: int = 14) -> torch.Tensor:
    """facebookresearch/dinov2 dinov2/models/vision_transformer.py interpolate_pos_encoding (offset 0.1, no
    antialias), for an input of w x h pixels."""
    n = pos_embed.shape[1] - 1
    pe = pos_embed.float()
    cls, patches = pe[:, 0], pe[:, 1:]
    dim = pe.shape[-1]
    w0, h0 = w // patch, h // patch
    m = int(math.sqrt(n))
    sx, sy = float(w0 + 0.1) / m, float(h0 + 0.1) / m
    patches = torch.nn.functional.interpolate(
        patches.reshape(1, m, m, dim).permute(0, 3, 1, 2), mode="bicubic", antialias=False, scale_factor=(sx, sy)
    )
    assert (w0, h0) == patches.shape[-2:]
    patches = patches.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((cls.unsqueeze(0), patches), dim=1)


def _ref_dinov2_cls(sd: dict[str, torch.Tensor], x: torch.Tensor, heads: int) -> torch.Tensor:
    """DINOv2's DinoVisionTransformer.forward (is_training=False) from a Meta-layout state dict: patch conv, CLS
    token, interpolated position embeddings, pre-norm blocks x + ls1*attn(norm1 x), x + ls2*mlp(norm2 x), final
    LayerNorm (eps 1e-6), CLS token."""
    f = torch.nn.functional
    b = x.shape[0]
    t = f.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=14).flatten(2).transpose(1, 2)
    t = torch.cat((sd["cls_token"].expand(b, -1, -1), t), dim=1)
    t = t + _ref_interpolate_pos_encoding(sd["pos_embed"], x.shape[2], x.shape[3])
    dim = t.shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(depth):
        p = lambda n: sd[f"blocks.{i}.{n}"]  # noqa: E731
        y = f.layer_norm(t, (dim,), p("norm1.weight"), p("norm1.bias"), eps=1e-6)
        qkv = f.linear(y, p("attn.qkv.weight"), p("attn.qkv.bias")).reshape(b, -1, 3, heads, dim // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = ((q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        y = (a @ v).transpose(1, 2).reshape(b, -1, dim)
        t = t + p("ls1.gamma") * f.linear(y, p("attn.proj.weight"), p("attn.proj.bias"))
        y = f.layer_norm(t, (dim,), p("norm2.weight"), p("norm2.bias"), eps=1e-6)
        y = f.linear(
            f.gelu(f.linear(y, p("mlp.fc1.weight"), p("mlp.fc1.bias"))), p("mlp.fc2.weight"), p("mlp.fc2.bias")
        )
        t = t + p("ls2.gamma") * y
    t = f.layer_norm(t, (dim,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)
    return t[:, 0]


def _dgm_eval_transform(img: Image.Image, size: int) -> torch.Tensor:
    """dgm-eval DINOv2Encoder.transform (clean_resize=False)."""
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = TF.Compose([TF.Resize((size, size), TF.InterpolationMode.BICUBIC), TF.ToTensor()])(img)
    return TF.Normalize(mean, std)(x)


@pytest.fixture(scope="module")
def meta_ckpt(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A ViT-S/14 at DINOv2's 518 px (37 x 37 position grid) in Meta's released layout (with mask_token)."""
    net = D.random_dinov2(SMALL, 518, seed=5)
    with torch.no_grad():  # LayerScale != 1 and non-trivial norms, so the test sees them
        for k, v in net.state_dict().items():
            if k.endswith((".gamma", "norm.weight", "norm1.weight", "norm2.weight")):
                v.copy_(torch.empty_like(v).uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(len(k))))
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    sd["mask_token"] = torch.zeros(1, sd["cls_token"].shape[-1])
    out = tmp_path_factory.mktemp("dinov2") / "dinov2_vits14_pretrain.pth"
    torch.save(sd, out)
    return out, sd


def test_pos_embed_resampling_is_dinov2s() -> None:
    pe = torch.randn(1, 1 + 37 * 37, 8, generator=torch.Generator().manual_seed(0))
    ours = D.dinov2_pos_embed(pe, 16)
    assert ours.shape == (1, 257, 8)
    assert torch.equal(ours, _ref_interpolate_pos_encoding(pe, 224, 224))
    plain = torch.nn.functional.interpolate(
        pe[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2), size=(16, 16), mode="bicubic"
    )
    assert not torch.allclose(ours[:, 1:], plain.permute(0, 2, 3, 1).reshape(1, 256, 8))  # the offset matters
    assert D.dinov2_pos_embed(pe, 37) is pe


@pytest.mark.parametrize("size", [(45, 80), (100, 30)])
def test_preprocessing_is_dgm_evals_transform(size) -> None:
    img = _image(*size, seed=1)
    assert torch.equal(D.dinov2_pixels(img, 224), _dgm_eval_transform(img, 224))
    # --clean_resize: dgm-eval resizer.pil_resize (clean-fid's float32 PIL bicubic per channel), / 255
    x = np.array(img).astype(np.float32)
    chans = [
        np.asarray(Image.fromarray(x[:, :, c], mode="F").resize((56, 56), resample=Image.BICUBIC)).clip(0, 255)
        for c in range(3)
    ]
    want = TF.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(
        TF.functional.to_tensor(np.stack(chans, 2).astype(np.float32)) / 255
    )
    assert torch.allclose(D.dinov2_pixels(img, 56, "clean"), want, atol=1e-6, rtol=0)


def test_cls_features_equal_dinov2s_forward_on_metas_checkpoint(meta_ckpt) -> None:
    path, sd = meta_ckpt
    bb = D.Dinov2Backbone(model=SMALL, image_size=56, weights=str(path), device="cpu")
    imgs = [_image(40, 70, 2), _image(90, 60, 3)]
    ours = bb.forward(torch.stack([bb.preprocess(i) for i in imgs]))["cls"]
    with torch.no_grad():
        want = _ref_dinov2_cls(sd, torch.stack([_dgm_eval_transform(i, 56) for i in imgs]), heads=6).numpy()
    assert ours.shape == (2, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, want, rtol=0, atol=2e-5)
    assert np.abs(ours[0] - ours[1]).max() > 1e-2  # the image reaches the CLS token
    assert not bb.is_random and bb.ident == f"dinov2-{SMALL}-lvd142m"
    assert bb.describe()["weights_file"] == str(path) and bb.weights_hash == D.file_sha256(path)


def test_timm_safetensors_file_gives_the_same_features(meta_ckpt, tmp_path) -> None:
    from safetensors.torch import save_file

    path, sd = meta_ckpt
    timm_sd = {k: v.contiguous() for k, v in sd.items() if k != "mask_token"}  # timm's layout for ViT-S/B/L
    st = tmp_path / "model.safetensors"
    save_file(timm_sd, str(st))
    img = torch.stack([D.dinov2_pixels(_image(50, 50, 4), 56)])
    a = D.Dinov2Backbone(model=SMALL, image_size=56, weights=str(path), device="cpu").forward(img)["cls"]
    b = D.Dinov2Backbone(model=SMALL, image_size=56, weights=str(st), device="cpu").forward(img)["cls"]
    np.testing.assert_array_equal(a, b)


def test_random_variant_is_seeded_marked_and_informative() -> None:
    state = torch.get_rng_state()
    a = D.Dinov2Backbone(model=SMALL, image_size=56, random=True, seed=0, device="cpu")
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is untouched
    b = D.Dinov2Backbone(model=SMALL, image_size=56, random=True, seed=0, device="cpu")
    c = D.Dinov2Backbone(model=SMALL, image_size=56, random=True, seed=1, device="cpu")
    assert a.weights_hash == b.weights_hash != c.weights_hash
    assert a.is_random and "random-seed0" in a.ident and a.describe()["random_weights"] is True
    x = torch.stack([a.preprocess(_image(56, 56, s)) for s in range(6)])
    f = a.forward(x)["cls"]
    np.testing.assert_array_equal(f, b.forward(x)["cls"])
    assert f.std(axis=0).mean() > 0.05  # LayerScale 1: features differ across images (FD is not degenerate)


def test_random_yaml_builds_dinov2s_vit_l_14(monkeypatch, tmp_path) -> None:
    """backbones=random keeps FD-DINOv2's architecture, ViT-L/14 at 224 (the seeded build is intercepted here and
    made on ViT-S/14 at 56: ViT-L's init takes seconds and its forward ~1 s per image on a CPU, see the README)."""
    import yaml

    import tise_bench.backbones as bb_mod
    from tise_bench.backbones import build_backbones

    block = yaml.safe_load((Path(bb_mod.__file__).parent.parent / "configs/backbones/random.yaml").read_text())[
        "dinov2"
    ]
    assert block == {}  # the config dataclass's default model: no smaller architecture
    monkeypatch.setattr(bb_mod, "_BUILT", {})
    real, calls = D._architecture, []

    def arch(model: str, image_size: int, *, meta_device: bool) -> torch.nn.Module:
        calls.append((model, image_size, meta_device))
        return real(SMALL, 56, meta_device=meta_device)

    monkeypatch.setattr(D, "_architecture", arch)
    bb = build_backbones({"random": True, "seed": 2, "device": "cpu", "dinov2": block}, {"dinov2"}, tmp_path)["dinov2"]
    assert calls == [("vit_large_patch14_dinov2", 224, False)]
    assert bb.ident == "dinov2-vit_large_patch14_dinov2-random-seed2" and bb.describe()["random_weights"] is True
    net: Any = real("vit_large_patch14_dinov2", 224, meta_device=True)  # ViT-L/14: no init on the meta device
    assert (len(net.blocks), net.embed_dim, tuple(net.patch_embed.patch_size)) == (24, 1024, (14, 14))
    assert tuple(net.pos_embed.shape) == (1, 1 + 16 * 16, 1024)


def test_namespace_covers_every_input(meta_ckpt) -> None:
    path, _ = meta_ckpt
    base = dict(model=SMALL, weights=str(path), device="cpu")
    names = {
        D.Dinov2Backbone(**base, image_size=56).namespace,
        D.Dinov2Backbone(**base, image_size=70).namespace,
        D.Dinov2Backbone(**base, image_size=56, resize="clean").namespace,
        D.Dinov2Backbone(model=SMALL, image_size=56, random=True, device="cpu").namespace,
    }
    assert len(names) == 4


def test_config_block_and_errors(meta_ckpt, tmp_path) -> None:
    path, _ = meta_ckpt
    bb = build_backbone(
        "dinov2",
        {"model": SMALL, "image_size": 56, "weights": str(path)},
        random=False,
        seed=0,
        cache_dir=tmp_path,
        device="cpu",
    )
    assert bb.name == "dinov2" and bb.provides == ("cls",) and bb.image_size == 56
    assert (D.Dinov2Config.model, D.Dinov2Config.image_size, D.Dinov2Config.resize) == (
        "vit_large_patch14_dinov2",
        224,
        "pil",
    )
    with pytest.raises(ConfigError, match="backbones.dinov2.model"):
        D.Dinov2Backbone(model="vit_base_patch16_224", random=True, device="cpu")
    with pytest.raises(ConfigError, match="image_size"):
        D.Dinov2Backbone(model=SMALL, image_size=50, random=True, device="cpu")
    with pytest.raises(ConfigError, match="resize"):
        D.Dinov2Backbone(model=SMALL, image_size=56, resize="bilinear", random=True, device="cpu")
    with pytest.raises(WeightsNotFoundError, match="set backbones.dinov2.model"):  # a ViT-S file for ViT-B
        D.Dinov2Backbone(model="vit_base_patch14_dinov2", image_size=56, weights=str(path), device="cpu")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        D.Dinov2Backbone(weights=str(tmp_path / "nope.pth"), device="cpu")


def test_real_weights_offline_fail_fast_naming_the_files(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TISE_OFFLINE", "1")
    monkeypatch.setattr(D, "_hf_cached", lambda repo: None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError) as e:
        D.Dinov2Backbone(device="cpu")
    msg = str(e.value)
    assert "timm/vit_large_patch14_dinov2.lvd142m" in msg and "dinov2_vitl14_pretrain.pth" in msg
    assert "backbones.dinov2.weights=" in msg and "backbones=random" in msg
