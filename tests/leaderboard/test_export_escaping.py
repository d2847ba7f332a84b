"""Issue 11, item 11: each export escapes names for its format (CSV formula injection, Markdown HTML/pipes/newlines,
LaTeX specials and blank lines), while numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from tise_bench.leaderboard.build import make_leaderboard
from tise_bench.leaderboard.collect import Collected
from tise_bench.leaderboard.schema import Leaderboard, Row
from tise_bench.leaderboard.latex import to_latex
from tise_bench.leaderboard.tables import csv_cell, latex_escape, markdown_escape, to_csv, to_markdown

HOSTILE = [
    '=HYPERLINK("http://evil","x")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1)",
    "\tTAB",
    "\rCR",
    "<img src=x onerror=alert(1)>",
    "pipe|name",
    "two\n\nlines",
    "50%_{off}$&#~^\\",
]


def _board(names: list[str], clip: list[float] | None = None) -> Leaderboard:
    rows: list[Row] = [
        {
            "model": n,
            "external": False,
            "step": None,
            "values": {"fid": 10.0 + i, "clip_score": (clip or [-0.5] * len(names))[i]},
            "source": f"r/{i}",
        }
        for i, n in enumerate(names)
    ]
    return make_leaderboard(
        Collected(rows=rows, run_dirs={}, random_weights=[]),
        "coco",
        aspects={"realism": ["fid"], "relevance": ["clip_score"]},
    )


def test_csv_cells_that_start_a_formula_get_an_apostrophe():
    lb = _board(HOSTILE)
    text = to_csv(lb)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + len(HOSTILE) and {len(r) for r in rows} == {len(rows[0])}  # no name split a row
    cells = [r[0] for r in rows[1:]]
    expected = [("'" + n if n[0] in "=+-@\t\r" else n).replace("\r", "\n") for n in HOSTILE]  # a lone CR: quoted \n
    assert sorted(cells) == sorted(expected)
    for cell in cells:  # no cell a spreadsheet would evaluate
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_csv_keeps_negative_numbers_numeric():
    lb = _board(["a", "b"], clip=[-0.25, -1.5])
    df = pd.read_csv(io.StringIO(to_csv(lb)))
    col = next(c for c in df.columns if c.startswith("CLIP"))
    assert df[col].dtype.kind == "f" and sorted(df[col]) == [-1.5, -0.25]
    assert "'-" not in to_csv(lb)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("-1.5", "-1.5"),
        ("+3", "+3"),
        ("-2e-3", "-2e-3"),
        ("-2+3", "'-2+3"),
        ("=1", "'=1"),
        (-7.0, -7.0),
        ("a=1", "a=1"),
    ],
)
def test_csv_cell_rule(value, expected):
    assert csv_cell(value) == expected


def test_csv_headers_from_aspect_names_are_escaped_too():
    rows: list[Row] = [
        {"model": "a", "external": False, "step": None, "values": {"fid": 1.0}, "source": "r/a"},
        {"model": "b", "external": False, "step": None, "values": {"fid": 2.0}, "source": "r/b"},
    ]
    lb = make_leaderboard(Collected(rows=rows, run_dirs={}, random_weights=[]), "d", aspects={"=evil()": ["fid"]})
    header = next(csv.reader(io.StringIO(to_csv(lb), newline="")))
    assert "'=evil()" in header and "=evil()" not in header


def test_markdown_escapes_html_pipes_and_newlines():
    lb = _board(HOSTILE)
    md = to_markdown(lb)
    table = [x for x in md.splitlines() if x.startswith("|")]
    assert len(table) == 2 + len(HOSTILE)  # header, rule, one line per row: no name broke the table
    cols = table[0].count(" | ")
    assert all(x.replace(r"\|", "").count(" | ") == cols for x in table[2:])
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert r"pipe\|name" in md and "two lines" in md
    assert markdown_escape("a&lt;b&gt; & c") == "a&amp;lt;b&amp;gt; & c"  # an entity shows as typed; a bare & stays


def test_latex_escapes_specials_and_never_a_blank_line():
    lb = _board(HOSTILE)
    tex = to_latex(lb)
    assert "\n\n" not in tex  # a blank line inside tabular is a LaTeX error
    body = tex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0].splitlines()
    assert len(body) == len(HOSTILE) and all(line.endswith(r" \\") for line in body)
    assert r"two lines" in tex and r"pipe\textbar{}name" in tex and r"\textless{}img" in tex
    assert r"50\%\_\{off\}\$\&\#\textasciitilde{}\textasciicircum{}\textbackslash{}" in tex
    assert latex_escape("a\r\n\r\nb\x00c") == "a bc"
