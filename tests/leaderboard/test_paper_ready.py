"""Issue 14 item 6, a paper-ready leaderboard: the CLI's ranked table, a LaTeX table that fits a page, bold only for
the true best, notes that say only what was computed, [lo, hi] intervals, log axes for FID-like metrics, and
rank-probability labels readable on their cells (WCAG contrast, checked in the SVG and in a Chromium screenshot)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from PIL import Image
from scipy import ndimage

from tise_bench.errors import ConfigError
from tise_bench.leaderboard import html_charts as ch
from tise_bench.leaderboard.__main__ import run
from tise_bench.leaderboard.build import LeaderboardOptions, make_leaderboard
from tise_bench.leaderboard.collect import Collected
from tise_bench.leaderboard.html import render_html
from tise_bench.leaderboard.latex import to_latex
from tise_bench.leaderboard.schema import Leaderboard, Row
from tise_bench.leaderboard.tables import TableOptions, to_markdown
from tise_bench.leaderboard.uncertainty import add_uncertainty

from .test_cli import _results
from .test_html import _chromium
from .test_uncertainty import _run

ROOT = Path(__file__).resolve().parents[2]
WCAG_AA = 4.5


def _board(values: dict[str, dict[str, float]], aspects: dict[str, list[str]]) -> Leaderboard:
    rows: list[Row] = [
        {"model": m, "external": False, "step": None, "values": dict(v), "source": f"r/{m}"} for m, v in values.items()
    ]
    return make_leaderboard(Collected(rows=rows, run_dirs={}, random_weights=[]), "d", aspects=aspects)


# --- the CLI's table ---------------------------------------------------------------------------------------------


def test_cli_prints_the_ranked_table_in_the_files_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What ``python -m tise_bench.leaderboard`` prints (its Hydra entry point is run by tests/leaderboard/test_cli.py;
    here the packaged config is composed and the same ``run`` called in-process)."""
    results = _results(tmp_path / "results")
    with initialize_config_module(version_base="1.3", config_module="tise_bench.leaderboard.conf"):
        cfg = compose(
            "leaderboard", overrides=["data=tiny", f"paths.results_dir={results}", "leaderboard.formats=[json]"]
        )
    run(LeaderboardOptions.from_config(OmegaConf.to_container(cfg, resolve=True)))  # type: ignore[arg-type]
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("#  model"))
    assert set(lines[head + 1]) <= {"-", " "}  # the rule under the header
    table = lines[head : head + 4]
    assert len({len(ln) for ln in table}) == 1, table  # aligned: every line as wide as the header
    assert table[0].split() == ["#", "model", "IS*↑", "FID↓", "RP↑", "SOA-C↑", "SOA-I↑", "O-IS↑", "O-FID↓"] + [
        "CA↓",
        "PA↑",
        "RS",
    ]
    rows = [ln.split() for ln in table[2:]]
    lb = json.loads((results / "tiny" / "leaderboard.json").read_text())
    assert [r[1].rstrip("‡") for r in rows] == [r["model"] for r in lb["rows"]] == ["good_model", "bad_model"]
    assert rows[0][0] == "1" and rows[0][1] == "good_model‡" and rows[0][3] == "30.00" and rows[1][3] == "90.00"
    assert [float(r[-1]) for r in rows] == [r["rs"] for r in lb["rows"]]
    assert "‡ random-weights backbones" in out and f"wrote {results / 'tiny' / 'leaderboard.json'}" in out


# --- bold: the true best only --------------------------------------------------------------------------------------


def test_bold_only_the_unrounded_best_and_none_for_an_exact_tie() -> None:
    # FID 15.001 and 15.004 both print 15.00: only the lower (better) is bold. RP 70 = 70: nobody is bold.
    lb = _board(
        {"a": {"fid": 15.004, "clip_rp": 70.0}, "b": {"fid": 15.001, "clip_rp": 70.0}, "c": {"fid": 40, "clip_rp": 1}},
        {"realism": ["fid"], "relevance": ["RP"]},
    )
    md = to_markdown(lb)
    rows = {ln.split(" | ")[1]: ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "**15.00**" in rows["b"] and "**15.00**" not in rows["a"] and "15.00" in rows["a"]
    assert "**70.00**" not in md
    rule = "Bold = the best value of a column compared unrounded; in FID values print alike and only the best"
    assert rule in md and "RP, relevance: best value shared exactly by several rows, none bold" in md
    tex = to_latex(lb)
    assert tex.count(r"\textbf{15.00}") == 1 and r"\textbf{70.00}" not in tex
    body = tex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0].splitlines()
    assert r"\textbf{15.00}" in next(ln for ln in body if ln.startswith("b "))
    html = render_html(lb)
    assert html.count('<td class="best" data-v="15.001">') == 1 and 'class="best" data-v="15.004"' not in html
    assert 'class="best" data-v="70.0"' not in html


