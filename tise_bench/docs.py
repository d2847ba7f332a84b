"""Metric tables in the docs, generated from the metric registry (one fact, one place).

Two tables are rendered from :func:`tise_bench.registry.all_metrics`, one row per metric in registration
order (the order in which ``tise_bench/metrics/__init__.py`` imports the metric modules, then decorator
order within each module), so a new metric gets its rows with no change here:

- ``metrics/README.md``: id | display | ↑/↓ | subset | unit | version | parameters (defaults) | citation
- ``README.md`` (section "Metrics"): id | display | direction | definition

Each table lives between the lines ``<!-- metrics-table:begin -->`` and ``<!-- metrics-table:end -->``.
``python -m tise_bench.docs --write`` rewrites both regions in place; ``--check`` prints a diff and exits 1
when a file differs from what the registry renders (``tests/test_docs_drift.py`` runs the same check).

The "definition" cell is the metric's one-line summary: ``spec.summary`` when the registry carries one,
else the first sentence of its description (the metric function's docstring unless given at registration).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterable

from .registry import MetricSpec, all_metrics

BEGIN = "<!-- metrics-table:begin -->"
END = "<!-- metrics-table:end -->"
NOTICE = (
    "<!-- generated from tise_bench.registry by `python -m tise_bench.docs --write`: "
    "edit the metric's registration or docstring, not this table -->"
)
#: Words whose trailing period does not end a sentence (``et al. 2021``, ``e.g. FID``).
_ABBREVIATIONS = ("al", "e.g", "i.e", "cf", "vs", "approx", "resp")


def first_sentence(text: str) -> str:
    """The first sentence of ``text``'s first paragraph, on one line: up to the first ``.`` that is followed
    by whitespace (or ends the paragraph), lies outside brackets and does not close an abbreviation."""
    paragraph = " ".join(re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0].split())
    depth = 0
    for i, ch in enumerate(paragraph):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == "." and depth == 0 and (i + 1 == len(paragraph) or paragraph[i + 1].isspace()):
            word = paragraph[:i].rsplit(" ", 1)[-1].lower()
            if word not in _ABBREVIATIONS:
                return paragraph[: i + 1]
    return paragraph


def summary(spec: MetricSpec) -> str:
    """One-line definition of a metric for the README table (a table cell: no final period)."""
    explicit = getattr(spec, "summary", "")
    text = " ".join(str(explicit).split()) if explicit else first_sentence(spec.description)
    return text[:-1] if text.endswith(".") and not text.endswith("..") else text


def _cell(text: str) -> str:
    """Markdown table cell: reST ``literal`` becomes `literal`; pipes are escaped; one line."""
    text = re.sub(r"``(.+?)``", r"`\1`", " ".join(text.split()))
    return text.replace("|", r"\|")


def _table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _arrow(spec: MetricSpec) -> str:
    return "↑" if spec.higher_is_better else "↓"


def _yaml_value(v: object) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def params_cell(spec: MetricSpec) -> str:
    """``key=default`` for each parameter of the metric's parameter dataclass (the one place they live)."""
    if spec.params is None:
        return "—"
    return ", ".join(f"`{f.name}={_yaml_value(f.default)}`" for f in fields(spec.params))


def render_cards_table(specs: Iterable[MetricSpec]) -> str:
    """The table at the top of ``metrics/README.md``."""
    return _table(
        ("id", "display", "↑/↓", "subset", "unit", "version", "parameters (defaults)", "citation"),
        ((s.id, s.display, _arrow(s), s.subset, s.unit, s.version, params_cell(s), s.citation) for s in specs),
    )


def render_readme_table(specs: Iterable[MetricSpec]) -> str:
    """The table of the README's "Metrics" section."""
    return _table(
        ("id", "display", "direction", "definition"), ((f"`{s.id}`", s.display, _arrow(s), summary(s)) for s in specs)
    )


@dataclass(frozen=True)
class GeneratedTable:
    path: str  # relative to the repository root
    render: Callable[[Iterable[MetricSpec]], str]


TABLES = (GeneratedTable("metrics/README.md", render_cards_table), GeneratedTable("README.md", render_readme_table))


def replace_region(text: str, table: str, where: str) -> str:
    """``text`` with the lines between the begin and end markers replaced by the notice and ``table``."""
    lines = text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ValueError(
            f"{where}: expected one line {BEGIN!r} followed by one line {END!r} around the metric "
            f"table, found {len(begins)} begin and {len(ends)} end marker(s); add them and run "
            "`python -m tise_bench.docs --write`"
        )
    body = f"{NOTICE}\n{table}\n"
    return "".join(lines[: begins[0] + 1]) + body + "".join(lines[ends[0] :])


def expected(root: Path, specs: list[MetricSpec] | None = None) -> dict[Path, tuple[str, str]]:
    """Per generated file: (text on disk, text the registry renders)."""
    specs = list(all_metrics().values()) if specs is None else specs
    out: dict[Path, tuple[str, str]] = {}
    for t in TABLES:
        path = root / t.path
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: pass --root <repository root> (the folder holding "
                f"{', '.join(x.path for x in TABLES)})"
            )
        current = path.read_text(encoding="utf-8")
        out[path] = (current, replace_region(current, t.render(specs), str(path)))
    return out


def drift(root: Path, specs: list[MetricSpec] | None = None) -> str:
    """Unified diff of every generated file against what the registry renders; empty when in sync."""
    diffs: list[str] = []
    for path, (current, new) in expected(root, specs).items():
        rel = path.relative_to(root).as_posix()
        diffs += difflib.unified_diff(
            current.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"{rel} (on disk)",
            f"{rel} (from the registry)",
        )
    return "".join(diffs)


def write(root: Path, specs: list[MetricSpec] | None = None) -> list[Path]:
    """Rewrite the generated regions in place; returns the files that changed."""
    changed: list[Path] = []
    for path, (current, new) in expected(root, specs).items():
        if new != current:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tise_bench.docs", description="Metric tables in the docs, generated from the metric registry."
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the metric tables from the registry")
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff when a table drifted")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="repository root (default: the checkout this package is imported from)",
    )
    args = parser.parse_args(argv)
    try:
        if args.write:
            changed = write(args.root)
            print("\n".join(f"rewrote {p}" for p in changed) or "metric tables already match the registry")
            return 0
        diff = drift(args.root)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if diff:
        sys.stdout.write(diff)
        print("\nmetric tables differ from the registry: run `python -m tise_bench.docs --write`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
