"""CMMD vs the reference's ``mmd`` (google-research cmmd/distance.py, sayakpaul/cmmd-pytorch distance.py) written
from scratch here in numpy and in torch, vs the unit-norm closed form, with σ = 10 and ×1000 pinned as literal
numbers; the unbiased option, the blocked computation, the bootstrap replicates, the adapter and a run through
tise_bench.evaluate on a tiny random CLIP with the CMMD preprocessing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import tise_bench
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.errors import ConfigError
from tise_bench.metrics import cmmd as cmmd_mod
from tise_bench.metrics.cmmd import CmmdReplicator, cmmd
from tise_bench.registry import get_metric

DEFAULT_YAML = Path(tise_bench.__file__).parent / "configs" / "metrics" / "default.yaml"


def _unit(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) + shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reference_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """google-research cmmd/distance.py ``mmd(x, y)``, line by line (in float64)."""
    sigma, scale = 10, 1000
    x_sqnorms = np.diag(x @ x.T)
    y_sqnorms = np.diag(y @ y.T)
    gamma = 1 / (2 * sigma**2)
    k_xx = np.mean(np.exp(-gamma * (-2 * (x @ x.T) + x_sqnorms[:, None] + x_sqnorms[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * (x @ y.T) + x_sqnorms[:, None] + y_sqnorms[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * (y @ y.T) + y_sqnorms[:, None] + y_sqnorms[None, :])))
    return float(scale * (k_xx + k_yy - 2 * k_xy))


def _torch_mmd(x: np.ndarray, y: np.ndarray, unbiased: bool = False) -> float:
    """Direct torch computation: Gaussian RBF exp(-|a-b|^2 / (2·10²)) via cdist, ×1000."""
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def k(a, b):
        return torch.exp(-(torch.cdist(a, b) ** 2) / 200.0)

    def self_term(a):
        m = a.shape[0]
        kk = k(a, a)
        return (kk.sum() - kk.diagonal().sum()) / (m * (m - 1)) if unbiased else kk.mean()

    return float(1000.0 * (self_term(tx) + self_term(ty) - 2 * k(tx, ty).mean()))


def test_equals_the_reference_formula_and_torch_on_unit_norm_embeddings() -> None:
    gen, ref = _unit(40, 24, 0), _unit(33, 24, 1, shift=0.4)
    ours = cmmd(gen, ref)
    assert ours == pytest.approx(_reference_mmd(ref, gen), rel=1e-12)  # main.py: mmd(ref_embs, eval_embs)
    assert ours == pytest.approx(_torch_mmd(ref, gen), rel=1e-9)
    assert ours == pytest.approx(cmmd(ref, gen), rel=1e-13) and ours > 0.5  # symmetric; clearly apart
    # float32 embeddings (what the bank stores) are computed in float64: the reference's formula on float64 copies
    g32, r32 = gen.astype(np.float32), ref.astype(np.float32)
    assert cmmd(g32, r32) == pytest.approx(_reference_mmd(r32.astype(np.float64), g32.astype(np.float64)), rel=1e-12)


def test_unit_norm_closed_form_with_sigma_10_and_scale_1000() -> None:
    gen, ref = _unit(25, 8, 2), _unit(30, 8, 3, shift=-0.5)

    def k(a, b):  # |a - b|² = 2 - 2 a·b for unit vectors: exp(-(2 - 2 a·b) / (2 · 10²)) = exp((a·b - 1) / 100)
        return np.exp((a @ b.T - 1.0) / 100.0)

    want = 1000.0 * (k(gen, gen).mean() + k(ref, ref).mean() - 2.0 * k(gen, ref).mean())
    assert cmmd(gen, ref) == pytest.approx(want, rel=1e-10)
    # two orthonormal points: 1000 · (1 + 1 − 2 e^{−2/200}) = 2000 (1 − e^{−0.01})
    e = np.eye(4)
    assert cmmd(e[:1], e[1:2]) == pytest.approx(19.900332501664, rel=1e-11)
    assert cmmd(e[:1], e[1:2], estimator="biased") == pytest.approx(2000 * (1 - math.exp(-0.01)), rel=1e-13)
    # {e1, e2} vs {e3}: k_gg = (2 + 2 e^{-0.01}) / 4, k_rr = 1, k_gr = e^{-0.01}
    q = math.exp(-0.01)
    assert cmmd(e[:2], e[2:3]) == pytest.approx(1000 * ((2 + 2 * q) / 4 + 1 - 2 * q), rel=1e-12)
    # unbiased: the off-diagonal of K_gg is e^{-0.01} only; the single reference has no off-diagonal pair
    assert cmmd(e[:2], e[2:4], estimator="unbiased") == pytest.approx(1000 * (q + q - 2 * q), abs=1e-12)
    p = get_metric("cmmd").resolve_params({})
    assert p == {"sigma": 10.0, "scale": 1000.0, "estimator": "biased"}  # the reference's _SIGMA, _SCALE, estimator
    assert cmmd(gen, ref, sigma=5.0, scale=1.0) == pytest.approx(
        np.exp((gen @ gen.T - 1) / 25).mean()
        + np.exp((ref @ ref.T - 1) / 25).mean()
        - 2 * np.exp((gen @ ref.T - 1) / 25).mean(),
        rel=1e-10,
    )


def test_unbiased_option_leaves_the_diagonals_out() -> None:
    gen, ref = _unit(12, 6, 4), _unit(9, 6, 5, shift=0.2)
    assert cmmd(gen, ref, estimator="unbiased") == pytest.approx(_torch_mmd(ref, gen, unbiased=True), rel=1e-9)
    # identical sets: biased 0 exactly in exact arithmetic, unbiased negative (diagonal 1s left out of both sides)
    assert cmmd(gen, gen) == pytest.approx(0.0, abs=1e-10)
    n = 12
    k = np.exp((gen @ gen.T - 1) / 100)
    off = (k.sum() - np.trace(k)) / (n * (n - 1))
    assert cmmd(gen, gen, estimator="unbiased") == pytest.approx(1000 * (2 * off - 2 * k.mean()), rel=1e-10)
    assert cmmd(gen, gen, estimator="unbiased") < 0
    with pytest.raises(ValueError, match="at least 2"):
        cmmd(gen[:1], ref, estimator="unbiased")
    with pytest.raises(ConfigError, match="estimator='mvue'"):
        cmmd(gen, ref, estimator="mvue")
    with pytest.raises(ValueError, match="NaN"):
        cmmd(np.full((3, 6), np.nan), ref)


def test_blocked_sums_equal_the_whole_matrix(monkeypatch) -> None:
    gen, ref = _unit(37, 10, 6), _unit(23, 10, 7, shift=0.3)
    whole = {e: cmmd(gen, ref, estimator=e) for e in ("biased", "unbiased")}
    monkeypatch.setattr(cmmd_mod, "_BLOCK_ELEMENTS", 50)  # 1-2 rows per block
    for e, v in whole.items():
        assert cmmd(gen, ref, estimator=e) == pytest.approx(v, rel=1e-12)
        rep = CmmdReplicator(gen, ref, 10.0, 1000.0, e)
        assert rep.values(np.ones((1, 37)))[0] == pytest.approx(v, rel=1e-12)


def _ctx(gen: np.ndarray, ref: np.ndarray, per_prompt: int = 1) -> MetricContext:
    n_prompts = len(gen) // per_prompt
    recs = [Record(id=f"r{i}", caption=f"c{i}", reference=f"ref{i}.png") for i in range(n_prompts)]
    return MetricContext(
        subset="realism",
        records=recs,
        samples=[Sample(i // per_prompt, i % per_prompt, f"g{i}.png", f"s{i}") for i in range(len(gen))],
        gen_features={"clip_cmmd.image": gen},
        ref_features={"clip_cmmd.image": ref},
        ref_records=list(range(len(ref))),
    )


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_bootstrap_replicates_are_the_metric_on_the_resampled_generated_rows(estimator) -> None:
    gen, ref = _unit(14, 8, 8), _unit(10, 8, 9, shift=0.3)  # 7 prompts × 2 samples
    v = get_metric("cmmd").compute(_ctx(gen, ref, per_prompt=2), {"estimator": estimator})
    assert v.resample.kind == "fid"  # recomputed from features: bootstrap.replicates_features
    ident = v.resample(np.arange(7)[None, :])
    assert ident[0] == pytest.approx(v.value, rel=1e-12)
    draws = np.random.default_rng(0).integers(0, 7, size=(5, 7))
    got = v.resample(draws)
    for b, d in enumerate(draws):
        rows = np.concatenate([[2 * p, 2 * p + 1] for p in d])  # every sample of a drawn prompt, duplicates kept
        assert got[b] == pytest.approx(cmmd(gen[rows], ref, estimator=estimator), rel=1e-10)


def test_adapter_extras_requirements_and_not_a_default_metric() -> None:
    gen, ref = _unit(6, 8, 10), _unit(5, 8, 11)
    spec = get_metric("cmmd")
    assert (spec.display, spec.higher_is_better, spec.unit, spec.subset) == ("CMMD", False, "distance", "realism")
    assert {n.key for n in spec.needs} == {"clip_cmmd.image"} and {n.role for n in spec.needs} == {"gen", "ref"}
    assert "google-research" in spec.citation and "Jayasumana" in spec.citation
    v = spec.compute(_ctx(gen, ref), {})
    assert v.value == cmmd(gen, ref) and v.n == 6
    ex = v.extras
    assert (ex["sigma"], ex["scale"], ex["estimator"], ex["n_reference"], ex["feature"]) == (
        10.0,
        1000.0,
        "biased",
        5,
        "clip_cmmd.image",
    )
    assert "float64" in ex["reference_differences"]
    one = spec.compute(_ctx(gen[:1], ref), {"estimator": "unbiased"})
    assert math.isnan(one.value) and "at least 2" in one.extras["reason"]
    refs = [Record(id="a", caption="c", reference="a.png")]
    assert spec.requires(refs, None, {}) is None
    assert "reference_stats cannot" in spec.requires([Record(id="a", caption="c")], None, {})
    with pytest.raises(ConfigError, match="sigma"):
        spec.requires(refs, None, {"sigma": 0.0})
    yaml = OmegaConf.to_container(OmegaConf.load(DEFAULT_YAML))
    assert "cmmd" not in yaml["ids"] and "cmmd" not in (yaml.get("params") or {})  # opt-in


TINY = "tise-tiny-cmmd-metric"
TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 336, "layers": 1, "width": 32, "head_width": 16, "patch_size": 48},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def test_cmmd_through_the_pipeline_reads_reference_embeddings(tmp_path, monkeypatch) -> None:
    from helpers import RANDOM_BACKBONES, structured_images
    from open_clip import factory as oc_factory

    from tise_bench.backbones import build_backbones
    from tise_bench.features.bank import FeatureBank

    monkeypatch.setitem(oc_factory._MODEL_CONFIGS, TINY, TINY_CFG)
    backbones = {**RANDOM_BACKBONES, "clip_cmmd": {"model": TINY}}  # a CMMD-only run builds only clip_cmmd
    fresh_cache = tmp_path / "cache"
    gen = structured_images(tmp_path / "gen", 6, seed=41, size=40)
    ref = structured_images(tmp_path / "ref", 6, seed=42, size=40)
    caps = [f"shapes {i}" for i in range(6)]
    res = tise_bench.evaluate(
        tmp_path / "gen",
        caps,
        ids=[p.stem for p in gen],
        references=[str(p) for p in ref],
        metrics=["cmmd"],
        backbones=backbones,
        cache_dir=fresh_cache,
        bootstrap={"replicates_features": 4},
    )
    bank = FeatureBank(build_backbones(backbones, {"clip_cmmd"}, fresh_cache), fresh_cache)
    f = bank.images([str(p) for p in gen + ref], {"clip_cmmd": {"image"}}).features["clip_cmmd.image"]
    assert f.shape == (12, 16) and np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    v = res.metrics["cmmd"]
    assert v.value == pytest.approx(cmmd(f[:6], f[6:]), rel=1e-12) and v.n == 6
    assert res.meta["cmmd"]["direction"] == "lower" and res.meta["cmmd"]["unit"] == "distance"
    assert res.replicates["cmmd"].shape == (4,) and np.isfinite(res.replicates["cmmd"]).all()
    with pytest.raises(ConfigError, match="cmmd"):  # asked for without references: refused before any work
        tise_bench.evaluate(
            tmp_path / "gen",
            caps,
            ids=[p.stem for p in gen],
            metrics=["cmmd"],
            backbones=backbones,
            cache_dir=fresh_cache,
        )
