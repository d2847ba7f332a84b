"""Fit an IS* temperature on labelled validation logits.

``python -m tise_bench.calibrate --logits val.npz [--logits-key logits] [--labels-key labels] [--drop-last]
[--out t.json]`` prints T and the 15-bin ECE before and after; writes a file only with ``--out``.
``--drop-last`` removes the last logit column (e.g. the background class of TISE's CUB classifier).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, StorageError
from .fsutil import Place, atomic_write_text
from .metrics.calibration import expected_calibration_error, fit_temperature, nll, softmax


def calibrate(
    path: str | Path, logits_key: str = "logits", labels_key: str = "labels", drop_last: bool = False, n_bins: int = 15
) -> dict[str, Any]:
    """Load ``path`` (.npz), fit T, and return {temperature, ece_before, ece_after, nll_before, nll_after, n}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"logits file not found: {path}; pass an .npz with '{logits_key}' and '{labels_key}' arrays")
    with np.load(path) as data:
        for key in (logits_key, labels_key):
            if key not in data:
                raise DataError(
                    f"{path} has no array {key!r} (it has {sorted(data.files)}); "
                    "choose with --logits-key / --labels-key"
                )
        z, y = np.asarray(data[logits_key], dtype=np.float64), np.asarray(data[labels_key])
    if drop_last:
        z = z[:, :-1]
    t = fit_temperature(z, y)
    return {
        "temperature": t,
        "n": int(z.shape[0]),
        "n_classes": int(z.shape[1]),
        "n_bins": n_bins,
        "ece_before": expected_calibration_error(softmax(z), y, n_bins),
        "ece_after": expected_calibration_error(softmax(z, t), y, n_bins),
        "nll_before": nll(z, y),
        "nll_after": nll(z, y, t),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tise_bench.calibrate", description=__doc__.splitlines()[0])
    ap.add_argument("--logits", required=True, help=".npz with logits (N, C) and integer labels (N,)")
    ap.add_argument("--logits-key", default="logits")
    ap.add_argument("--labels-key", default="labels")
    ap.add_argument("--drop-last", action="store_true", help="drop the last logit column (background class)")
    ap.add_argument("--n-bins", type=int, default=15)
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    a = ap.parse_args(argv)
    try:
        res = calibrate(a.logits, a.logits_key, a.labels_key, a.drop_last, a.n_bins)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"T = {res['temperature']!r}  (n = {res['n']}, classes = {res['n_classes']})")
    print(f"ECE ({res['n_bins']} bins): before {res['ece_before']:.6f}  after {res['ece_after']:.6f}")
    print(f"NLL: before {res['nll_before']:.6f}  after {res['nll_after']:.6f}")
    if a.out:
        try:
            atomic_write_text(a.out, json.dumps(res, indent=2) + "\n", Place("output folder", "another --out <file>"))
        except StorageError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