def test_no_bold_note_when_nothing_was_hidden_by_rounding() -> None:
    lb = _board({"a": {"fid": 10.0}, "b": {"fid": 20.0}}, {"realism": ["fid"]})
    assert "Bold =" not in to_markdown(lb) and "Bold =" not in to_latex(lb)


# --- LaTeX that fits a page ----------------------------------------------------------------------------------------

ALL = {"is_star": 20.0, "fid": 30.0, "clip_rp": 60.0, "soa_c": 50.0, "soa_i": 60.0, "o_is": 5.0}
ALL |= {"o_fid": 40.0, "ca": 2.0, "pa": 30.0, "clip_score": 0.3, "is": 21.0}


def _tise_board() -> Leaderboard:
    values = {f"model_{i}": {k: v * (1 + i / 10) for k, v in ALL.items()} for i in range(4)}
    from tise_bench.leaderboard.schema import TISE_ASPECTS

    return _board(values, TISE_ASPECTS)


def _brace_arg(text: str, start: int) -> tuple[str, int]:
    """The balanced ``{...}`` group opening at ``text[start]``: (its content, the index after it)."""
    assert text[start] == "{", text[start : start + 40]
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{" and text[i - 1] != "\\":
            depth += 1
        elif text[i] == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    raise AssertionError("unbalanced braces")


def _top_level_cells(row: str) -> int:
    """Cells of one tabular row, not counting the & of a nested tabular (there are none) or an escaped \\&."""
    return len(re.findall(r"(?<!\\)&", row)) + 1


def test_latex_groups_columns_by_aspect_and_shrinks_to_the_line_width() -> None:
    lb = _tise_board()
    tex = to_latex(lb, TableOptions(ci=False))
    assert tex.startswith(r"% requires \usepackage{booktabs,graphicx}")
    # the whole tabular is the content argument of a shrink-only \resizebox: never wider than \linewidth
    start = tex.index(r"\resizebox{")
    width, i = _brace_arg(tex, start + len(r"\resizebox"))
    assert width == r"\ifdim\width>\linewidth\linewidth\else\width\fi"
    height, i = _brace_arg(tex, i)
    content, _ = _brace_arg(tex, i)
    assert height == "!" and content.lstrip("%\n").startswith(r"\begin{tabular}{l")
    assert content.rstrip().endswith(r"\end{tabular}") and tex.count(r"\begin{tabular}") == 1
    spec = re.search(r"\\begin\{tabular\}\{([lr]+)\}", content).group(1)  # type: ignore[union-attr]
    lines = content.splitlines()
    groups, rules, header = lines[3], lines[4], lines[5]
    # 1 model + 11 metrics + 6 aspect scores + RS
    assert len(spec) == 1 + 11 + 6 + 1 == _top_level_cells(header)
    spans = [int(n) for n in re.findall(r"\\multicolumn\{(\d+)\}", groups)]
    names = re.findall(r"\\multicolumn\{\d+\}\{c\}\{([^}]*)\}", groups)
    assert names == [*lb["aspects"], "not in RS", "aspect scores"]
    assert spans == [2, 1, 2, 2, 1, 1, 2, 6]
    assert _top_level_cells(groups) - len(spans) + sum(spans) == len(spec)  # every column under the group row
    assert re.findall(r"\\cmidrule\(lr\)\{(\d+)-(\d+)\}", rules) == [
        ("2", "3"),
        ("4", "4"),
        ("5", "6"),
        ("7", "8"),
        ("9", "9"),
        ("10", "10"),
        ("11", "12"),
        ("13", "18"),
    ]
    assert header.split(" & ")[1:3] == [r"IS* $\uparrow$", r"FID $\downarrow$"]  # realism's metrics first
    assert header.split(" & ")[10:12] == [r"CLIP-S $\uparrow$", r"IS $\uparrow$"]  # then those not in RS
    body = content.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0].splitlines()
    assert len(body) == 4 and all(_top_level_cells(r) == len(spec) for r in body)


