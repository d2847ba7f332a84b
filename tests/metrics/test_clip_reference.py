"""Each CLIP-S convention equals its reference code, re-written here from scratch (issue 9 defect 9).

References (read, not imported): jmhessel/clipscore ``clipscore.py`` (``CLIPCapDataset`` prefix "A photo
depicts" + one space, ``get_clip_score``: rows divided by ``sqrt(sum(x**2))`` (numpy >= 1.21 branch),
``w * clip(sum(img * cand), 0)`` with w = 2.5, mean; ``get_refonlyclipscore``: max over the prefixed
references of cand·ref; RefCLIPScore = harmonic mean per image, then mean) and torchmetrics
``functional/multimodal/clip_score.py`` (``x / x.norm(p=2, dim=-1)``, ``100 * (a * b).sum(-1)``,
``score.mean(0)``, ``torch.max(score, 0)``; no prefix).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.metrics.clip import texts_needed_clip_score
from tise_bench.registry import get_metric

DIM = 16


# ---- from-scratch copies of the reference formulas ------------------------------------------------------------
def hessel_prompt(caption: str, prefix: str = "A photo depicts") -> str:
    if prefix[-1] != " ":
        prefix += " "
    return prefix + caption


def hessel_clip_score(images: np.ndarray, candidates: np.ndarray, w: float = 2.5):
    images = images / np.sqrt(np.sum(images**2, axis=1, keepdims=True))
    candidates = candidates / np.sqrt(np.sum(candidates**2, axis=1, keepdims=True))
    per = w * np.clip(np.sum(images * candidates, axis=1), 0, None)
    return np.mean(per), per, candidates


def hessel_refonly(references: list[list[np.ndarray]], candidates: np.ndarray):
    per = []
    for cand, refs in zip(candidates, references):
        refs = np.vstack(refs)
        refs = refs / np.sqrt(np.sum(refs**2, axis=1, keepdims=True))
        per.append(np.max(cand.dot(refs.transpose())))
    return np.mean(per), np.array(per)


def torchmetrics_clip_score(source: np.ndarray, target: np.ndarray) -> float:
    s, t = torch.from_numpy(source), torch.from_numpy(target)
    s = s / s.norm(p=2, dim=-1, keepdim=True)
    t = t / t.norm(p=2, dim=-1, keepdim=True)
    score = (100 * (s * t).sum(axis=-1)).mean(0)
    return float(torch.max(score, torch.zeros_like(score)))


# ---- fixtures --------------------------------------------------------------------------------------------------
def _ctx(n: int, seed: int, prompt, shift: float = 0.0, refs: bool = False):
    """n records/images; text embeddings stored under ``prompt(caption)``; image-text cosines of both signs."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=DIM)  # shared direction: text-text cosines > 0, as with real CLIP text embeddings
    recs = [
        Record(
            id=f"r{i}", caption=f"caption {i}", ref_captions=(f"ref {i} a", f"ref {i} b", f"ref {i} c") if refs else ()
        )
        for i in range(n)
    ]
    texts = [t for r in recs for t in (r.caption, *r.ref_captions)]
    feats = {prompt(t): (3 * base + rng.normal(size=DIM)).astype(np.float32) for t in texts}
    cap = np.stack([feats[prompt(r.caption)] for r in recs])
    unit = cap / np.linalg.norm(cap, axis=1, keepdims=True)
    img = (rng.normal(size=(n, DIM)) + shift * unit).astype(np.float32) * 4  # unnormalised on purpose
    ctx = MetricContext(
        subset="realism",
        records=recs,
        samples=[Sample(i, 0, f"{i}.png", str(i)) for i in range(n)],
        gen_features={"clip.image": img},
        text_features=feats,
    )
    return ctx, img, cap, feats


