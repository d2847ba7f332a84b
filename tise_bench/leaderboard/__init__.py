"""Leaderboard pass over ``results/<data>/*/metrics.json``: TISE's ranking score (RS) and its tables.

``python -m tise_bench.leaderboard data=<d>`` writes ``leaderboard.{csv,md,tex,json,html}``; from Python::

    from tise_bench.leaderboard import LeaderboardOptions, build
    lb, files = build(LeaderboardOptions(data="coco", results_dir=Path("results")))
"""

from __future__ import annotations

from .build import LeaderboardOptions, build, make_leaderboard, write_leaderboard
from .collect import Collected, collect_runs, parse_step, read_extra_rows
from .ranking import Ranking, rank_values, ranking_score
from .schema import TISE_ASPECTS, Leaderboard, Row
from .latex import to_latex
from .tables import TableOptions, to_csv, to_markdown, to_text

__all__ = [
    "Collected",
    "Leaderboard",
    "LeaderboardOptions",
    "Ranking",
    "Row",
    "TISE_ASPECTS",
    "TableOptions",
    "build",
    "collect_runs",
    "make_leaderboard",
    "parse_step",
    "rank_values",
    "ranking_score",
    "read_extra_rows",
    "to_csv",
    "to_latex",
    "to_markdown",
    "to_text",
    "write_leaderboard",
]
