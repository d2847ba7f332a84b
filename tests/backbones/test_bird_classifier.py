"""Issue 9, defect 8 (backbone side): TISE's CUB bird classifier as a backbone: TF-slim Inception-v3 in PyTorch
form (average pools exclude padding, BatchNorm without gamma), TISE's preprocessing, background logit dropped,
the slim-checkpoint converter's name table / EMA / shape checks, config reachability, clear errors.
(The converter is checked against a synthetic slim variable dict only: TISE's real checkpoint is not here.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models.inception import InceptionA

from tise_bench.backbones import build_backbone
from tise_bench.backbones.bird_classifier import (
    EMA,
    TISE_BIRD_TEMPERATURE,
    BirdClassifierBackbone,
    TFSlimInception3,
    convert_slim_variables,
    main,
    slim_conv_scopes,
)
from tise_bench.errors import WeightsNotFoundError


@pytest.fixture(scope="module")
def bird_net() -> TFSlimInception3:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = TFSlimInception3(51)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics, gamma 1 as slim
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


def _slim_vars(net: torch.nn.Module) -> dict[str, np.ndarray]:
    """What TISE's checkpoint holds (EMA shadows), written from a torch net through the documented name table."""
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    out = {}
    for tv, scope in slim_conv_scopes().items():
        out[f"{scope}/weights{EMA}"] = sd[f"{tv}.conv.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        out[f"{scope}/BatchNorm/beta{EMA}"] = sd[f"{tv}.bn.bias"]
        out[f"{scope}/BatchNorm/moving_mean{EMA}"] = sd[f"{tv}.bn.running_mean"]
        out[f"{scope}/BatchNorm/moving_variance{EMA}"] = sd[f"{tv}.bn.running_var"]
        out[f"{scope}/weights"] = np.zeros(1)  # raw (non-EMA) values must not be the ones used
    out[f"logits/logits/weights{EMA}"] = sd["fc.weight"].T
    out[f"logits/logits/biases{EMA}"] = sd["fc.bias"]
    return out


def test_average_pools_exclude_padding_like_tf():
    """TF-slim's SAME 3x3 average pool divides by the in-image count; torchvision's InceptionA counts padding."""
    torch.manual_seed(0)
    ours, tv = TFSlimInception3(51).Mixed_5b, InceptionA(192, pool_features=32)
    tv.load_state_dict(ours.state_dict())
    ours.eval(), tv.eval()
    x = torch.rand(1, 192, 9, 9)
    with torch.no_grad():
        a, b = ours(x), tv(x)
        want_pool = ours.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
    np.testing.assert_allclose(a[:, -32:], want_pool, rtol=1e-6)  # branch_pool comes last in the concat
    torch.testing.assert_close(a[:, :-32], b[:, :-32])
    assert not torch.allclose(a[:, -32:], b[:, -32:])


def test_backbone_drops_background_and_uses_tise_preprocessing(bird_net, tmp_path):
    path = tmp_path / "bird.pth"
    sd = {k: v for k, v in bird_net.state_dict().items() if not k.endswith(".bn.weight")}  # slim: no gamma
    torch.save({"state_dict": sd}, path)
    bb = BirdClassifierBackbone(weights=str(path), device="cpu", cache_dir=tmp_path)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8))
    got = bb.forward(bb.preprocess(img)[None])["logits"]
    # TISE: scipy.misc.imresize(img, (299, 299, 3), "bilinear") == PIL BILINEAR, then /127.5 - 1, logits[:, 1:]
    arr = np.asarray(img.resize((299, 299), Image.BILINEAR)).astype(np.float32) / 127.5 - 1.0
    with torch.no_grad():
        want = bird_net(torch.from_numpy(arr).permute(2, 0, 1)[None])[:, 1:].numpy()
    assert got.shape == (1, 50)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    d = bb.describe()
    assert d["random_weights"] is False and d["temperature"] == 0.5980541706085205 == TISE_BIRD_TEMPERATURE
    assert d["background_dropped"] is True and d["conversion_verified"] is False


def test_slim_converter_maps_every_variable_from_the_ema(bird_net, tmp_path):
    variables = _slim_vars(bird_net)
    sd = convert_slim_variables(variables)
    for k, v in bird_net.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(sd[k], v, msg=k)
    np.savez(tmp_path / "slim.npz", **variables)  # the documented command line
    main([str(tmp_path / "slim.npz"), str(tmp_path / "out.pth")])
    bb = BirdClassifierBackbone(weights=str(tmp_path / "out.pth"), device="cpu", cache_dir=tmp_path)
    x = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8)
    with torch.no_grad():
        np.testing.assert_allclose(
            bb.forward(x)["logits"], bird_net(x.float() / 127.5 - 1.0)[:, 1:].numpy(), rtol=1e-5, atol=1e-5
        )
    swapped = dict(variables)  # 1x3 and 3x1 kernels swapped: the shape check names the variable
    a, b = "mixed_8x8x2048a/branch3x3/Conv_1/weights" + EMA, "mixed_8x8x2048a/branch3x3/Conv_2/weights" + EMA
    swapped[a], swapped[b] = variables[b], variables[a]
    with pytest.raises(WeightsNotFoundError, match="mixed_8x8x2048a/branch3x3/Conv_1/weights"):
        convert_slim_variables(swapped)
    no_ema = {k: v for k, v in variables.items() if k != "conv0/weights" + EMA}
    with pytest.raises(WeightsNotFoundError, match="conv0/weights/ExponentialMovingAverage"):
        convert_slim_variables(no_ema)


def test_config_reachability_and_clear_errors(bird_net, tmp_path):
    with pytest.raises(WeightsNotFoundError, match="backbones.bird_classifier.weights"):
        build_backbone("bird_classifier", {"weights": None}, random=False, seed=0, cache_dir=tmp_path, device="cpu")
    with pytest.raises(WeightsNotFoundError, match=r"backbones.bird_classifier.weights=.*nope\.pth does not exist"):
        build_backbone(
            "bird_classifier",
            {"weights": str(tmp_path / "nope.pth")},
            random=False,
            seed=0,
            cache_dir=tmp_path,
            device="cpu",
        )
    torch.save(TFSlimInception3(201).state_dict(), tmp_path / "wrong.pth")  # 200 classes: not TISE's CUB model
    with pytest.raises(WeightsNotFoundError, match="does not fit Inception-v3 with 50 \\+ 1 classes"):
        BirdClassifierBackbone(weights=str(tmp_path / "wrong.pth"), device="cpu", cache_dir=tmp_path)
    torch.save(bird_net.state_dict(), tmp_path / "bird.pth")
    real = build_backbone(
        "bird_classifier",
        {"weights": str(tmp_path / "bird.pth")},
        random=True,
        seed=0,
        cache_dir=tmp_path,
        device="cpu",
    )  # a file given under backbones=random is used
    assert real.is_random is False and real.describe()["ident"].startswith("birdcls-inception_v3-50bg-bird")


def test_random_bird_classifier_is_seeded_and_does_not_collapse(tmp_path):
    from helpers import structured_images

    bb = build_backbone("bird_classifier", {"weights": None}, random=True, seed=0, cache_dir=tmp_path, device="cpu")
    assert bb.is_random and bb.describe()["random_weights"] is True
    imgs = [Image.open(p).convert("RGB") for p in structured_images(tmp_path / "i", 3, seed=1, size=48)]
    out = bb.forward(torch.stack([bb.preprocess(i) for i in imgs]))["logits"]
    assert out.shape == (3, 50) and out.std(0).mean() > 0.1