def test_clipscore_convention_equals_hessel_reference_with_its_prefix_by_default():
    ctx, img, cap, _ = _ctx(40, 0, hessel_prompt)
    want_mean, want_per, _ = hessel_clip_score(img, cap)
    cos = (img / np.linalg.norm(img, axis=1, keepdims=True) * cap / np.linalg.norm(cap, axis=1, keepdims=True)).sum(1)
    assert (cos < 0).sum() >= 5 and (cos > 0).sum() >= 5  # both signs exercised (clip at 0 matters)
    v = get_metric("clip_score").compute(ctx, {})  # defaults: convention clipscore, prefix from the convention
    assert v.value == pytest.approx(want_mean, rel=1e-6)
    np.testing.assert_allclose(v.per_sample, want_per, rtol=1e-6, atol=1e-7)
    assert v.extras["prefix"] == "A photo depicts" and v.extras["convention"] == "clipscore"
    # the shipped config asks for the same (it overrides nothing: prefix null = the convention's reference default)
    cfg = yaml.safe_load((Path(__file__).parents[2] / "tise_bench/configs/metrics/default.yaml").read_text())
    p = (cfg.get("params") or {}).get("clip_score") or {}
    assert get_metric("clip_score").resolve_params(p) == {"convention": "clipscore", "prefix": None}
    assert get_metric("clip_score").compute(ctx, p).value == v.value
    assert texts_needed_clip_score(ctx.records, get_metric("clip_score").resolve_params(p)) == [
        hessel_prompt(r.caption) for r in ctx.records
    ]
    assert get_metric("ref_clip_score").texts([Record("x", "a dog", ref_captions=("a puppy",))], {}) == [
        "A photo depicts a dog",
        "A photo depicts a puppy",
    ]


def test_ref_clip_score_equals_hessel_reference_on_prefixed_references():
    ctx, img, cap, feats = _ctx(30, 1, hessel_prompt, refs=True)
    _, per_it, cand = hessel_clip_score(img, cap)
    refs = [[feats[hessel_prompt(t)] for t in r.ref_captions] for r in ctx.records]
    _, per_tt = hessel_refonly(refs, cand)
    assert (per_it == 0).sum() >= 3 and (per_tt > 0).all()
    want = 2 * per_it * per_tt / (per_it + per_tt)
    v = get_metric("ref_clip_score").compute(ctx, {})
    np.testing.assert_allclose(v.per_sample, want, rtol=1e-6, atol=1e-7)
    assert v.value == pytest.approx(np.mean(want), rel=1e-6) and v.extras["prefix"] == "A photo depicts"


@pytest.mark.parametrize("shift", [-0.4, 0.4, 3.0])
def test_torchmetrics_convention_equals_torchmetrics_formula(shift: float):
    ctx, img, cap, _ = _ctx(40, 2, lambda t: t, shift=shift)  # torchmetrics: the caption as given
    want = torchmetrics_clip_score(img, cap)
    v = get_metric("clip_score").compute(ctx, {"convention": "torchmetrics"})
    assert v.value == pytest.approx(want, rel=1e-5, abs=1e-9)
    assert v.extras["prefix"] == "" and v.extras["aggregation"] == "max(mean_i 100*cos_i, 0)"
    clamped_each = np.maximum(v.per_sample, 0).mean()  # what the code did before: mean of clamped values
    if shift < 0:  # the set mean is negative: torchmetrics says 0, though some images have cos > 0
        assert want == 0.0 and v.value == 0.0 and v.per_sample.max() > 0 and clamped_each > 1
    elif shift < 1:  # mixed signs, positive mean: not the mean of per-image clamped values either
        assert want > 0 and v.per_sample.min() < 0 and clamped_each - v.value > 1
    else:  # all positive: every reading agrees
        assert v.per_sample.min() > 0 and clamped_each == pytest.approx(v.value)


def test_prefix_override_and_spacing_follow_clipscore_py():
    ctx, img, cap, _ = _ctx(10, 3, lambda t: "a picture of " + t)
    want = hessel_clip_score(img, cap)[0]
    for given in ("a picture of", "a picture of "):  # clipscore.py adds one space unless there is one
        v = get_metric("clip_score").compute(ctx, {"prefix": given})
        assert v.value == pytest.approx(want, rel=1e-6) and v.extras["prefix"] == given
        assert v.extras["prefix_source"] == "metrics.params.clip_score.prefix"
    raw, _, cap2, _ = _ctx(10, 3, lambda t: t)
    v = get_metric("clip_score").compute(raw, {"prefix": ""})  # empty string = no prefix, recorded
    assert v.value == pytest.approx(hessel_clip_score(img, cap2)[0], rel=1e-6) and v.extras["prefix"] == ""
    # an explicit prefix applies to torchmetrics too (recorded, so comparability can see it)
    t = get_metric("clip_score").compute(ctx, {"convention": "torchmetrics", "prefix": "a picture of"})
    assert t.value == pytest.approx(torchmetrics_clip_score(img, cap), rel=1e-5)
