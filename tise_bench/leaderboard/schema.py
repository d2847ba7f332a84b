"""The leaderboard's data model: what ``leaderboard.json`` holds and every table/plot is rendered from.

The collect/rank pass fills ``data``, ``metrics``, ``aspects``, ``rows`` and ``excluded``; the uncertainty
pass adds ``ci`` per row, ``rank_probabilities``, ``kendall_tau`` and ``paired``; the report pass may add
``drilldown``. Renderers (Markdown, CSV, LaTeX, HTML) read only this structure.
"""

from __future__ import annotations

from typing import Any, TypedDict

LEADERBOARD_SCHEMA = 1


class MetricColumn(TypedDict):
    id: str  # metric id, e.g. "fid"
    display: str  # e.g. "FID"
    higher_is_better: bool


class Row(TypedDict, total=False):
    model: str
    external: bool  # True for published baselines from leaderboard.extra_rows
    step: int | None  # checkpoint step for sweeps (metric-vs-step plots), else None
    values: dict[str, float | None]  # metric id -> value (None = not available for this row)
    ci: dict[str, list[float]]  # metric id -> [low, high] bootstrap interval (runs only)
    ranks: dict[str, float]  # metric id -> rank, best = N, ties averaged
    aspects: dict[str, float]  # aspect name -> mean rank of its metrics
    rs: float  # ranking score = sum of aspect scores
    source: str  # path of metrics.json or the extra-rows CSV
    meta: dict[str, dict[str, Any]]  # runs: metric id -> {"unit", "protocol", "comparability"} (None = not recorded)
    protocol: str  # extra rows: the protocol of their numbers ("tise-paper" unless the CSV says otherwise)


class Paired(TypedDict):
    a: str
    b: str
    metric: str
    diff: float  # value(a) - value(b)
    ci: list[float]
    p: float  # two-sided bootstrap p-value for diff == 0


class Leaderboard(TypedDict, total=False):
    schema_version: int
    data: str
    metrics: list[MetricColumn]  # the columns, in table order
    aspects: dict[str, list[str]]  # aspect -> metric ids (TISE's six by default)
    rows: list[Row]  # sorted by RS descending
    excluded: dict[str, str]  # metric id -> why it is not ranked (reported, never silent)
    random_weights: list[str]  # runs made with random-weights backbones (smoke tests, marked in every table)
    comparability: dict[str, Any]  # {"allow_mixed", "mixed": [{metric, kind, field, values: [{value, rows}], note}],
    #                                 "unrecorded": {run: [metric ids]}, "protocols": {metric: [{protocol, rows}]},
    #                                 "notes": [str]} (see comparable.check_comparability)
    bootstrap: dict[str, Any]  # {"n", "seed", "level", "replicates": {metric: used}, "n_rank", "n_rank_limited_by",
    #                             "kendall_tau_undefined", "kendall_tau_undefined_why", ...} when uncertainty was computed
    rank_probabilities: dict[str, list[float]]  # model -> P(rank = r) for r = 1..N (N = best)
    kendall_tau: list[float]  # bootstrap distribution of Kendall tau(bootstrap RS ranking, point ranking)
    paired: list[Paired]
    drilldown: dict[str, Any]  # {"model": str, "samples": [{"id", "caption", "thumbnail" (data URI),
    #                               "metrics": {id: value}, "boxes": [[x1, y1, x2, y2, score, class_name]],
    #                               "width": int, "height": int}]}
    agreement: dict[str, Any]  # leaderboard.human: tise_bench.agreement.human.agreement()'s report


TISE_ASPECTS: dict[str, list[str]] = {
    "realism": ["is_star", "fid"],
    "relevance": ["clip_rp"],
    "object accuracy": ["soa_c", "soa_i"],
    "object fidelity": ["o_is", "o_fid"],
    "counting": ["ca"],
    "position": ["pa"],
}

#: ``leaderboard.aspects=modern``: what a 2026 paper reports beside (or instead of) TISE's bag. Fidelity without
#: FID's flaws (FD-DINOv2, CMMD, precision), diversity (recall, coverage), text alignment (CLIP score, GenEval
#: overall), composition rules (T2I-CompBench spatial and numeracy) and human preference (HPSv2, aesthetic).
MODERN_ASPECTS: dict[str, list[str]] = {
    "fidelity": ["fd_dinov2", "cmmd", "precision"],
    "diversity": ["recall", "coverage"],
    "alignment": ["clip_score", "geneval"],
    "composition": ["compbench_spatial", "compbench_numeracy"],
    "preference": ["hpsv2", "aesthetic"],
}

#: Named aspect sets: ``leaderboard.aspects=<name>``.
ASPECT_PRESETS: dict[str, dict[str, list[str]]] = {"tise": TISE_ASPECTS, "modern": MODERN_ASPECTS}
