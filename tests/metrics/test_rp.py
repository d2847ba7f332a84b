"""CLIP R-precision: vectorised implementation vs a from-scratch loop reference, plus the adapter."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tise_bench.metrics.rp as rp
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.metrics.rp import draw_candidates, r_precision_hits, texts_needed
from tise_bench.registry import get_metric


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return (
        sum(float(x) * float(y) for x, y in zip(a, b))
        / math.sqrt(sum(float(x) ** 2 for x in a))
        / math.sqrt(sum(float(y) ** 2 for y in b))
    )


def loop_reference(img, true_idx, pool, n_distractors, top_k, seed, mismatched=None):
    """Straightforward re-statement of the documented protocol: draw, score each pair, rank pessimistically."""
    rng = np.random.default_rng(seed)
    hits = []
    for i in range(len(img)):
        t = int(true_idx[i])
        if mismatched is not None and mismatched[i]:
            cands = []
            for m in mismatched[i]:
                if m != t and m not in cands:
                    cands.append(m)
        else:
            others = [j for j in range(len(pool)) if j != t]
            if len(others) <= n_distractors:
                cands = others
            else:
                cands = [others[k] for k in rng.choice(len(others), size=n_distractors, replace=False)]
        s_true = _cos(img[i], pool[t])
        ranked_above = [d for d in cands if _cos(img[i], pool[d]) >= s_true - 1e-6]
        hits.append(len(ranked_above) < top_k)
    return np.array(hits)


def _data(n_img: int, n_pool: int, d: int, seed: int, noise: float):
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(n_pool, d))
    true_idx = rng.integers(0, n_pool, n_img)
    img = pool[true_idx] + noise * rng.normal(size=(n_img, d))
    return img.astype(np.float32), true_idx, pool.astype(np.float32)


@pytest.mark.parametrize("top_k", [1, 3])
def test_vectorised_equals_loop(top_k: int, monkeypatch) -> None:
    monkeypatch.setattr(rp, "_CHUNK", 7)  # exercise chunk boundaries
    img, true_idx, pool = _data(40, 60, 12, 0, noise=1.2)
    mism = [None] * 40
    mism[3] = [5, 5, 9, int(true_idx[3]), 11]  # duplicates and the true entry are dropped
    mism[8] = [0, 1]
    got = r_precision_hits(img, true_idx, pool, n_distractors=20, top_k=top_k, seed=7, mismatched=mism)
    want = loop_reference(img, true_idx, pool, 20, top_k, 7, mism)
    assert got.tolist() == want.tolist()
    assert 0 < want.sum() < 40  # noise chosen so both hits and misses occur


def test_candidates_without_replacement_and_seeded() -> None:
    true_idx = np.array([0, 5, 5, 9])
    a = draw_candidates(true_idx, 30, n_distractors=10, seed=1)
    b = draw_candidates(true_idx, 30, n_distractors=10, seed=1)
    c = draw_candidates(true_idx, 30, n_distractors=10, seed=2)
    for t, cand in zip(true_idx, a):
        assert len(cand) == 10 and len(set(cand.tolist())) == 10 and t not in cand and cand.max() < 30
    assert all((x == y).all() for x, y in zip(a, b)) and any((x != y).any() for x, y in zip(a, c))
    short = draw_candidates(np.array([2]), 5, n_distractors=99)
    assert sorted(short[0].tolist()) == [0, 1, 3, 4]
    drawable = draw_candidates(np.array([1]), 10, n_distractors=99, n_drawable=4)
    assert sorted(drawable[0].tolist()) == [0, 2, 3]


def test_ties_are_misses() -> None:
    pool = np.eye(4)
    pool[2] = pool[1]  # a different text with an identical embedding
    hits = r_precision_hits(pool[[0, 1]], np.array([0, 1]), pool, n_distractors=99)
    assert hits.tolist() == [True, False]


def _ctx(records: list[Record], emb: dict[str, np.ndarray], img: np.ndarray, per_record: int = 1) -> MetricContext:
    samples = [Sample(i, k, f"{i}_{k}.png", "x") for i in range(len(records)) for k in range(per_record)]
    return MetricContext(
        subset="rp", records=records, samples=samples, gen_features={"clip.image": img}, text_features=emb
    )


def test_adapter_perfect_embeddings_shared_captions_and_small_pool() -> None:
    caps = [f"caption {i}" for i in range(12)] + ["caption 0"]  # two records share caption text
    recs = [Record(id=str(i), caption=c) for i, c in enumerate(caps)]
    texts = texts_needed(recs, {})
    assert len(texts) == 12
    emb = {t: v for t, v in zip(texts, np.eye(16)[:12])}
    img = np.stack([emb[c] for c in caps for _ in range(2)])
    v = get_metric("clip_rp").compute(_ctx(recs, emb, img, per_record=2), {})
    assert v.value == 100.0 and v.n == 26 and v.std == 0.0
    assert v.extras["n_candidates"] == 12 and v.extras["n_short_pool"] == 26 and v.extras["top_k"] == 1
    assert len(v.extras["split_scores"]) == 10


def test_adapter_matches_pure_function_and_uses_mismatched() -> None:
    rng = np.random.default_rng(3)
    recs = [Record(id=str(i), caption=f"cap {i}") for i in range(30)]
    recs[4] = Record(id="4", caption="cap 4", mismatched=("other x", "other y", "cap 7"))
    texts = texts_needed(recs, {})
    assert texts[-2:] == ["other x", "other y"]
    emb = {t: v for t, v in zip(texts, rng.normal(size=(len(texts), 8)))}
    img = np.stack([emb[r.caption] for r in recs]) + 1.0 * rng.normal(size=(30, 8))
    params = {"n_distractors": 9, "seed": 4, "splits": 5}
    v = get_metric("clip_rp").compute(_ctx(recs, emb, img), params)
    pool = np.stack([emb[t] for t in texts])
    true_idx = np.arange(30)
    mism = [None] * 30
    mism[4] = [texts.index("other x"), texts.index("other y"), 7]
    cands = draw_candidates(true_idx, len(texts), 9, 4, mism, n_drawable=30)
    want = rp.hits_from_candidates(img, true_idx, pool, cands, 1)
    assert v.value == pytest.approx(100 * want.mean()) and v.per_sample.tolist() == want.astype(float).tolist()
    assert v.extras["n_candidates"] == 4 and v.extras["n_candidates_max"] == 10 and v.extras["n_with_mismatched"] == 1
    # random distractors never come from the mismatched-only texts
    assert all(c.max() < 30 for j, c in enumerate(cands) if j != 4)
    assert v.std == pytest.approx(np.std(v.extras["split_scores"])) and len(v.extras["split_scores"]) == 5
    assert get_metric("clip_rp").compute(_ctx(recs, emb, img), params).value == v.value
