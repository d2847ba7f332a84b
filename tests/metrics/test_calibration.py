"""Temperature scaling and ECE on synthetic over-confident logits; the calibrate CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tise_bench.calibrate import main
from tise_bench.metrics.calibration import expected_calibration_error, fit_temperature, softmax


def _overconfident(n: int = 4000, c: int = 10, scale: float = 3.0, seed: int = 0):
    """Labels sampled from softmax(z); the model reports scale·z, i.e. is over-confident by T = scale."""
    rng = np.random.default_rng(seed)
    z = 1.5 * rng.normal(size=(n, c))
    p = softmax(z)
    y = (p.cumsum(axis=1) > rng.uniform(size=(n, 1))).argmax(axis=1)
    return scale * z, y


def test_fit_temperature_recovers_scale_and_lowers_ece() -> None:
    logits, y = _overconfident()
    t = fit_temperature(logits, y)
    assert t == pytest.approx(3.0, rel=0.05)
    before = expected_calibration_error(softmax(logits), y)
    after = expected_calibration_error(softmax(logits, t), y)
    assert after < before and after < 0.03


def test_ece_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]])
    y = np.array([0, 1, 1, 0])
    # bins (15): 0.9 → bin 13, 0.8 → bin 11, 0.7 → bin 10, 0.55 → bin 8; accuracies 1, 0, 1, 1
    want = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.55)) / 4
    assert expected_calibration_error(probs, y) == pytest.approx(want)
    assert expected_calibration_error(probs, y, n_bins=1) == pytest.approx(abs(0.75 - 0.7375))


def test_cli_prints_and_writes_only_with_out(tmp_path, capsys) -> None:
    logits, y = _overconfident(n=1500, seed=1)
    bg = np.full((len(y), 1), 50.0)  # a dominating background column that --drop-last must remove
    f = tmp_path / "val.npz"
    np.savez(f, z=np.concatenate([logits, bg], axis=1), lab=y)
    assert main(["--logits", str(f), "--logits-key", "z", "--labels-key", "lab", "--drop-last"]) == 0
    out = capsys.readouterr().out
    assert "T = " in out and "ECE" in out and sorted(p.name for p in tmp_path.iterdir()) == ["val.npz"]
    res_file = tmp_path / "t.json"
    assert (
        main(["--logits", str(f), "--logits-key", "z", "--labels-key", "lab", "--drop-last", "--out", str(res_file)])
        == 0
    )
    res = json.loads(res_file.read_text())
    assert res["temperature"] == pytest.approx(3.0, rel=0.1) and res["n_classes"] == 10
    assert res["ece_after"] < res["ece_before"]
    assert main(["--logits", str(f)]) == 2 and "has no array 'logits'" in capsys.readouterr().err
