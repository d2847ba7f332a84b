"""Render a :class:`~tise_bench.leaderboard.schema.Leaderboard` as CSV, Markdown, LaTeX (booktabs) and JSON.

Pure functions of the Leaderboard dict: one row per model (in the dict's order, i.e. RS descending), a column
per metric under its display name, one per aspect, and ``RS``. Published baselines are marked ``†`` (their
footnote names their protocol, ``tise-paper`` by default), runs made with random-weights backbones ``‡``;
excluded metrics, non-comparable columns ranked with ``leaderboard.allow_mixed=true``, protocols other than
TISE's and runs predating comparability recording are named in footnotes (CSV has no footnotes: the JSON
holds them under ``comparability``). "Best" is judged on the
values *as printed* (so two values that print the same are both bold) and follows each metric's direction;
aspect scores and RS are higher-is-better.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..registry import all_metrics
from .comparable import comparability_notes, published_note
from .schema import Leaderboard, Row

EXTERNAL_MARK = "†"
RANDOM_MARK = "‡"
_LATEX_MARKS = {EXTERNAL_MARK: r"$^\dagger$", RANDOM_MARK: r"$^\ddagger$"}
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
}
#: Line breaks (and runs of whitespace holding one) in a name: a space in every format (a blank line ends a
#: LaTeX paragraph inside the tabular; a newline ends a Markdown table row).
_LINE_BREAKS = re.compile(r"\s*[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
#: OWASP's CSV-injection rule: a cell starting with one of these is a formula to a spreadsheet.
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_MD_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


@dataclass(frozen=True)
class TableOptions:
    """Number formatting: ``decimals`` for every value unless ``decimals_by_metric[id]`` says otherwise."""

    decimals: int = 2
    decimals_by_metric: Mapping[str, int] = field(default_factory=dict)
    ci: bool = False  # print "value ± half-width" where a row carries a bootstrap interval


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


def _columns(lb: Leaderboard) -> list[_Col]:
    cols = [_Col(m["id"], m["display"], m["higher_is_better"], True) for m in lb.get("metrics", [])]
    cols += [_Col(f"aspect:{a}", a, True, False) for a in lb.get("aspects", {})]
    return [*cols, _Col("rs", "RS", True, False)]


def _value(row: Row, key: str) -> float | None:
    if key == "rs":
        return row.get("rs")
    if key.startswith("aspect:"):
        return row.get("aspects", {}).get(key[len("aspect:") :])
    return row.get("values", {}).get(key)


def _decimals(key: str, opts: TableOptions) -> int:
    return int(opts.decimals_by_metric.get(key, opts.decimals))


def _best(lb: Leaderboard, col: _Col, opts: TableOptions) -> set[int]:
    """Indices of the rows holding the best printed value of ``col`` (all of them on a tie)."""
    d = _decimals(col.key, opts)
    vals = {i: round(v, d) for i, r in enumerate(lb.get("rows", [])) if (v := _value(r, col.key)) is not None}
    if not vals:
        return set()
    best = max(vals.values()) if col.higher_is_better else min(vals.values())
    return {i for i, v in vals.items() if v == best}


def _marks(lb: Leaderboard, row: Row) -> str:
    random = set(lb.get("random_weights", []))
    return (EXTERNAL_MARK if row.get("external") else "") + (RANDOM_MARK if row["model"] in random else "")


def _cell(row: Row, col: _Col, opts: TableOptions, pm: str) -> str:
    v = _value(row, col.key)
    text = fmt_number(v, _decimals(col.key, opts))
    ci = row.get("ci", {}).get(col.key) if opts.ci else None
    if v is not None and ci is not None and len(ci) == 2:
        text += f"{pm}{fmt_number((ci[1] - ci[0]) / 2, _decimals(col.key, opts))}"
    return text


def footnotes(lb: Leaderboard) -> list[str]:
    """Plain-text notes every table carries: baselines (with their protocol), random weights, comparability
    (mixes ranked with ``allow_mixed``, protocols other than TISE's, runs predating comparability recording),
    excluded metrics."""
    rows = lb.get("rows", [])
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
    if rows and any(r.get("ci") for r in rows) and lb.get("bootstrap"):
        b = lb["bootstrap"]
        notes.append(
            f"± = half-width of the {100 * float(b.get('level', 0.95)):g}% bootstrap interval ({b.get('n')} resamples)."
        )
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
    """GitHub-flavoured Markdown table, best values in bold, footnotes below."""
    cols = _columns(lb)
    step = _has_step(lb)
    head = [
        "#",
        "Model",
        *(["Step"] if step else []),
        *[markdown_escape(c.header) + (f" {'↑' if c.higher_is_better else '↓'}" if c.arrow else "") for c in cols],
    ]
    best = {c.key: _best(lb, c, opts) for c in cols}
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---:", ":---", *(["---:"] if step else []), *["---:"] * len(cols)]) + "|",
    ]
    for i, r in enumerate(lb.get("rows", [])):
        cells = [str(i + 1), markdown_escape(r["model"]) + _marks(lb, r)]
        if step:
            cells.append("" if r.get("step") is None else str(r["step"]))
        for c in cols:
            text = _cell(r, c, opts, " ± ")
            cells.append(f"**{text}**" if i in best[c.key] else text)
        lines.append("| " + " | ".join(cells) + " |")
    notes = [markdown_escape(n) for n in footnotes(lb)]
    title = f"Leaderboard — {markdown_escape(str(lb.get('data', '')))}"
    return "\n".join([title, "", *lines, *([""] + notes if notes else [])]) + "\n"


def to_latex(lb: Leaderboard, opts: TableOptions = TableOptions()) -> str:
    """A booktabs ``table``: ↑/↓ in metric headers, best per column in ``\\textbf``, escaped names."""
    cols = _columns(lb)
    step = _has_step(lb)
    best = {c.key: _best(lb, c, opts) for c in cols}

    def head(c: _Col) -> str:
        arrow = (r" $\uparrow$" if c.higher_is_better else r" $\downarrow$") if c.arrow else ""
        return latex_escape(c.header) + arrow

    spec = "l" + ("r" if step else "") + "r" * len(cols)
    header = ["Model", *(["Step"] if step else []), *[head(c) for c in cols]]
    body: list[str] = []
    for i, r in enumerate(lb.get("rows", [])):
        marks = "".join(_LATEX_MARKS[m] for m in _marks(lb, r))
        cells = [latex_escape(r["model"]) + marks]
        if step:
            cells.append("" if r.get("step") is None else str(r["step"]))
        for c in cols:
            text = _cell(r, c, opts, r" $\pm$ ").replace("–", "--")
            cells.append(rf"\textbf{{{text}}}" if i in best[c.key] else text)
        body.append(" & ".join(cells) + r" \\")
    notes = [
        latex_escape(n)
        .replace(EXTERNAL_MARK, _LATEX_MARKS[EXTERNAL_MARK])
        .replace(RANDOM_MARK, _LATEX_MARKS[RANDOM_MARK])
        .replace("±", r"$\pm$")
        .replace("≤", r"$\le$")
        for n in footnotes(lb)
    ]
    data = latex_escape(str(lb.get("data", "")))
    label = "".join(ch if ch.isalnum() else "-" for ch in str(lb.get("data", "")))
    out = [
        r"% requires \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
    ]
    if notes:
        out += [r"\par\smallskip", r"\parbox{\linewidth}{\footnotesize " + r" \\ ".join(notes) + "}"]
    out += [
        rf"\caption{{Leaderboard on {data}: ranking score (RS) and its metrics.}}",
        rf"\label{{tab:leaderboard-{label}}}",
        r"\end{table}",
    ]
    return "\n".join(out) + "\n"
