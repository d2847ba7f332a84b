"""The leaderboard as a LaTeX (booktabs) table that fits a page.

Columns are grouped by aspect under ``\\cmidrule``-underlined headers (:func:`~.tables.column_groups`); the
tabular is shrunk to the line width when wider (``\\resizebox``, never enlarged), or set on its own rotated page
(``leaderboard.latex_fit=landscape``: ``sidewaystable``); ``none`` leaves it at its natural width. Bold and
intervals follow the rules of :mod:`.tables`; an interval is set under its value in a smaller size.
"""

from __future__ import annotations

from .schema import Leaderboard
from .tables import (
    EXTERNAL_MARK,
    LATEX_FITS,
    RANDOM_MARK,
    TableOptions,
    _best,
    _cell,
    _Col,
    _has_step,
    _marks,
    column_groups,
    footnotes,
    latex_escape,
)

LATEX_MARKS = {EXTERNAL_MARK: r"$^\dagger$", RANDOM_MARK: r"$^\ddagger$"}
#: Shrink to the line width only when wider (graphicx: \width is the natural width of the box's content).
SHRINK = r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%"


def _head(c: _Col) -> str:
    arrow = (r" $\uparrow$" if c.higher_is_better else r" $\downarrow$") if c.arrow else ""
    return latex_escape(c.header) + arrow


def _note(text: str) -> str:
    text = latex_escape(text)
    for mark, tex in LATEX_MARKS.items():
        text = text.replace(mark, tex)
    return text.replace("±", r"$\pm$").replace("≤", r"$\le$")


def to_latex(lb: Leaderboard, opts: TableOptions = TableOptions()) -> str:
    """A booktabs ``table`` (``sidewaystable`` for ``latex_fit=landscape``): aspect-grouped headers, ↑/↓ on
    metric columns, the best value per column in ``\\textbf``, escaped names, footnotes and caption below."""
    if opts.latex_fit not in LATEX_FITS:
        raise ValueError(f"latex_fit={opts.latex_fit!r}: choose one of {', '.join(LATEX_FITS)}")
    groups = column_groups(lb, opts.latex_aspect_scores)
    cols = [c for _, cs in groups for c in cs]
    step = _has_step(lb)
    lead = 2 if step else 1
    best = {c.key: _best(lb, c) for c in cols}

    group_cells, rules, first = [""] * lead, [], lead + 1
    for name, cs in groups:
        last = first + len(cs) - 1
        if name:
            group_cells.append(rf"\multicolumn{{{len(cs)}}}{{c}}{{{latex_escape(name)}}}")
            rules.append(rf"\cmidrule(lr){{{first}-{last}}}")
        else:
            group_cells += [""] * len(cs)
        first = last + 1

    body: list[str] = []
    for i, r in enumerate(lb.get("rows", [])):
        cells = [latex_escape(r["model"]) + "".join(LATEX_MARKS[m] for m in _marks(lb, r))]
        if step:
            cells.append("" if r.get("step") is None else str(r["step"]))
        for c in cols:
            text, ci = _cell(r, c, opts)
            text = text.replace("–", "--")
            text = rf"\textbf{{{text}}}" if i in best[c.key] else text
            if ci:  # value over its interval, one row of the outer table
                text = rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{text}\\{{\scriptsize {ci}}}\end{{tabular}}"
            cells.append(text)
        body.append(" & ".join(cells) + r" \\")

    tabular = [
        rf"\begin{{tabular}}{{l{'r' * (len(cols) + lead - 1)}}}",
        r"\toprule",
        " & ".join(group_cells) + r" \\",
        " ".join(rules),
        " & ".join(["Model", *(["Step"] if step else []), *[_head(c) for c in cols]]) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
    ]
    if opts.latex_fit != "none":
        tabular = [SHRINK, *tabular[:-1], tabular[-1] + "}"]
    env = "sidewaystable" if opts.latex_fit == "landscape" else "table"
    packages = (
        "booktabs" + (",graphicx" if opts.latex_fit != "none" else "") + (",rotating" if env == "sidewaystable" else "")
    )
    notes = [_note(n) for n in footnotes(lb, opts, cols)]
    data = latex_escape(str(lb.get("data", "")))
    label = "".join(ch if ch.isalnum() else "-" for ch in str(lb.get("data", "")))
    out = [
        rf"% requires \usepackage{{{packages}}}",
        rf"\begin{{{env}}}{'[t]' if env == 'table' else ''}",
        r"\centering",
        r"\small",
        *tabular,
    ]
    if notes:
        out += [r"\par\smallskip", r"\parbox{\linewidth}{\footnotesize " + r" \\ ".join(notes) + "}"]
    out += [
        rf"\caption{{Leaderboard on {data}: ranking score (RS) and its metrics.}}",
        rf"\label{{tab:leaderboard-{label}}}",
        rf"\end{{{env}}}",
    ]
    return "\n".join(out) + "\n"