def test_latex_fit_options_and_the_paper_layout() -> None:
    lb = _tise_board()
    land = to_latex(lb, TableOptions(latex_fit="landscape"))
    assert land.startswith(r"% requires \usepackage{booktabs,graphicx,rotating}")
    assert r"\begin{sidewaystable}" in land and land.rstrip().endswith(r"\end{sidewaystable}")
    assert r"\resizebox{\ifdim\width>\linewidth" in land and r"\begin{table}" not in land
    bare = to_latex(lb, TableOptions(latex_fit="none"))
    assert r"\resizebox" not in bare and bare.startswith(r"% requires \usepackage{booktabs}")
    paper = to_latex(lb, TableOptions(latex_aspect_scores=False))
    spec = re.search(r"\\begin\{tabular\}\{([lr]+)\}", paper).group(1)  # type: ignore[union-attr]
    assert len(spec) == 1 + 11 + 1 and "{aspect scores}" not in paper
    with pytest.raises(ConfigError, match=r"leaderboard.latex_fit='wide': choose one of shrink, landscape, none"):
        LeaderboardOptions(data="d", latex_fit="wide")
    with pytest.raises(ConfigError, match="leaderboard.latex_aspect_scores must be true or false"):
        LeaderboardOptions.from_config({"data": "d", "leaderboard": {"latex_aspect_scores": "no"}})


def test_latex_escapes_a_leading_bracket_after_a_row_break() -> None:
    lb = _board({"[x] model": {"fid": 1.0}, "b": {"fid": 2.0}}, {"realism": ["fid"]})
    assert r"{[}x{]} model &" in to_latex(lb)  # `\\ [x]` would read [x] as the \\'s optional length


# --- notes say only what was computed; [lo, hi] ---------------------------------------------------------------------


def test_interval_notes_and_headings_only_when_intervals_are_shown() -> None:
    lb = _board({"a": {"fid": 15.0, "clip_rp": 70.0}, "b": {"fid": 25.0, "clip_rp": 60.0}}, {"r": ["fid", "RP"]})
    for text in (to_markdown(lb, TableOptions(ci=True)), to_latex(lb, TableOptions(ci=True)), render_html(lb)):
        assert "interval" not in text.replace("No bootstrap intervals: the uncertainty pass was not run", "")
        assert "±" not in text and "resamples" not in text
    assert "<h2>Metric values</h2>" in render_html(lb)
    lb["rows"][0]["ci"] = {"fid": [14.0, 22.0]}  # asymmetric: a ± half-width would hide that
    lb["bootstrap"] = {"n": 1000, "level": 0.95, "replicates": {"fid": 200, "clip_rp": 1000}}
    quiet = to_markdown(lb, TableOptions(ci=False))
    assert "[14.00, 22.00]" not in quiet and "interval" not in quiet  # bootstrap ran, but no interval printed
    md = to_markdown(lb, TableOptions(ci=True))
    assert "**15.00** [14.00, 22.00]" in md
    assert "[lo, hi] = 95% percentile bootstrap interval over resampled prompts, 200 resamples." in md
    tex = to_latex(lb, TableOptions(ci=True))
    assert r"\textbf{15.00}\\{\scriptsize [14.00, 22.00]}\end{tabular}" in tex and r"{[}lo, hi{]} = 95\%" in tex
    html = render_html(lb)
    assert "<h2>Metric values (error bars: 95% bootstrap interval)</h2>" in html
    assert '15<span class="ci">[14, 22]</span>' in html
    assert "[lo, hi] under a value = 95% percentile bootstrap interval over resampled prompts, 200 resamples." in html


def test_interval_note_names_the_resamples_each_metric_used() -> None:
    lb = _board({"a": {"fid": 15.0, "clip_rp": 70.0}, "b": {"fid": 25.0, "clip_rp": 60.0}}, {"r": ["fid", "RP"]})
    for r in lb["rows"]:
        r["ci"] = {"fid": [1.0, 2.0], "clip_rp": [3.0, 4.0]}
    lb["bootstrap"] = {"n": 1000, "level": 0.9, "replicates": {"fid": 200, "clip_rp": 1000}}
    md = to_markdown(lb, TableOptions(ci=True))
    assert "[lo, hi] = 90% percentile bootstrap interval over resampled prompts, 1000 resamples (FID: 200)." in md


