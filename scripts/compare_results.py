"""Compare the metric values of two results folders (a redesign must not change them).

    python scripts/compare_results.py <results_a>/<data> <results_b>/<data> [--rel 1e-9]

Reads ``<model>/metrics.json`` under both folders and prints, per model and metric, both values and whether
they agree within ``--rel`` (relative) — exit code 1 if any value differs, a model or metric is missing on one
side, or a value is null on one side only. Typical use: run the demo with the old and the new code on the same
cache (``paths.cache_dir``), each into its own ``paths.results_dir``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def _values(folder: Path) -> dict[str, dict[str, float | None]]:
    out = {}
    for mj in sorted(folder.glob("*/metrics.json")):
        metrics = json.loads(mj.read_text(encoding="utf-8"))["metrics"]
        out[mj.parent.name] = {k: v.get("value") for k, v in metrics.items()}
    return out


def compare(a: Path, b: Path, rel: float) -> list[str]:
    """-> one line per difference (empty when every value agrees)."""
    va, vb = _values(a), _values(b)
    if not va and not vb:  # nothing compared is not agreement: the folders are probably one level too high
        return [f"no <model>/metrics.json under {a} or {b}; give <results_dir>/<data> folders"]
    problems = [f"model {m!r} only in {a if m in va else b}" for m in sorted(set(va) ^ set(vb))]
    for model in sorted(set(va) & set(vb)):
        for mid in sorted(set(va[model]) | set(vb[model])):
            x, y = va[model].get(mid, "missing"), vb[model].get(mid, "missing")
            if x == y:
                continue
            if isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isclose(x, y, rel_tol=rel):
                continue
            problems.append(f"{model}/{mid}: {x} vs {y}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rel", type=float, default=1e-9)
    args = ap.parse_args()
    problems = compare(args.a, args.b, args.rel)
    n = sum(len(v) for v in _values(args.a).values())
    if problems:
        print("\n".join(problems))
        print(f"{len(problems)} difference(s) among {n} values")
        sys.exit(1)
    print(f"all {n} values agree (rel {args.rel:g})")


if __name__ == "__main__":
    main()
