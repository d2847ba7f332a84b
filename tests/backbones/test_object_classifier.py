"""TISE's object classifier loads from a user checkpoint (raw, wrapped, DataParallel-prefixed) and O-IS
switches from the flagged fallback to it with T = 2.1737587451934814."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tise_bench.backbones.object_classifier import TISE_OBJECT_TEMPERATURE, ObjectClassifierBackbone
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.errors import WeightsNotFoundError
from tise_bench.registry import get_metric


@pytest.fixture(scope="module")
def random_clf():
    return ObjectClassifierBackbone(random=True, seed=3, device="cpu")


def _crop(seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (299, 299, 3), dtype=np.uint8))


def test_checkpoint_formats_load_to_identical_logits(random_clf, tmp_path):
    x = torch.stack([random_clf.preprocess(_crop(i)) for i in range(2)])
    want = random_clf.forward(x)["logits"]
    assert want.shape == (2, 80)
    sd = random_clf.net.state_dict()
    variants = {"raw.pth": sd, "wrapped.pth": {"state_dict": sd},
                "dp.pth": {f"module.{k}": v for k, v in sd.items()}}
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
        got = ObjectClassifierBackbone(weights=str(tmp_path / name), device="cpu").forward(x)["logits"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)


def test_wrong_or_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        ObjectClassifierBackbone(weights=str(tmp_path / "nope.pth"), device="cpu")
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsNotFoundError, match="does not fit torchvision inception_v3"):
        ObjectClassifierBackbone(weights=str(tmp_path / "bad.pth"), device="cpu")


def test_o_is_uses_classifier_logits_with_tise_temperature():
    rng = np.random.default_rng(0)
    obj, inc = rng.normal(size=(30, 80)) * 3, rng.normal(size=(30, 1008))
    recs = [Record(str(i), "x") for i in range(10)]
    base = dict(subset="realism", records=recs, samples=[Sample(i, 0, f"{i}.png", str(i)) for i in range(10)])
    owner = np.repeat(np.arange(10), 3)
    with_clf = MetricContext(**base, gen_features={"crops.objcls_logits": obj, "crops.logits_unbiased": inc,
                                                   "crops.owner": owner})
    without = MetricContext(**base, gen_features={"crops.logits_unbiased": inc, "crops.owner": owner})
    from tise_bench.metrics.inception import inception_score

    tf = {"split_mode": "torch_fidelity"}  # the default (tise) split loop is tested in tests/metrics
    a = get_metric("o_is").compute(with_clf, tf)
    b = get_metric("o_is").compute(without, tf)
    assert a.extras["fallback"] is False and a.extras["temperature"] == TISE_OBJECT_TEMPERATURE
    assert np.isclose(a.value, inception_score(obj, temperature=TISE_OBJECT_TEMPERATURE)[0])
    assert b.extras["fallback"] is True and "warning" in b.extras
    assert np.isclose(b.value, inception_score(inc)[0])