def test_kendall_tau_says_why_it_has_fewer_resamples(tmp_path: Path) -> None:
    """Two models: A is better on CLIP-S in every replicate; on FID in the first 120 of its 200 replicates only.
    Where B wins FID the two RS tie (3 = 3) and τ is undefined; RS has 200 resamples, FID's count, not 1000."""
    n_fid, a_wins = 200, 120
    fid_a = np.where(np.arange(n_fid) < a_wins, 10.0, 30.0)
    dirs = {
        "A": _run(tmp_path, "A", {"clip_score": 0.9, "fid": 10.0}, {"clip_score": np.full(1000, 0.9), "fid": fid_a}),
        "B": _run(
            tmp_path,
            "B",
            {"clip_score": 0.1, "fid": 20.0},
            {"clip_score": np.full(1000, 0.1), "fid": np.full(200, 20.0)},
        ),
    }
    lb = _board(
        {"A": {"clip_score": 0.9, "fid": 10.0}, "B": {"clip_score": 0.1, "fid": 20.0}},
        {"relevance": ["clip_score"], "realism": ["fid"]},
    )
    add_uncertainty(lb, dirs, n_boot=1000)
    b = lb["bootstrap"]
    assert (b["n_rank"], len(lb["kendall_tau"]), b["kendall_tau_undefined"]) == (200, 120, 80)
    assert b["kendall_tau_undefined_why"].startswith("every row tied on RS (one shared rank)")
    assert b["n_rank_limited_by"] == ["fid"]
    text = re.sub(r"<[^>]+>", " ", render_html(lb))
    assert "τ over 120 of 200 RS resamples. In the other 80, every row tied on RS (one shared rank)" in text
    assert "RS was resampled 200 times, not leaderboard.bootstrap=1000: FID has only 200 replicates" in text


# --- log axis for FID-like metrics -----------------------------------------------------------------------------------


def _chart(html: str, title: str) -> str:
    return re.search(rf'<svg class="chart"[^>]*aria-label="{re.escape(title)}.*?</svg>', html).group(0)  # type: ignore[union-attr]


def test_distance_metrics_are_plotted_on_a_log_axis() -> None:
    lb = _board(
        {"a": {"fid": 10.0, "clip_rp": 50.0}, "b": {"fid": 1000.0, "clip_rp": 60.0}, "c": {"fid": 1e5, "clip_rp": 1}},
        {"realism": ["fid"], "relevance": ["RP"]},
    )
    html = render_html(lb)
    fid, rp = _chart(html, "FID (lower is better)"), _chart(html, "RP (higher is better)")
    assert 'data-scale="log"' in fid and "log scale" in fid and 'data-scale="linear"' in rp
    bars = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"[^>]*><title>(\w+):', fid)
    widths = {m: float(w) for w, m in bars}
    # the axis starts at 10: 10 -> 1000 is two decades, 10 -> 100000 four, twice as long
    assert widths["c"] == pytest.approx(2 * widths["b"], abs=0.2) and widths["a"] == 1.0  # a sits on the axis
    ticks = re.findall(r'class="mut">([^<]+)</text>', fid)
    assert ticks == ["10", "100", "1000", "10000", "100000"]
    lb["rows"][0]["values"]["fid"] = -1.0  # KID-like negative value: no log axis possible
    assert 'data-scale="linear"' in _chart(render_html(lb), "FID (lower is better)")
    line = ch.line_plot("FID", [(1.0, 10.0, None), (2.0, 1e4, None)], log=True)
    assert 'data-scale="log"' in line


# --- readable heatmap labels ---------------------------------------------------------------------------------------

_CELL = re.compile(r'<rect [^>]*fill="rgb\((\d+),(\d+),(\d+)\)"><title>[^<]*</title></rect><text [^>]*fill="([^"]+)"')


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def test_every_heatmap_label_contrasts_with_its_cell() -> None:
    probs = [list(np.linspace(0, 1, 21))]  # every shade the palette makes, the black/white crossover included
    svg = ch.heatmap(["m"], probs)
    cells = _CELL.findall(svg)
    assert len(cells) == 21
    for r, g, b, fg in cells:
        ratio = ch.contrast_ratio((int(r), int(g), int(b)), _hex(fg))
        assert ratio >= WCAG_AA, (r, g, b, fg, ratio)
    assert ch.contrast_ratio((255, 255, 255), (0, 0, 0)) == pytest.approx(21.0)
    assert ch.contrast_ratio((119, 119, 119), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)  # WCAG's example


