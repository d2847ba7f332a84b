"""Render a :class:`~tise_bench.leaderboard.schema.Leaderboard` as CSV, Markdown, plain text (the CLI) and JSON;
LaTeX lives in :mod:`.latex` on the helpers here.

Pure functions of the Leaderboard dict: one row per model (in the dict's order, i.e. RS descending), metric
columns grouped by aspect (:func:`column_groups`: each aspect's metrics, then those in no aspect, "not in RS"),
one column per aspect score, and ``RS``. Published baselines are marked ``†`` (their footnote names their
protocol, ``tise-paper`` by default), runs made with random-weights backbones ``‡``; excluded metrics,
non-comparable columns ranked with ``leaderboard.allow_mixed=true``, protocols other than TISE's and runs
predating comparability recording are named in footnotes (CSV has no footnotes: the JSON holds them under
``comparability``).

Bold (:func:`best_rows`): the one row whose *unrounded* value is best in its column, by the metric's direction
(aspect scores and RS: higher is better). Values that print alike after rounding are not all bold: only the
best before rounding; an exact tie for the best bolds none. A footnote says so where it happened.
Intervals (``leaderboard.ci=true``) are printed as ``[lo, hi]`` — always, since bootstrap intervals of FID-like
metrics are far from symmetric — and footnoted only when some cell shows one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..registry import all_metrics
from .comparable import comparability_notes, published_note
from .schema import Leaderboard, Row

EXTERNAL_MARK = "†"
RANDOM_MARK = "‡"
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",  # OT1 fonts print < > | as other glyphs
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "[": "{[}",  # a cell starting with [ after a row's \\ would be read as \\[<length>]
    "]": "{]}",
}
#: Line breaks (and runs of whitespace holding one) in a name: a space in every format (a blank line ends a
#: LaTeX paragraph inside the tabular; a newline ends a Markdown table row).
_LINE_BREAKS = re.compile(r"\s*[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
#: OWASP's CSV-injection rule: a cell starting with one of these is a formula to a spreadsheet.
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_MD_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


#: ``leaderboard.latex_fit``: how the LaTeX table fits the page.
LATEX_FITS = ("shrink", "landscape", "none")
NOT_IN_RS = "not in RS"  # column group of the metrics that are in no (scored) aspect
ASPECT_SCORES = "aspect scores"


@dataclass(frozen=True)
class TableOptions:
    """Number formatting: ``decimals`` for every value unless ``decimals_by_metric[id]`` says otherwise."""

    decimals: int = 2
    decimals_by_metric: Mapping[str, int] = field(default_factory=dict)
    ci: bool = False  # print the bootstrap interval "[lo, hi]" beside each value that has one
    latex_fit: str = "shrink"  # shrink (to the line width, never enlarged) | landscape (sidewaystable) | none
    latex_aspect_scores: bool = True  # the LaTeX table's aspect-score columns (false: TISE's paper layout)


@dataclass(frozen=True)
class _Col:
    key: str  # metric id, "aspect:<name>" or "rs"
    header: str
    higher_is_better: bool
    arrow: bool  # metric columns get ↑/↓ in the header


def one_line(text: str) -> str:
    """``text`` on one line: line breaks (with the whitespace around them) become one space, other control
    characters are dropped."""
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", text))


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (``_`` in model names above all); never a line break (a blank line in
    a tabular is an error)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in one_line(text))


def markdown_escape(text: str) -> str:
    """A name as literal text in a Markdown table cell: one line, ``|`` escaped, no raw HTML (``<``/``>`` and an
    ``&`` that would start an entity are written as entities)."""
    text = _MD_ENTITY.sub("&amp;", one_line(text))
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", r"\|")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (starting ``= + - @``, tab or CR) gets a leading
    apostrophe (OWASP); numbers, and text that is a plain number such as ``-1.5``, are left as they are."""
    if isinstance(value, str) and value.startswith(_CSV_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def fmt_number(v: float | None, decimals: int) -> str:
    """Fixed-point with ``decimals`` digits; missing values print as an en dash."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{decimals}f}"


def column_groups(lb: Leaderboard, aspect_scores: bool = True) -> list[tuple[str, list[_Col]]]:
    """Table columns in groups: each scored aspect's metrics (aspect order), the metrics in no aspect
    (:data:`NOT_IN_RS`), the aspect scores (:data:`ASPECT_SCORES`, if ``aspect_scores``), and ``("", [RS])``.
    Within a group metrics keep the leaderboard's column order."""
    metrics = {m["id"]: _Col(m["id"], m["display"], m["higher_is_better"], True) for m in lb.get("metrics", [])}
    groups: list[tuple[str, list[_Col]]] = []
    placed: set[str] = set()
    for name, ms in (lb.get("aspects") or {}).items():
        cols = [c for mid, c in metrics.items() if mid in ms and mid not in placed]
        placed.update(c.key for c in cols)
        if cols:
            groups.append((name, cols))
    rest = [c for mid, c in metrics.items() if mid not in placed]
    if rest:
        groups.append((NOT_IN_RS, rest))
    if aspect_scores and lb.get("aspects"):
        groups.append((ASPECT_SCORES, [_Col(f"aspect:{a}", a, True, False) for a in lb.get("aspects", {})]))
    return [*groups, ("", [_Col("rs", "RS", True, False)])]


def _columns(lb: Leaderboard, aspect_scores: bool = True) -> list[_Col]:
    return [c for _, cols in column_groups(lb, aspect_scores) for c in cols]


def _value(row: Row, key: str) -> float | None:
    if key == "rs":
        return row.get("rs")
    if key.startswith("aspect:"):
        return row.get("aspects", {}).get(key[len("aspect:") :])
    return row.get("values", {}).get(key)


def _decimals(key: str, opts: TableOptions) -> int:
    return int(opts.decimals_by_metric.get(key, opts.decimals))


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def best_rows(values: Sequence[float | None], higher_is_better: bool) -> set[int]:
    """The bold rule, for every format: the index of the single best value, compared unrounded; empty when two or
    more rows share the best value exactly, or fewer than two rows have a value (nothing to be best among)."""
    vals = {i: f for i, v in enumerate(values) if (f := _num(v)) is not None}
    if len(vals) < 2:
        return set()
    best = max(vals.values()) if higher_is_better else min(vals.values())
    winners = {i for i, v in vals.items() if v == best}
    return winners if len(winners) == 1 else set()


def _best(lb: Leaderboard, col: _Col) -> set[int]:
    return best_rows([_value(r, col.key) for r in lb.get("rows", [])], col.higher_is_better)


def _bold_note(lb: Leaderboard, cols: Sequence[_Col], opts: TableOptions) -> str | None:
    """Where the bold rule did something a reader could not see: a bold value printed like an unbolded one,
    or a best value tied exactly (none bold)."""
    rows = lb.get("rows", [])
    alike, tied = [], []
    for c in cols:
        vals = [_value(r, c.key) for r in rows]
        texts = [fmt_number(v, _decimals(c.key, opts)) for v in vals]
        best = _best(lb, c)
        if best:
            (i,) = best
            if sum(t == texts[i] for t in texts) > 1:
                alike.append(c.header)
        elif sum(_num(v) is not None for v in vals) >= 2:
            tied.append(c.header)
    parts = []
    if alike:
        parts.append(f"in {', '.join(alike)} values print alike and only the best before rounding is bold")
    if tied:
        parts.append(f"{', '.join(tied)}: best value shared exactly by several rows, none bold")
    if not parts:
        return None
    return "Bold = the best value of a column compared unrounded; " + "; ".join(parts) + "."


def interval(row: Row, key: str) -> tuple[float, float] | None:
    """A row's bootstrap interval for metric ``key`` when both bounds are finite, else None."""
    ci = row.get("ci", {}).get(key)
    if not ci or len(ci) != 2:
        return None
    lo, hi = _num(ci[0]), _num(ci[1])
    return (lo, hi) if lo is not None and hi is not None else None


def _shown_intervals(lb: Leaderboard, cols: Sequence[_Col], opts: TableOptions) -> list[str]:
    """Metric ids of the columns in which some cell prints an interval."""
    if not opts.ci:
        return []
    return [c.key for c in cols if c.arrow and any(interval(r, c.key) for r in lb.get("rows", []))]


def interval_note(lb: Leaderboard, shown: Sequence[str], what: str = "[lo, hi]") -> str | None:
    """What the printed intervals are, with the resamples each metric actually used (the FID and IS families
    have fewer: ``bootstrap.replicates_features``). None when no interval is shown or no bootstrap ran."""
    b = lb.get("bootstrap") or {}
    if not shown or not b:
        return None
    names = {m["id"]: m["display"] for m in lb.get("metrics", [])}
    used = b.get("replicates") or {}
    by_n: dict[int, list[str]] = {}
    for mid in shown:
        by_n.setdefault(int(used.get(mid, b.get("n", 0))), []).append(names.get(mid, mid))
    counts = sorted(by_n, key=lambda n: (-len(by_n[n]), -n))
    main = f"{counts[0]} resamples"
    others = "; ".join(f"{', '.join(by_n[n])}: {n}" for n in counts[1:])
    level = 100 * float(b.get("level", 0.95))
    return (
        f"{what} = {level:g}% percentile bootstrap interval over resampled prompts, {main}"
        + (f" ({others})" if others else "")
        + "."
    )


def _marks(lb: Leaderboard, row: Row) -> str:
    random = set(lb.get("random_weights", []))
    return (EXTERNAL_MARK if row.get("external") else "") + (RANDOM_MARK if row["model"] in random else "")


def _cell(row: Row, col: _Col, opts: TableOptions) -> tuple[str, str | None]:
    """(value text, interval text "[lo, hi]" or None)."""
    d = _decimals(col.key, opts)
    text = fmt_number(_value(row, col.key), d)
    ci = interval(row, col.key) if opts.ci and col.arrow and _value(row, col.key) is not None else None
    return text, (f"[{fmt_number(ci[0], d)}, {fmt_number(ci[1], d)}]" if ci else None)


def footnotes(lb: Leaderboard, opts: TableOptions = TableOptions(), cols: Sequence[_Col] | None = None) -> list[str]:
    """Plain-text notes a table of ``cols`` (default: every column) carries: baselines (with their protocol),
    random weights, comparability (mixes ranked with ``allow_mixed``, protocols other than TISE's, runs predating
    comparability recording), excluded metrics, the intervals (only when some cell shows one), the bold rule
    (only where it decided something invisible), and how RS is made."""
    cols = _columns(lb) if cols is None else cols
    notes: list[str] = []
    published = published_note(lb, EXTERNAL_MARK)
    if published:
        notes.append(published)
    notes += comparability_notes(lb)
    if lb.get("random_weights"):
        notes.append(
            f"{RANDOM_MARK} evaluated with RANDOM-WEIGHTS backbones: smoke-test numbers, not comparable to any paper."
        )
    names = {
        **{k: s.display for k, s in all_metrics().items()},
        **{m["id"]: m["display"] for m in lb.get("metrics", [])},
    }
    for mid, why in lb.get("excluded", {}).items():
        notes.append(f"{names.get(mid, mid)} not in RS: {why}.")
    ci_note = interval_note(lb, _shown_intervals(lb, cols, opts))
    if ci_note:
        notes.append(ci_note)
    bold = _bold_note(lb, cols, opts)
    if bold:
        notes.append(bold)
    aspects = "; ".join(
        f"{a} = mean rank of {', '.join(names.get(m, m) for m in ms)}" for a, ms in lb.get("aspects", {}).items()
    )
    if aspects:
        notes.append(f"Ranks: best = N, ties averaged. {aspects}; RS = sum of aspect scores.")
    return notes


def to_frame(lb: Leaderboard) -> pd.DataFrame:
    """Numeric table (full precision): model, external, step, metric columns (+ CI bounds), aspects, RS."""
    rows = lb.get("rows", [])
    random = set(lb.get("random_weights", []))
    recs: list[dict[str, Any]] = []
    for r in rows:
        rec: dict[str, Any] = {
            "model": r["model"],
            "external": bool(r.get("external")),
            "step": r.get("step"),
            "random_weights": r["model"] in random,
        }
        for m in lb.get("metrics", []):
            rec[m["display"]] = r.get("values", {}).get(m["id"])
            if any(m["id"] in x.get("ci", {}) for x in rows):
                lo_hi = r.get("ci", {}).get(m["id"])
                rec[f"{m['display']} CI low"] = lo_hi[0] if lo_hi else None
                rec[f"{m['display']} CI high"] = lo_hi[1] if lo_hi else None
        rec.update(r.get("aspects", {}))
        rec["RS"] = r.get("rs")
        recs.append(rec)
    df = pd.DataFrame(recs)
    if "step" in df and df["step"].isna().all():
        df = df.drop(columns="step")
    elif "step" in df:
        df["step"] = df["step"].astype("Int64")
    return df


def to_csv(lb: Leaderboard) -> str:
    """:func:`to_frame` as CSV, text cells and headers made safe for spreadsheets (:func:`csv_cell`)."""
    df = to_frame(lb)
    df.columns = [_csv_text(str(c)) for c in df.columns]
    for c in df.columns:
        if pd.api.types.is_object_dtype(df[c]) or pd.api.types.is_string_dtype(df[c]):
            df[c] = df[c].map(_csv_text)
    return df.to_csv(index=False)


def _csv_text(value: Any) -> Any:
    """:func:`csv_cell`, then a lone CR as a newline: the writer quotes a cell holding a newline (its line
    terminator) but not one holding only a CR, which readers take as a line break."""
    value = csv_cell(value)
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else value


def _finite(o):
    """NaN/inf -> None recursively: leaderboard.json stays strict JSON (e.g. an all-NaN bootstrap CI)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def to_json(lb: Leaderboard) -> str:
    return json.dumps(_finite(lb), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _has_step(lb: Leaderboard) -> bool:
    return any(r.get("step") is not None for r in lb.get("rows", []))


def to_markdown(lb: Leaderboard, opts: TableOptions = TableOptions()) -> str:
    """GitHub-flavoured Markdown table, columns grouped by aspect (:func:`column_groups`), the best value of
    each column in bold (:func:`best_rows`), intervals as ``[lo, hi]``, footnotes below."""
    cols = _columns(lb)
    step = _has_step(lb)
    head = [
        "#",
        "Model",
        *(["Step"] if step else []),
        *[markdown_escape(c.header) + (f" {'↑' if c.higher_is_better else '↓'}" if c.arrow else "") for c in cols],
    ]
    best = {c.key: _best(lb, c) for c in cols}
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---:", ":---", *(["---:"] if step else []), *["---:"] * len(cols)]) + "|",
    ]
    for i, r in enumerate(lb.get("rows", [])):
        cells = [str(i + 1), markdown_escape(r["model"]) + _marks(lb, r)]
        if step:
            cells.append("" if r.get("step") is None else str(r["step"]))
        for c in cols:
            text, ci = _cell(r, c, opts)
            text = f"**{text}**" if i in best[c.key] else text
            cells.append(text + (f" {ci}" if ci else ""))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [markdown_escape(n) for n in footnotes(lb, opts, cols)]
    title = f"Leaderboard — {markdown_escape(str(lb.get('data', '')))}"
    return "\n".join([title, "", *lines, *([""] + notes if notes else [])]) + "\n"


def to_text(lb: Leaderboard, opts: TableOptions = TableOptions()) -> str:
    """The ranked table for a terminal (what ``python -m tise_bench.leaderboard`` prints): rank, model with its
    marks, each metric grouped by aspect, RS; aligned columns, no intervals, no aspect scores (the files have
    them); a legend of the marks and the metrics left out of RS below."""
    cols = _columns(lb, aspect_scores=False)
    rows = lb.get("rows", [])
    step = _has_step(lb)
    head = ["#", "model", *(["step"] if step else [])]
    head += [one_line(c.header) + (("↑" if c.higher_is_better else "↓") if c.arrow else "") for c in cols]
    table = [head]
    for i, r in enumerate(rows):
        line = [str(i + 1), one_line(str(r["model"])) + _marks(lb, r)]
        if step:
            line.append("" if r.get("step") is None else str(r["step"]))
        table.append(line + [fmt_number(_value(r, c.key), _decimals(c.key, opts)) for c in cols])
    widths = [max(len(t[j]) for t in table) for j in range(len(head))]
    left = {1}  # the model column; numbers are right-aligned

    def fmt_line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if j in left else c.rjust(w) for j, (c, w) in enumerate(zip(cells, widths)))

    out = [fmt_line(head), "  ".join("-" * w for w in widths), *(fmt_line(t) for t in table[1:])]
    legend = []
    if any(r.get("external") for r in rows):
        legend.append(f"{EXTERNAL_MARK} published baseline")
    if lb.get("random_weights"):
        legend.append(f"{RANDOM_MARK} random-weights backbones (smoke test, not comparable to any paper)")
    excluded = [m["display"] for m in lb.get("metrics", []) if m["id"] in (lb.get("excluded") or {})]
    if excluded:
        legend.append(f"not in RS: {', '.join(excluded)}")
    return "\n".join([*(x.rstrip() for x in out), *(["; ".join(legend)] if legend else [])]) + "\n"
