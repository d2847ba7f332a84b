"""``python -m tise_bench.list [metrics|backbones|data|models ...]``: what a config can name, read from where each
fact lives (nothing is written here twice):

* metrics: :func:`tise_bench.registry.all_metrics` (id, display, direction, unit, subset; the one-line definition
  is :func:`tise_bench.docs.summary`, the README's "definition" cell);
* backbones: :func:`tise_bench.backbones.registry.all_backbones` (the features each provides, the keys of its
  ``backbones.<name>`` block);
* data sets and models: the options of the ``data`` and ``model`` config groups
  (:func:`tise_bench.config_schema.config_groups`: ``tise_bench/configs/<group>/*.yaml``, described by the first
  sentence of the file's leading comment, and the TISE baselines ``register()`` generates).
"""

from __future__ import annotations

import argparse
import difflib
import importlib.resources
import sys
from collections.abc import Callable, Iterable, Sequence

from .backbones.registry import all_backbones
from .config_schema import TISE_BASELINES, baseline, config_groups
from .docs import first_sentence, summary
from .registry import all_metrics


def _plain(text: str) -> str:
    """Docstring markup off for a terminal: ``x`` -> x, one line."""
    return " ".join(text.replace("``", "").split())


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Left-aligned columns; the last column is not padded (it holds the long text)."""
    rows = [list(header), *map(list, rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return ["  " + "  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows]


def metrics_lines() -> list[str]:
    rows = (
        (s.id, s.display, "↑ higher" if s.higher_is_better else "↓ lower", s.unit, s.subset, _plain(summary(s)))
        for s in all_metrics().values()
    )
    return [
        "Metrics (metrics.ids=[...]; parameters under metrics.params.<id>):",
        *_table(("id", "display", "better", "unit", "subset", "definition"), rows),
    ]


def backbones_lines() -> list[str]:
    rows = (
        (name, ", ".join(getattr(e.cls, "provides", ())), ", ".join(e.keys()))
        for name, e in sorted(all_backbones().items())
    )
    return [
        "Backbones (backbones=real|random; settings under backbones.<name>.<key>):",
        *_table(("name", "provides", "keys"), rows),
    ]


def yaml_description(group: str, option: str) -> str:
    """The first sentence of the leading comment of ``tise_bench/configs/<group>/<option>.yaml`` (Hydra's
    ``@package`` line skipped); "" for an option with no file."""
    path = importlib.resources.files("tise_bench.configs") / group / f"{option}.yaml"
    if not path.is_file():
        return ""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text.startswith("@package"):
            lines.append(text)
    return first_sentence(" ".join(lines))


def data_lines() -> list[str]:
    rows = ((name, yaml_description("data", name)) for name in config_groups()["data"])
    return ["Data sets (data=<name>; tise_bench/configs/data/):", *_table(("name", "description"), rows)]


def models_lines() -> list[str]:
    rows = [
        (name, f"TISE baseline: images in {baseline(name).samples_dir}")
        if name in TISE_BASELINES
        else (name, yaml_description("model", name))
        for name in config_groups()["model"]
    ]
    return [
        "Models (model=<name>; tise_bench/configs/model/ and TISE's baselines, config_schema.TISE_BASELINES):",
        *_table(("name", "description"), rows),
    ]


SECTIONS: dict[str, Callable[[], list[str]]] = {
    "metrics": metrics_lines,
    "backbones": backbones_lines,
    "data": data_lines,
    "models": models_lines,
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tise_bench.list", description="List the metrics, backbones, data sets and models."
    )
    ap.add_argument("sections", nargs="*", metavar="section", help=f"any of {', '.join(SECTIONS)} (default: all)")
    args = ap.parse_args(argv)
    for s in args.sections:
        if s not in SECTIONS:
            close = difflib.get_close_matches(s, SECTIONS, n=1)
            ap.error(
                f"no section {s!r}{f'; did you mean {close[0]!r}?' if close else ''} (sections: {', '.join(SECTIONS)})"
            )
    chosen = args.sections or list(SECTIONS)
    print("\n\n".join("\n".join(SECTIONS[s]()) for s in chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
