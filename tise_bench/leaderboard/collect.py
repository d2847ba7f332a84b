"""Collect leaderboard rows: evaluation runs (``<results_dir>/<data>/*/metrics.json``) and extra-row CSVs.

A run is one folder holding ``metrics.json`` (dot-folders such as ``.hydra`` are skipped). Its row name is the
``model`` field of ``metrics.json``. Published baselines come from a CSV with a ``method`` column and metric
columns named by display name (``FID``, ``IS*``) or id (``fid``); they are rows with ``external: true``.

Step rule (for metric-vs-step plots): ``config.model.step`` of the run when it is an integer, else a step parsed
from the *end* of the model name — ``step12000``, ``step_12000``, ``ckpt-500``, ``iter300``, ``it_300`` (prefix
``step``/``ckpt``/``iter``/``it``, optional ``_``/``-``, then digits, at the end of the name or after ``_``/``-``/
``.``). A bare trailing number (``sd15``, ``sdxl-1``) is never a step. Extra rows take an optional ``step`` column.

Comparability: a run row carries ``meta`` — per metric the ``unit``, ``protocol`` and ``comparability`` its
``metrics.json`` entry records (``None`` where a run written before comparability recording lacks them). An
extra row carries ``protocol``: ``tise-paper`` (numbers as published in TISE's paper, under TISE's protocol)
unless the CSV's optional ``protocol`` column names another. :mod:`.comparable` checks both before ranking.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..registry import display_to_id
from ..results import leftover_run_folders, recover_run_folder
from .schema import Row

_STEP_RE = re.compile(r"(?:^|[_\-.])(?:step|ckpt|iter|it)[_\-]?(\d+)$", re.IGNORECASE)
METHOD_COLUMN = "method"
STEP_COLUMN = "step"
PROTOCOL_COLUMN = "protocol"
PAPER_PROTOCOL = "tise-paper"  # default protocol of an extra row: TISE's published table
_TEXT_COLUMNS = (METHOD_COLUMN, STEP_COLUMN, PROTOCOL_COLUMN)


@dataclass
class Collected:
    """Rows in discovery order plus what the later passes need to know about them."""

    rows: list[Row]
    run_dirs: dict[str, Path] = field(default_factory=dict)  # model -> run folder (runs only, not extra rows)
    random_weights: list[str] = field(default_factory=list)  # models evaluated with random-weights backbones


def parse_step(name: str) -> int | None:
    """The checkpoint step at the end of a model name (``ckpt_12000`` -> 12000), else ``None``."""
    m = _STEP_RE.search(name)
    return int(m.group(1)) if m else None


def _finite(v: Any) -> float | None:
    """A metric value as float; ``None``/NaN/inf (not available) as ``None``."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def find_runs(data_dir: Path) -> list[Path]:
    """Run folders under ``data_dir`` holding a ``metrics.json``, sorted by name; dot-folders are skipped (a run
    folder whose writer was killed while replacing it is first put back: :func:`~tise_bench.results.recover_run_folder`)."""
    if not data_dir.is_dir():
        return []
    for name in {name for name, _, _, _ in leftover_run_folders(data_dir)}:
        if not (data_dir / name).exists():
            recover_run_folder(data_dir / name)
    return sorted(
        p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "metrics.json").is_file()
    )


def load_run(path: Path, metric_ids: Iterable[str] | None = None) -> tuple[Row, bool]:
    """One ``metrics.json`` -> (row, made with random weights).

    ``metric_ids`` restricts the values read; ``None`` reads every metric in the file. A value that is null or
    NaN stays ``None`` (the ranking decides what a missing value means).
    """
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read run result {path}: {e}. Re-run the evaluation or remove that folder.") from e
    metrics = result.get("metrics")
    if not isinstance(metrics, dict):
        raise DataError(f"{path} has no top-level 'metrics' object; is it a tise_bench metrics.json?")
    wanted = list(metrics) if metric_ids is None else [m for m in metric_ids]
    values: dict[str, float | None] = {}
    meta: dict[str, dict[str, Any]] = {}
    for mid in wanted:
        entry = metrics.get(mid)
        values[mid] = _finite(entry.get("value") if isinstance(entry, dict) else entry)
        if values[mid] is not None:
            meta[mid] = _entry_meta(entry, path, mid)
    model = str(result.get("model") or path.parent.name)
    model_cfg = (result.get("config") or {}).get("model") or {}
    step = model_cfg.get("step") if isinstance(model_cfg, dict) else None
    if not (isinstance(step, int) and not isinstance(step, bool)):
        step = parse_step(model)
    row: Row = {"model": model, "external": False, "step": step, "values": values, "source": str(path), "meta": meta}
    return row, bool(result.get("random_weights", False))


def _entry_meta(entry: Any, path: Path, mid: str) -> dict[str, Any]:
    """``unit`` / ``protocol`` / ``comparability`` of one metrics.json entry; ``None`` where not recorded."""
    if not isinstance(entry, dict):
        return {"unit": None, "protocol": None, "comparability": None}
    comp = entry.get("comparability")
    if comp is not None and not isinstance(comp, dict):
        raise DataError(
            f"{path}: metrics.{mid}.comparability is {type(comp).__name__}, expected an object of "
            "settings. Re-run the evaluation to rewrite metrics.json."
        )
    unit, protocol = entry.get("unit"), entry.get("protocol")
    return {
        "unit": None if unit is None else str(unit),
        "protocol": None if protocol is None else str(protocol),
        "comparability": None if comp is None else dict(comp),
    }


