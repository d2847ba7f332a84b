"""Plain-text summary table printed by the CLI."""
from __future__ import annotations

import math

from .results import EvalResult


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.4g}"


def format_table(results: list[EvalResult]) -> str:
    if not results:
        return "(no results)"
    ids = list(dict.fromkeys(k for r in results for k in r.metrics))
    heads = ["model"] + [f"{results[0].meta.get(i, {}).get('display', i)}{'↑' if results[0].meta.get(i, {}).get('higher_is_better', True) else '↓'}"
                         for i in ids] + ["images", "skipped"]
    rows = []
    for r in results:
        c = r.provenance.get("counts", {})
        skipped = sum(int(c.get(k, 0)) for k in ("missing", "extra", "duplicate", "bad_images"))
        rows.append([r.model] + [_fmt(r.metrics[i].value) if i in r.metrics else "-" for i in ids]
                    + [str(c.get("images", "")), str(skipped)])
    widths = [max(len(h), *(len(row[j]) for row in rows)) for j, h in enumerate(heads)]
    line = lambda cells: "  ".join(x.rjust(w) if j else x.ljust(w) for j, (x, w) in enumerate(zip(cells, widths)))
    out = [f"data={results[0].data}", line(heads), line(["-" * w for w in widths])] + [line(r) for r in rows]
    if any(r.provenance.get("random_weights") for r in results):
        out.append("!! RANDOM-WEIGHTS BACKBONES: smoke-test numbers only, not comparable to published results !!")
    na = results[0].provenance.get("not_applicable") or {}
    for mid, why in na.items():
        out.append(f"note: {mid} not computed: {why}")
    return "\n".join(out)
