"""RS (SPEC §3): average ranks on ties, directions from the registry, hand-computed RS, missing-value policy."""

from __future__ import annotations

import pytest

from tise_bench.errors import ConfigError
from tise_bench.leaderboard.build import LeaderboardOptions, build
from tise_bench.leaderboard.ranking import rank_values, ranking_score
from tise_bench.leaderboard.schema import Row
from tise_bench.registry import all_metrics

from .lb_helpers import write_csv


def _rows(**by_model: dict[str, float | None]) -> list[Row]:
    return [{"model": m, "external": True, "step": None, "values": v} for m, v in by_model.items()]


def test_ties_get_the_average_of_the_ranks_they_span():
    # higher is better: 1 -> rank 1, 2 -> rank 2, the two 3s share ranks 3 and 4 -> 3.5 each
    assert rank_values([3.0, 1.0, 3.0, 2.0], higher_is_better=True) == [3.5, 1.0, 3.5, 2.0]
    # lower is better: 1 is best (4), 2 next (3), the two 3s share ranks 1 and 2 -> 1.5 each
    assert rank_values([3.0, 1.0, 3.0, 2.0], higher_is_better=False) == [1.5, 4.0, 1.5, 3.0]
    assert rank_values([5.0, 5.0, 5.0], higher_is_better=True) == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError):
        rank_values([1.0, float("nan")], True)


def test_direction_comes_from_metric_metadata():
    specs = all_metrics()
    assert not specs["fid"].higher_is_better and not specs["ca"].higher_is_better and specs["is_star"].higher_is_better
    rows = _rows(a={"fid": 30.0, "is_star": 10.0}, b={"fid": 10.0, "is_star": 10.0}, c={"fid": 20.0, "is_star": 30.0})
    out = ranking_score(rows, ["fid", "is_star"], {"fid only": ["fid"]})
    ranks = {r["model"]: r["ranks"]["fid"] for r in out.rows}
    assert ranks == {"b": 3.0, "c": 2.0, "a": 1.0}  # the lowest FID ranks best (N = 3)
    assert [r["model"] for r in out.rows] == ["b", "c", "a"]
    # IS* is higher-is-better: c best; a and b tie at 10 -> (1 + 2) / 2
    assert {r["model"]: r["ranks"]["is_star"] for r in out.rows} == {"a": 1.5, "b": 1.5, "c": 3.0}


def test_extra_rows_alone_reproduce_hand_computed_rs(tmp_path):
    csv = write_csv(
        tmp_path / "baselines.csv",
        """
method,IS*,fid,RP,CA,step
A,30,20,80,2.0,
B,25,15,80,1.5,100
C,20,30,60,1.5,
D,35,40,50,3.0,
""",
    )
    lb, files = build(
        LeaderboardOptions(data="coco", results_dir=tmp_path / "results", extra_rows=csv, formats=["json", "md"])
    )
    # IS* (higher better): D 35 -> 4, A 30 -> 3, B 25 -> 2, C 20 -> 1
    # FID (lower better):  B 15 -> 4, A 20 -> 3, C 30 -> 2, D 40 -> 1
    # realism = mean(IS*, FID): A (3+3)/2 = 3, B (2+4)/2 = 3, C (1+2)/2 = 1.5, D (4+1)/2 = 2.5
    # relevance = RP (higher): A, B tie at 80 -> (3+4)/2 = 3.5 each, C 60 -> 2, D 50 -> 1
    # counting = CA (lower):   B, C tie at 1.5 -> (3+4)/2 = 3.5 each, A 2.0 -> 2, D 3.0 -> 1
    # RS: A 3 + 3.5 + 2 = 8.5; B 3 + 3.5 + 3.5 = 10; C 1.5 + 2 + 3.5 = 7; D 2.5 + 1 + 1 = 4.5
    expected = {"B": 10.0, "A": 8.5, "C": 7.0, "D": 4.5}
    assert [r["model"] for r in lb["rows"]] == list(expected)
    assert {r["model"]: r["rs"] for r in lb["rows"]} == pytest.approx(expected)
    b = lb["rows"][0]
    assert b["aspects"] == pytest.approx({"realism": 3.0, "relevance": 3.5, "counting": 3.5})
    assert b["external"] is True and b["step"] == 100 and lb["rows"][1]["step"] is None
    assert set(lb["aspects"]) == {"realism", "relevance", "counting"}
    # aspects with no metric in any row are dropped, and said so
    for mid in ("soa_c", "soa_i", "o_is", "o_fid", "pa"):
        assert "dropped" in lb["excluded"][mid]
    assert (tmp_path / "results" / "coco" / "leaderboard.json").is_file() and set(files) == {"json", "md"}


def test_missing_metric_error_names_metric_and_rows_then_exclude_records_it():
    rows = _rows(a={"fid": 10.0, "ca": 1.0}, b={"fid": 20.0, "ca": None}, c={"fid": 30.0, "ca": 2.0})
    aspects = {"realism": ["fid"], "counting": ["ca"]}
    with pytest.raises(ConfigError, match=r"'ca' is missing for 1 row\(s\): \['b'\].*on_missing=exclude"):
        ranking_score(rows, ["fid", "ca"], aspects)
    out = ranking_score(rows, ["fid", "ca"], aspects, on_missing="exclude")
    assert "missing for b" in out.excluded["ca"] and "'counting' dropped" in out.excluded["ca"]
    assert out.aspects == {"realism": ["fid"]}
    assert {r["model"]: r["rs"] for r in out.rows} == {"a": 3.0, "b": 2.0, "c": 1.0}
    assert all("ca" not in r["ranks"] for r in out.rows)


def test_metric_outside_aspects_missing_is_shown_not_ranked():
    rows = _rows(a={"fid": 10.0, "clip_score": None}, b={"fid": 20.0, "clip_score": 0.3})
    out = ranking_score(rows, ["fid", "clip_score"], {"realism": ["fid"]})  # no error: CLIP-S is in no aspect
    assert out.excluded == {} and all("clip_score" not in r["ranks"] for r in out.rows)


def test_partial_aspect_and_unknown_metrics():
    rows = _rows(a={"fid": 10.0}, b={"fid": 20.0})
    out = ranking_score(rows, ["fid"], {"realism": ["is_star", "fid"]})  # IS* absent everywhere
    assert out.aspects == {"realism": ["fid"]} and out.excluded == {
        "is_star": "not among the leaderboard's metrics (leaderboard.metrics)"
    }
    with pytest.raises(ConfigError, match="not in the metric registry"):
        ranking_score(rows, ["fid", "my_metric"], {"realism": ["fid"]})
    with pytest.raises(ConfigError, match="RS is undefined"):
        ranking_score(rows, ["fid"], {"counting": ["ca"]})
    with pytest.raises(ConfigError, match="on_missing"):
        ranking_score(rows, ["fid"], {"realism": ["fid"]}, on_missing="zero")  # type: ignore[arg-type]
