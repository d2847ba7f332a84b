"""Tables from the Leaderboard dict: LaTeX (booktabs, arrows, bold best, escaping, ±), Markdown, CSV."""

from __future__ import annotations

import io
import json

import pandas as pd

from tise_bench.leaderboard.build import make_leaderboard
from tise_bench.leaderboard.collect import Collected
from tise_bench.leaderboard.schema import Leaderboard, Row
from tise_bench.leaderboard.latex import to_latex
from tise_bench.leaderboard.tables import TableOptions, latex_escape, to_csv, to_json, to_markdown


def _board() -> Leaderboard:
    rows: list[Row] = [
        {
            "model": "my_model_v2",
            "external": False,
            "step": None,
            "values": {"fid": 15.0, "clip_rp": 70.0},
            "source": "r/a",
        },
        {
            "model": "base&line",
            "external": False,
            "step": None,
            "values": {"fid": 25.0, "clip_rp": 70.0},
            "source": "r/b",
        },
        {
            "model": "Paper GAN",
            "external": True,
            "step": None,
            "values": {"fid": 40.0, "clip_rp": 50.0},
            "source": "x.csv",
        },
    ]
    collected = Collected(
        rows=rows,
        run_dirs={"my_model_v2": None, "base&line": None},  # type: ignore[dict-item]
        random_weights=["base&line"],
    )
    return make_leaderboard(collected, "co_co", aspects={"realism": ["fid"], "relevance": ["RP"]})


def _latex_rows(tex: str) -> list[str]:
    body = tex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    return [line for line in body.splitlines() if line.strip()]


def test_latex_booktabs_arrows_bold_best_and_escaping():
    lb = _board()
    tex = to_latex(lb)
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    assert r"FID $\downarrow$" in tex and r"RP $\uparrow$" in tex
    first, second, third = _latex_rows(tex)  # sorted by RS: my_model_v2 (3+2.5), base&line (2+2.5), Paper GAN
    assert first.startswith(r"my\_model\_v2 &") and "my_model" not in tex
    assert second.startswith(r"base\&line$^\ddagger$ &") and third.startswith(r"Paper GAN$^\dagger$ &")
    assert r"\textbf{15.00}" in first and "25.00" in second and r"\textbf{25.00}" not in second  # lowest FID
    assert r"\textbf{70.00}" not in tex  # RP: the best value is shared exactly, so none is bold
    assert "RP, relevance: best value shared exactly by several rows, none bold." in tex
    assert r"\textbf{50.00}" not in third and r"\textbf{5.50}" in first  # RS best bold
    assert r"$^\dagger$ published (tise-paper protocol)" in tex and "RANDOM-WEIGHTS" in tex
    assert latex_escape("a_b%c#d$e{f}~^\\") == r"a\_b\%c\#d\$e\{f\}\textasciitilde{}\textasciicircum{}\textbackslash{}"


def test_ci_printed_as_interval_only_when_asked():
    lb = _board()
    lb["rows"][0]["ci"] = {"fid": [14.0, 16.5]}
    lb["bootstrap"] = {"n": 100, "seed": 0, "level": 0.9}
    assert r"\textbf{15.00}\\{\scriptsize [14.00, 16.50]}" in to_latex(lb, TableOptions(ci=True))
    assert "16.50" not in to_latex(lb, TableOptions(ci=False)) and "interval" not in to_latex(lb)
    md = to_markdown(lb, TableOptions(ci=True))
    assert "**15.00** [14.00, 16.50]" in md and "90% percentile bootstrap interval over resampled prompts, 100" in md
    df = pd.read_csv(io.StringIO(to_csv(lb)))
    assert df.loc[0, "FID CI low"] == 14.0 and pd.isna(df.loc[1, "FID CI high"])


def test_markdown_and_csv_order_marks_and_decimals():
    lb = _board()
    md = to_markdown(lb, TableOptions(decimals=1, decimals_by_metric={"fid": 3}))
    lines = [x for x in md.splitlines() if x.startswith("| ")]
    assert lines[0].startswith("| # | Model | FID ↓ | RP ↑ | realism | relevance | RS |")
    assert lines[1].startswith("| 1 | my_model_v2 | **15.000** | 70.0 |")  # RP tied exactly: not bold
    assert "| Paper GAN† |" in lines[3] and "base&line‡" in lines[2]
    assert "† published (tise-paper protocol)" in md
    df = pd.read_csv(io.StringIO(to_csv(lb)))
    assert list(df.columns) == ["model", "external", "random_weights", "FID", "RP", "realism", "relevance", "RS"]
    assert list(df["model"]) == ["my_model_v2", "base&line", "Paper GAN"]
    assert list(df["RS"]) == [5.5, 4.5, 2.0] and list(df["external"]) == [False, False, True]
    assert json.loads(to_json(lb))["rows"][0]["ranks"] == {"fid": 3.0, "clip_rp": 2.5}


def test_excluded_metric_footnote():
    lb = _board()
    lb["excluded"] = {"ca": "missing for x (on_missing=exclude)"}
    assert "CA not in RS: missing for x (on_missing=exclude)." in to_markdown(lb)
    assert r"missing for x (on\_missing=exclude)" in to_latex(lb)
