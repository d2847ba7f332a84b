"""CLIP real-weights path, offline: open_clip's downloader is stood in for by one that writes a locally made
checkpoint (a tiny open_clip architecture's state dict, in the hub's real file formats) where the real
download would put it. Plus per-tag settings (QuickGELU, preprocessing) from open_clip's pretrained config."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import torch
from PIL import Image

import open_clip
from open_clip import factory as oc_factory
from open_clip import pretrained as oc_pretrained
from open_clip.transformer import QuickGELU
from tise_bench.backbones import clip as clip_mod
from tise_bench.backbones.clip import ClipBackbone, tag_settings
from tise_bench.errors import ConfigError, WeightsNotFoundError

TINY = "tise-tiny-clip-test"
TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
REPO = "tise-test/tiny-clip"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _tag(**kw) -> dict:
    return {
        "url": "",
        "hf_hub": f"{REPO}/",
        "mean": OPENAI_MEAN,
        "std": OPENAI_STD,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        **kw,
    }


@pytest.fixture()
def tiny(monkeypatch, tmp_path):
    """Register the tiny architecture and its tags (restored after the test); an empty HF hub cache."""
    monkeypatch.setitem(oc_factory._MODEL_CONFIGS, TINY, TINY_CFG)
    siglip = dict(oc_pretrained.get_pretrained_cfg("ViT-B-16-SigLIP", "webli"))  # the real SigLIP entry
    monkeypatch.setitem(
        oc_pretrained._PRETRAINED,
        TINY,
        {
            "hubqg": _tag(quick_gelu=True),
            "siglip_like": {**siglip, "hf_hub": f"{REPO}/"},
            "urlonly": _tag(hf_hub="", url="https://example.invalid/weights/tiny-clip.pt"),
        },
    )
    import huggingface_hub.constants as hfc

    hub = tmp_path / "hf-hub"
    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.cache/clip for URL downloads
    return hub


def _state_dict(seed: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = open_clip.create_model(TINY, pretrained=None)
    return {k: v.contiguous().clone() for k, v in net.state_dict().items()}


def _safetensors_bytes(sd: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(sd)


def _torch_bytes(sd: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def _go_online(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(clip_mod, "host_reachable", lambda *a, **k: True)


def _fake_hub(monkeypatch, hub: Path, files: dict[str, bytes], calls: list) -> None:
    """open_clip's ``hf_hub_download`` stand-in: writes the file in the hub cache layout
    (``models--org--name/{refs/main, snapshots/<rev>/<file>}``) that ``try_to_load_from_cache`` reads."""
    from huggingface_hub.errors import EntryNotFoundError

    def download(repo_id: str, filename: str, revision=None, cache_dir=None, **_):
        calls.append((repo_id, filename))
        if filename not in files:
            raise EntryNotFoundError(f"{repo_id}/{filename} not on the (fake) hub")
        rev = "0" * 40
        root = Path(cache_dir or hub) / f"models--{repo_id.replace('/', '--')}"
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(rev)
        target = root / "snapshots" / rev / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[filename])
        return str(target)

    monkeypatch.setattr(oc_pretrained, "hf_hub_download", download)


def _no_download(monkeypatch) -> None:
    def refuse(*a, **k):
        raise AssertionError("the downloader must not be called when the weights are cached")

    monkeypatch.setattr(oc_pretrained, "hf_hub_download", refuse)
    monkeypatch.setattr(oc_pretrained, "download_pretrained_from_url", refuse)


def _same_weights(bb: ClipBackbone, sd: dict[str, torch.Tensor]) -> bool:
    got = bb.net.state_dict()
    return all(torch.equal(got[k].cpu(), v) for k, v in sd.items())


def test_first_run_downloads_the_file_and_hashes_it_second_run_uses_the_cache(tiny, monkeypatch, tmp_path) -> None:
    sd = _state_dict()
    data = _safetensors_bytes(sd)
    calls: list = []
    _go_online(monkeypatch)
    _fake_hub(monkeypatch, tiny, {"open_clip_model.safetensors": data}, calls)
    bb = ClipBackbone(model=TINY, pretrained="hubqg", cache_dir=tmp_path / "c1", device="cpu")
    assert calls == [(REPO, "open_clip_model.safetensors")]  # open_clip's own order: safetensors first
    assert Path(bb.weights_path).read_bytes() == data and str(tiny) in bb.weights_path
    assert bb.weights_hash == hashlib.sha256(data).hexdigest()
    assert _same_weights(bb, sd)
    assert bb.describe()["weights_file"] == bb.weights_path

    _no_download(monkeypatch)  # second run: found in the cache, never downloaded
    monkeypatch.setattr(clip_mod, "host_reachable", lambda *a, **k: False)
    bb2 = ClipBackbone(model=TINY, pretrained="hubqg", cache_dir=tmp_path / "c2", device="cpu")
    assert bb2.weights_path == bb.weights_path and bb2.weights_hash == bb.weights_hash
    assert bb2.namespace == bb.namespace


def test_hub_without_safetensors_falls_back_to_the_bin_file(tiny, monkeypatch, tmp_path) -> None:
    sd = _state_dict(seed=4)
    data = _torch_bytes(sd)
    calls: list = []
    _go_online(monkeypatch)
    _fake_hub(monkeypatch, tiny, {"open_clip_pytorch_model.bin": data}, calls)
    bb = ClipBackbone(model=TINY, pretrained="hubqg", cache_dir=tmp_path / "c", device="cpu")
    assert [f for _, f in calls] == ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    assert bb.weights_hash == hashlib.sha256(data).hexdigest() and _same_weights(bb, sd)
    _no_download(monkeypatch)
    assert (
        ClipBackbone(model=TINY, pretrained="hubqg", cache_dir=tmp_path / "c", device="cpu").weights_path
        == bb.weights_path
    )


def test_url_download_lands_in_open_clips_url_cache(tiny, monkeypatch, tmp_path) -> None:
    data = _torch_bytes(_state_dict(seed=5))

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(data))}

    _go_online(monkeypatch)
    monkeypatch.setattr(oc_pretrained.urllib.request, "urlopen", lambda url: Response(data))
    bb = ClipBackbone(model=TINY, pretrained="urlonly", cache_dir=tmp_path / "c", device="cpu")
    assert Path(bb.weights_path) == tmp_path / "home" / ".cache" / "clip" / "tiny-clip.pt"
    assert bb.weights_hash == hashlib.sha256(data).hexdigest()
    _no_download(monkeypatch)
    assert (
        ClipBackbone(model=TINY, pretrained="urlonly", cache_dir=tmp_path / "c", device="cpu").weights_hash
        == bb.weights_hash
    )


def test_corrupt_cached_download_names_the_file_and_the_fix(tiny, monkeypatch, tmp_path) -> None:
    _go_online(monkeypatch)
    _fake_hub(monkeypatch, tiny, {"open_clip_model.safetensors": b"not a checkpoint" * 8}, [])
    with pytest.raises(WeightsNotFoundError) as e:
        ClipBackbone(model=TINY, pretrained="hubqg", cache_dir=tmp_path / "c", device="cpu")
    msg = str(e.value)
    cached = next(tiny.rglob("open_clip_model.safetensors"))
    assert str(cached) in msg and "delete" in msg and "backbones.clip.weights" in msg


def test_corrupt_local_file_names_the_file(tiny, tmp_path) -> None:
    bad = tmp_path / "broken.bin"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(WeightsNotFoundError, match="broken.bin"):
        ClipBackbone(model=TINY, pretrained="hubqg", weights=str(bad), cache_dir=tmp_path / "c", device="cpu")


def test_offline_and_not_cached_is_a_clear_error(tiny, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(clip_mod, "host_reachable", lambda *a, **k: False)
    with pytest.raises(WeightsNotFoundError, match="not cached and the network is unreachable"):
        ClipBackbone(model=TINY, pretrained="hubqg", cache_dir=tmp_path / "c", device="cpu")


# ---- defect 10: per-tag QuickGELU and preprocessing --------------------------------------------------------


def _transform_parts(bb: ClipBackbone) -> dict:
    from torchvision import transforms as T

    out = {"crop": False}
    for t in bb._preprocess.transforms:
        if isinstance(t, T.Resize):
            out["resize"], out["interp"] = (
                (list(t.size) if isinstance(t.size, (list, tuple)) else t.size),
                t.interpolation.value,
            )
        elif isinstance(t, T.CenterCrop):
            out["crop"] = True
        elif isinstance(t, T.Normalize):
            out["mean"], out["std"] = tuple(t.mean), tuple(t.std)
    return out


def _has_quick_gelu(bb: ClipBackbone) -> bool:
    return any(isinstance(m, QuickGELU) for m in bb.net.modules())


@pytest.mark.parametrize(
    "model,tag,qg,mean,interp,resize",
    [
        ("ViT-B-32", "openai", True, OPENAI_MEAN, "bicubic", "shortest"),
        ("ViT-B-32", "laion2b_s34b_b79k", False, OPENAI_MEAN, "bicubic", "shortest"),
        ("ViT-B-32-quickgelu", "metaclip_400m", True, OPENAI_MEAN, "bicubic", "shortest"),
        ("ViT-B-16-SigLIP", "webli", False, (0.5, 0.5, 0.5), "bicubic", "squash"),
    ],
)
def test_tag_settings_follow_open_clips_pretrained_config(model, tag, qg, mean, interp, resize) -> None:
    st = tag_settings(model, tag)
    assert (st.quick_gelu, st.mean, st.interpolation, st.resize_mode) == (qg, mean, interp, resize)


def test_unknown_tag_with_real_weights_is_refused_but_null_means_defaults() -> None:
    with pytest.raises(ConfigError, match="not an open_clip pretrained tag of ViT-B-16-SigLIP.*webli"):
        tag_settings("ViT-B-16-SigLIP", "openai")
    st = tag_settings("ViT-B-32", None)
    assert st.tag is None and not st.quick_gelu and st.mean == OPENAI_MEAN and "defaults" in st.source


def test_local_file_takes_quick_gelu_and_preprocessing_from_the_tag_it_names(tiny, tmp_path) -> None:
    sd = _state_dict(seed=6)
    f = tmp_path / "tiny.safetensors"
    f.write_bytes(_safetensors_bytes(sd))
    sig = ClipBackbone(model=TINY, pretrained="siglip_like", weights=str(f), cache_dir=tmp_path / "c", device="cpu")
    assert _same_weights(sig, sd)
    parts = _transform_parts(sig)  # SigLIP: squash to the square (no centre crop), mean = std = 0.5
    assert parts == {
        "crop": False,
        "resize": [32, 32],
        "interp": "bicubic",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
    }
    assert not _has_quick_gelu(sig)
    d = sig.describe()
    assert d["pretrained_tag"] == "siglip_like" and d["resize_mode"] == "squash" and d["weights_file"] == str(f)

    qg = ClipBackbone(model=TINY, pretrained="hubqg", weights=str(f), cache_dir=tmp_path / "c", device="cpu")
    assert _has_quick_gelu(qg)  # the tag says quick_gelu (it is not called "openai")
    parts = _transform_parts(qg)
    assert parts["crop"] and parts["resize"] == 32 and parts["mean"] == OPENAI_MEAN
    # same file, same weights hash; other settings -> other cache namespace
    assert qg.weights_hash == sig.weights_hash and qg.namespace != sig.namespace

    x = sig.preprocess(Image.new("RGB", (40, 20), (255, 0, 0)))
    assert x.shape == (3, 32, 32) and torch.allclose(x[0], torch.ones(32, 32))  # (1 - 0.5) / 0.5 on red


def test_preproc_version_changes_with_each_preprocessing_field() -> None:
    base = tag_settings("ViT-B-32", "openai")
    from dataclasses import replace

    variants = [
        replace(base, mean=(0.5, 0.5, 0.5)),
        replace(base, std=(0.5, 0.5, 0.5)),
        replace(base, interpolation="bilinear"),
        replace(base, resize_mode="squash"),
        replace(base, quick_gelu=False),
    ]
    versions = {base.version(224)} | {v.version(224) for v in variants}
    assert len(versions) == 1 + len(variants)
    assert base.version(224) != base.version(256)
