"""TISE's object classifier loads from a user checkpoint (raw, wrapped, DataParallel-prefixed) and O-IS
switches from the flagged fallback to it with T = 2.1737587451934814."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tise_bench.backbones.object_classifier import ObjectClassifierBackbone
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.errors import WeightsNotFoundError
from tise_bench.registry import get_metric


@pytest.fixture(scope="module")
def random_clf(tmp_path_factory):
    return ObjectClassifierBackbone(random=True, seed=3, device="cpu", cache_dir=tmp_path_factory.mktemp("c"))


def _crop(seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (299, 299, 3), dtype=np.uint8))


@pytest.mark.slow
def test_checkpoint_formats_load_to_identical_logits(random_clf, tmp_path):
    x = torch.stack([random_clf.preprocess(_crop(i)) for i in range(2)])
    want = random_clf.forward(x)["logits"]
    assert want.shape == (2, 80)
    sd = random_clf.net.state_dict()
    variants = {"raw.pth": sd, "wrapped.pth": {"state_dict": sd}, "dp.pth": {f"module.{k}": v for k, v in sd.items()}}
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
        got = ObjectClassifierBackbone(weights=str(tmp_path / name), device="cpu", cache_dir=tmp_path / "c").forward(x)[
            "logits"
        ]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)


def test_wrong_or_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        ObjectClassifierBackbone(weights=str(tmp_path / "nope.pth"), device="cpu", cache_dir=tmp_path)
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsNotFoundError, match="does not fit torchvision inception_v3"):
        ObjectClassifierBackbone(weights=str(tmp_path / "bad.pth"), device="cpu", cache_dir=tmp_path)


def test_o_is_uses_classifier_logits_with_tise_temperature():
    rng = np.random.default_rng(0)
    obj, inc = rng.normal(size=(30, 80)) * 3, rng.normal(size=(30, 1008))
    recs = [Record(str(i), "x") for i in range(10)]
    base = dict(subset="realism", records=recs, samples=[Sample(i, 0, f"{i}.png", str(i)) for i in range(10)])
    owner = np.repeat(np.arange(10), 3)
    with_clf = MetricContext(
        **base, gen_features={"crops.objcls_logits": obj, "crops.logits_unbiased": inc, "crops.owner": owner}
    )
    without = MetricContext(**base, gen_features={"crops.logits_unbiased": inc, "crops.owner": owner})
    from tise_bench.metrics.inception import inception_score

    tf = {"split_mode": "torch_fidelity"}  # the default (tise) split loop is tested in tests/metrics
    a = get_metric("o_is").compute(with_clf, tf)
    b = get_metric("o_is").compute(without, tf)
    t = 2.1737587451934814  # TISE object_centric_inception_score.py: temperature = 2.1737587451934814
    assert a.extras["fallback"] is False and a.extras["temperature"] == t
    assert np.isclose(a.value, inception_score(obj, temperature=t)[0])
    assert b.extras["fallback"] is True and "warning" in b.extras
    assert np.isclose(b.value, inception_score(inc)[0])


def _tise_net(ckpt):
    """TISE's own construction: inception_v3 with 80-way AuxLogits.fc and fc, its state dict loaded strictly."""
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    net.AuxLogits.fc = torch.nn.Linear(768, 80)
    net.fc = torch.nn.Linear(2048, 80)
    net.load_state_dict(torch.load(ckpt))
    return net.eval()


def test_pool3_and_logits_equal_tise_o_fid_and_o_is_from_scratch(tise_objcls_ckpt, tmp_path):
    """pool3 = TISE O-FID (Resize(299)+ToTensor, resize_input align_corners, normalize_input, blocks 0-3);
    logits = TISE O-IS (Resize(299)+ToTensor+Normalize(0.5, 0.5), full network)."""
    import torch.nn.functional as F
    from torchvision import transforms

    clf = ObjectClassifierBackbone(weights=str(tise_objcls_ckpt), device="cpu", cache_dir=tmp_path)
    assert clf.provides == ("logits", "pool3") and clf.preproc_version != "crop299-pm1-v1"
    crops = [_crop(0), _crop(1).resize((120, 90))]  # a 299 crop (ours) and another size (TISE's Resize)
    got = clf.forward(torch.stack([clf.preprocess(c) for c in crops]))

    net = _tise_net(tise_objcls_ckpt)
    blocks = torch.nn.Sequential(
        net.Conv2d_1a_3x3,
        net.Conv2d_2a_3x3,
        net.Conv2d_2b_3x3,
        torch.nn.MaxPool2d(kernel_size=3, stride=2),
        net.Conv2d_3b_1x1,
        net.Conv2d_4a_3x3,
        torch.nn.MaxPool2d(kernel_size=3, stride=2),
        net.Mixed_5b,
        net.Mixed_5c,
        net.Mixed_5d,
        net.Mixed_6a,
        net.Mixed_6b,
        net.Mixed_6c,
        net.Mixed_6d,
        net.Mixed_6e,
        net.Mixed_7a,
        net.Mixed_7b,
        net.Mixed_7c,
        torch.nn.AdaptiveAvgPool2d(output_size=(1, 1)),
    )
    with torch.no_grad():
        x = torch.stack([transforms.Compose([transforms.Resize((299, 299)), transforms.ToTensor()])(c) for c in crops])
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=True).clone()
        x[:, 0] = x[:, 0] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x[:, 1] = x[:, 1] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x[:, 2] = x[:, 2] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        want_pool3 = blocks(x).reshape(2, -1).numpy()
        ois = transforms.Compose(
            [
                transforms.Resize((299, 299)),
                transforms.ToTensor(),
                transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            ]
        )
        want_logits = net(torch.stack([ois(c) for c in crops])).numpy()
    assert got["pool3"].shape == (2, 2048) and got["logits"].shape == (2, 80)
    np.testing.assert_allclose(got["pool3"], want_pool3, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got["logits"], want_logits, rtol=1e-6, atol=1e-6)
    assert got["pool3"].std(0).mean() > 0  # features vary across the two crops


def test_random_classifier_is_seeded_and_does_not_collapse(random_clf, tmp_path):
    from helpers import structured_images

    imgs = [Image.open(p).convert("RGB").resize((299, 299)) for p in structured_images(tmp_path, 4, seed=2, size=64)]
    out = random_clf.forward(torch.stack([random_clf.preprocess(i) for i in imgs]))
    assert out["pool3"].std(0).mean() > 1e-3 and out["logits"].std(0).mean() > 0.1
    assert len(set(out["logits"].argmax(1).tolist())) > 1
    again = ObjectClassifierBackbone(random=True, seed=3, device="cpu", cache_dir=random_clf.weights_path.parent.parent)
    assert again.weights_hash == random_clf.weights_hash and again.describe()["random_weights"] is True