def collect_runs(data_dir: Path, metric_ids: Iterable[str] | None = None) -> Collected:
    """Every run under ``data_dir``; two folders reporting the same model name are an error."""
    out = Collected(rows=[])
    ids = list(metric_ids) if metric_ids is not None else None
    for run_dir in find_runs(data_dir):
        row, random = load_run(run_dir / "metrics.json", ids)
        name = row["model"]
        if name in out.run_dirs:
            raise DataError(
                f"model {name!r} appears in two runs: {out.run_dirs[name]} and {run_dir}. "
                "Remove or rename one of them (model.name=<name>)."
            )
        out.rows.append(row)
        out.run_dirs[name] = run_dir
        if random:
            out.random_weights.append(name)
    return out


def _column_map(header: list[str], names: Mapping[str, str], path: Path) -> dict[str, str]:
    """CSV header -> metric id; ``method``/``step``/``protocol`` map to themselves. Case-insensitive after an
    exact try."""
    if METHOD_COLUMN not in [h.strip().lower() for h in header]:
        raise ConfigError(f"{path}: no '{METHOD_COLUMN}' column (the row names). Header is {header}.")
    lower = {k.lower(): v for k, v in names.items()}
    out: dict[str, str] = {}
    for col in header:
        key = col.strip()
        if key.lower() in _TEXT_COLUMNS:
            out[col] = key.lower()
        elif key in names or key.lower() in lower:
            out[col] = names.get(key) or lower[key.lower()]
        else:
            known = ", ".join(sorted(set(names)))
            raise ConfigError(
                f"{path}: unknown column {col!r}. Columns are '{METHOD_COLUMN}', optional "
                f"'{STEP_COLUMN}' and '{PROTOCOL_COLUMN}' (default {PAPER_PROTOCOL!r}), and metrics "
                f"by display name or id: {known}."
            )
    ids = [v for v in out.values() if v not in _TEXT_COLUMNS]
    dup = sorted({m for m in ids if ids.count(m) > 1})
    if dup:
        raise ConfigError(f"{path}: metric(s) {dup} given by more than one column; keep one column per metric.")
    return out


def read_extra_rows(path: str | Path, names: Mapping[str, str] | None = None) -> list[Row]:
    """Published baselines from a CSV: ``method`` + metric columns (display names or ids) + optional ``step`` and
    ``protocol`` (the protocol the row's numbers were made under; empty or absent = ``tise-paper``).

    Empty cells are missing values (``None``). ``names`` maps accepted column names to metric ids (default: the
    registry's display names and ids).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"leaderboard.extra_rows: file {path} not found. Give a CSV with a 'method' column.")
    names = dict(display_to_id() if names is None else names)
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ConfigError(f"{path}: empty file; expected a header with a '{METHOD_COLUMN}' column.")
        cols = _column_map(header, names, path)
        rows: list[Row] = []
        seen: set[str] = set()
        for line_no, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            rec = {header[i]: (cells[i].strip() if i < len(cells) else "") for i in range(len(header))}
            method = next(v for k, v in rec.items() if cols[k] == METHOD_COLUMN)
            if not method:
                raise ConfigError(f"{path}, line {line_no}: empty '{METHOD_COLUMN}' cell.")
            if method in seen:
                raise ConfigError(f"{path}, line {line_no}: method {method!r} appears twice.")
            seen.add(method)
            values: dict[str, float | None] = {}
            step: int | None = None
            protocol = PAPER_PROTOCOL
            for col, cell in rec.items():
                target = cols[col]
                if target == METHOD_COLUMN or cell == "":
                    continue
                if target == PROTOCOL_COLUMN:
                    protocol = cell
                    continue
                try:
                    num = float(cell)
                except ValueError:
                    raise ConfigError(
                        f"{path}, line {line_no} (method {method!r}), column {col!r}: "
                        f"{cell!r} is not a number. Leave the cell empty for a missing value."
                    ) from None
                if target == STEP_COLUMN:
                    if not num.is_integer():
                        raise ConfigError(
                            f"{path}, line {line_no} (method {method!r}): step {cell!r} must be an integer."
                        )
                    step = int(num)
                else:
                    values[target] = _finite(num)
            for target in cols.values():
                if target not in _TEXT_COLUMNS:
                    values.setdefault(target, None)
            rows.append(
                {
                    "model": method,
                    "external": True,
                    "step": step,
                    "values": values,
                    "source": str(path),
                    "protocol": protocol,
                }
            )
    return rows


def merge(runs: Collected, extra: list[Row]) -> Collected:
    """Runs + extra rows; a name present as both is an error (which one would the table mean?)."""
    clash = sorted({r["model"] for r in extra} & set(runs.run_dirs))
    if clash:
        raise ConfigError(
            f"model name(s) {clash} are both a run under the results folder and an extra row "
            f"in {extra[0]['source']}. Rename the extra row (e.g. '<name> (paper)')."
        )
    return Collected(rows=[*runs.rows, *extra], run_dirs=dict(runs.run_dirs), random_weights=list(runs.random_weights))
