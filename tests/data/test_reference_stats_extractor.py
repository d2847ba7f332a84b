"""data.reference_stats must say which feature extractor made it (issue 9, defect 11)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from tise_bench.errors import ConfigError, DataError
from tise_bench.evalset import feature_extractor_id, load_eval_set, load_reference_stats, write_reference_stats

D = 8
TF = "inception-v3-compat-tf2015:6726825d0af5f729"
RANDOM = "inception-v3-compat-random-seed0:0123456789abcdef"


def _keyless(path):
    np.savez(path, mu=np.zeros(D), sigma=np.eye(D))  # as torch-fidelity / pytorch-fid / TISE's coco_val.npz
    return str(path)


def test_extractor_id_names_network_and_weights():
    bb = SimpleNamespace(ident="inception-v3-compat-tf2015", weights_hash="6726825d0af5f729" + "0" * 48)
    assert feature_extractor_id(bb) == TF


def test_own_file_round_trip_and_mismatch_refused(tmp_path):
    p = write_reference_stats(tmp_path / "ref.npz", np.ones(D), np.eye(D), extractor=TF)
    mu, sigma = load_reference_stats(str(p), D, extractor=TF)
    assert mu.shape == (D,) and np.allclose(sigma, np.eye(D))
    with pytest.raises(
        DataError,
        match=r"made by 'inception-v3-compat-tf2015:6726825d0af5f729', but this run's "
        r"Inception is 'inception-v3-compat-random-seed0",
    ):
        load_reference_stats(str(p), D, extractor=RANDOM)
    with pytest.raises(ConfigError, match="unset data.reference_stats_extractor=pytorch-fid"):
        load_reference_stats(str(p), D, extractor=TF, declared="pytorch-fid")


def test_keyless_file_needs_a_declared_extractor(tmp_path):
    p = _keyless(tmp_path / "coco_val.npz")
    with pytest.raises(
        DataError, match=r"does not say which feature extractor made it.*data.reference_stats_extractor"
    ):
        load_reference_stats(p, D, extractor=TF)
    for name in ("torch-fidelity-inception-v3-compat", "pytorch-fid"):
        mu, _ = load_reference_stats(p, D, extractor=TF, declared=name)
        assert mu.shape == (D,)
    with pytest.raises(DataError, match=r"made by pytorch-fid .* not the TF 2015 weights"):
        load_reference_stats(p, D, extractor=RANDOM, declared="pytorch-fid")


def test_tise_torchvision_stats_refused_with_the_reason(tmp_path):
    p = _keyless(tmp_path / "coco_val.npz")
    with pytest.raises(
        DataError,
        match=r"(?s)cannot be used: TISE's image_realism/FID .* torchvision's ImageNet "
        r"inception_v3\(pretrained=True\).*not comparable",
    ):
        load_reference_stats(p, D, extractor=TF, declared="tise-torchvision")


def test_eval_set_config_validates_the_declared_name(tmp_path):
    man = tmp_path / "m.jsonl"
    man.write_text(json.dumps({"id": "a", "caption": "x"}) + "\n")
    stats = _keyless(tmp_path / "s.npz")
    cfg = {"name": "t", "manifest": str(man), "reference_stats": stats}
    assert (
        load_eval_set({**cfg, "reference_stats_extractor": "pytorch-fid"}, tmp_path).reference_stats_extractor
        == "pytorch-fid"
    )
    assert load_eval_set(cfg, tmp_path).reference_stats_extractor is None
    with pytest.raises(
        ConfigError, match=r"reference_stats_extractor='tf' is not known; choose one of \['pytorch-fid'"
    ):
        load_eval_set({**cfg, "reference_stats_extractor": "tf"}, tmp_path)
    with pytest.raises(
        ConfigError, match="reference_stats_extractor=pytorch-fid is set but data.reference_stats is not"
    ):
        load_eval_set({"name": "t", "manifest": str(man), "reference_stats_extractor": "pytorch-fid"}, tmp_path)
