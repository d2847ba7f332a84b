"""PA equals a hand computation on planted embeddings."""

from __future__ import annotations

import math

import numpy as np

from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.registry import get_metric


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_pa_matches_hand_computed_per_word_mean():
    e = np.eye(4)
    recs = [
        Record("a", "a cup left of a tv", positional_word="left", counter_caption="a cup right of a tv"),
        Record("b", "a kite above a clock", positional_word="above", counter_caption="a kite below a clock"),
        Record("c", "a cup right of a tv", positional_word="right", counter_caption="a cup left of a tv"),
        Record("d", "a kite above a tv", positional_word="above", counter_caption="a kite below a tv"),
        Record("e", "two cups"),
    ]  # no counter caption: skipped and counted
    texts = {
        "a cup left of a tv": e[0],
        "a cup right of a tv": e[1],
        "a kite above a clock": e[2],
        "a kite below a clock": e[3],
        "a kite above a tv": e[2],
        "a kite below a tv": e[3],
        "two cups": e[0],
    }
    imgs = np.stack(
        [
            _unit([1, 0.9, 0, 0]),  # a: cos_true 0.74 vs 0.67 -> s=100: p=sigmoid(6.7) ok
            _unit([0, 0, 1, 1.02]),  # b: counter slightly closer -> fail
            _unit([0.2, 1, 0, 0]),  # c: true (e1) much closer -> ok
            _unit([0, 0, 1, 0.999]),  # d: margin 0.0007*100=0.07 -> p=0.517 < 0.6 -> fail
            _unit([1, 0, 0, 0]),
        ]
    ).astype(np.float32)
    ctx = MetricContext(
        subset="pa",
        records=recs,
        samples=[Sample(i, 0, f"{i}.png", str(i)) for i in range(5)],
        gen_features={"clip.image": imgs},
        text_features=texts,
        logit_scale=100.0,
    )
    mv = get_metric("pa").compute(ctx, {"threshold": 0.6})

    def ok(img, t, c):
        a, b = 100 * img @ t, 100 * img @ c
        return math.exp(a) / (math.exp(a) + math.exp(b)) > 0.6

    hand = [ok(imgs[0], e[0], e[1]), ok(imgs[1], e[2], e[3]), ok(imgs[2], e[1], e[0]), ok(imgs[3], e[2], e[3])]
    assert hand == [True, False, True, False]
    per_word = {"left": hand[0], "right": hand[2], "above": (hand[1] + hand[3]) / 2}
    assert math.isclose(mv.value, 100 * np.mean(list(per_word.values())))
    assert mv.n == 4 and mv.skipped == {"no_counter_caption": 1}
    assert mv.extras["per_word"] == {w: 100.0 * float(v) for w, v in sorted(per_word.items())}
    assert np.isnan(mv.per_sample[4]) and list(mv.per_sample[:4]) == [1.0, 0.0, 1.0, 0.0]