def _could_style_a_label(selector: str) -> bool:
    """Could this CSS selector match a heatmap label, ``<text class="cell" fill="...">`` inside an ``<svg>``?"""
    last = selector.strip().split()[-1]
    if ":not([fill])" in last:
        return False
    tag = re.match(r"[a-z*]+", last)
    if tag and tag.group(0) not in ("text", "*"):
        return False
    return all(c == "cell" for c in re.findall(r"\.([\w-]+)", last))


def test_no_css_rule_overrides_the_labels_fill() -> None:
    """A stylesheet's fill beats an SVG fill attribute: no rule that can reach a heatmap label may set one."""
    css = re.search(r"<style>(.*?)</style>", render_html({"data": "d", "metrics": [], "rows": []}), re.S).group(1)  # type: ignore[union-attr]
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        if re.search(r"(^|;)\s*fill\s*:", body):
            for sel in selectors.split(","):
                assert not _could_style_a_label(sel), f"CSS rule {sel.strip()!r} {{{body}}} overrides the label fill"
    assert _could_style_a_label("svg text") and not _could_style_a_label("svg text.mut")


def _screenshot(page: Path, tmp: Path, size: tuple[int, int]) -> np.ndarray:
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the rendered contrast is not checked")
    png = tmp / "heatmap.png"
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=2",  # thicker glyph strokes: their cores reach the text colour
        f"--user-data-dir={tmp / 'profile'}",
        f"--screenshot={png}",
        f"--window-size={size[0]},{size[1]}",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and png.is_file(), proc.stderr[-3000:]
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_heatmap_labels_are_readable_in_a_chromium_screenshot(tmp_path: Path) -> None:
    """The page as a browser draws it, CSS included: in cells of three shades (darkest, the black/white crossover,
    white) the label's most contrasting pixel against the cell must reach WCAG AA (4.5:1)."""
    shades = {"dark": 1.0, "mid": 0.42, "light": 0.02}  # light, not 0: a white cell is the page's white
    models = ["m1", "m2", "m3"]
    probs = {m: [0.0, 0.0, 0.0] for m in models}
    probs["m1"][2] = shades["dark"]  # place #1 of m1 (rank N = 3)
    probs["m2"][1] = shades["mid"]  # place #2 of m2
    probs["m3"][0] = shades["light"]  # place #3 of m3
    lb: Leaderboard = {
        "data": "d",
        "metrics": [],
        "rows": [{"model": m, "values": {}} for m in models],
        "rank_probabilities": probs,
    }
    page = tmp_path / "leaderboard.html"
    page.write_text(render_html(lb), encoding="utf-8")
    rgb = _screenshot(page, tmp_path, (900, 1200))
    checked = []
    for name, p in shades.items():
        cell = np.asarray(ch._rgb(p))
        mask = (np.abs(rgb - cell).max(axis=2) <= 2).astype(int)
        labels, n = ndimage.label(mask)
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        big = [k + 1 for k, s in enumerate(sizes) if 60 * 60 <= s <= 100 * 100]  # a 44 px cell at 2x: ~88 x 88
        assert big, f"no {name} heatmap cell of colour {tuple(cell)} found in the screenshot"
        ys, xs = np.nonzero(labels == big[0])
        box = rgb[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].reshape(-1, 3)
        ink = box[np.abs(box - cell).max(axis=1) > 2]  # the label's pixels (and their antialiased edges)
        assert len(ink) > 20, f"no label drawn in the {name} cell"
        best = max(ch.contrast_ratio(tuple(cell), tuple(px)) for px in np.unique(ink, axis=0))
        checked.append((name, round(best, 2)))
        assert best >= WCAG_AA, (name, tuple(cell), best)
    assert [c[0] for c in checked] == ["dark", "mid", "light"]


# --- documentation ---------------------------------------------------------------------------------------------------


def test_readme_documents_every_leaderboard_option() -> None:
    conf = yaml.safe_load((ROOT / "tise_bench/leaderboard/conf/leaderboard.yaml").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Leaderboard\n") :]
    section = section[: section.index("\n## ", 4)]
    missing = [k for k in conf["leaderboard"] if f"leaderboard.{k}" not in section]
    assert not missing, f"README's Leaderboard section does not mention {missing}"
