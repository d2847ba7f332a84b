"""The leaderboard pass: runs + extra rows -> ranked :class:`Leaderboard` -> ``leaderboard.{csv,md,tex,json,html}``.

``python -m tise_bench.leaderboard`` composes the packaged config and calls :func:`build`; tests and scripts can
call :func:`make_leaderboard` / :func:`write_leaderboard` directly. Runs are never modified (SPEC §5).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..fsutil import LEADERBOARD, check_writable, disk_errors, replace_together
from ..names import check_name
from ..registry import all_metrics
from .collect import Collected, collect_runs, merge, read_extra_rows
from .comparable import check_comparability
from .ranking import OnMissing, metric_columns, ranking_score, resolve_metric_ids
from .schema import ASPECT_PRESETS, LEADERBOARD_SCHEMA, TISE_ASPECTS, Leaderboard
from .latex import to_latex
from .tables import LATEX_FITS, TableOptions, to_csv, to_json, to_markdown

log = logging.getLogger(__name__)
FORMATS = ("csv", "md", "tex", "json", "html")


@dataclass
class LeaderboardOptions:
    """Everything the pass needs; mirrors ``conf/leaderboard.yaml`` (``data``, ``paths.*``, ``leaderboard.*``)."""

    data: str
    results_dir: Path = Path("results")
    extra_rows: Path | None = None
    metrics: list[str] | None = None  # display names or ids; None = every metric any row has
    aspects: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in TISE_ASPECTS.items()})
    on_missing: OnMissing = "error"
    allow_mixed: bool = False  # rank columns whose rows differ in settings/unit/protocol (footnoted), not refuse
    bootstrap: int = 0  # replicates (of those the runs wrote) for the uncertainty pass; 0 = none
    level: float = 0.95
    ci: bool = False  # print the bootstrap interval "[lo, hi]" in the Markdown/LaTeX tables
    drilldown: str | None = None  # run model to show per-sample in the HTML report
    drilldown_n: int = 24
    decimals: int = 2
    decimals_by_metric: dict[str, int] = field(default_factory=dict)
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    latex_fit: str = "shrink"  # shrink | landscape | none (tables.LATEX_FITS)
    latex_aspect_scores: bool = True
    human: Path | None = None  # human ratings CSV: the "agreement with human ratings" section (tise_bench.agreement)

    def __post_init__(self) -> None:
        # <results_dir>/<data>/ is read and the five leaderboard files written there: one safe folder name
        check_name(self.data, "data")
        if self.latex_fit not in LATEX_FITS:
            raise ConfigError(
                f"leaderboard.latex_fit={self.latex_fit!r}: choose one of {', '.join(LATEX_FITS)} (shrink: the "
                "LaTeX table is scaled down to the line width when wider; landscape: a sidewaystable page; "
                "none: natural width)."
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "LeaderboardOptions":
        """From the resolved Hydra config (a plain dict)."""
        lb = dict(cfg.get("leaderboard") or {})
        paths = dict(cfg.get("paths") or {})
        data = cfg.get("data")
        if not data or data == "???":
            raise ConfigError("no eval set given: pass data=<name> (the folder <results_dir>/<name>/ with the runs).")
        extra = lb.get("extra_rows")
        return cls(
            data=str(data),
            results_dir=Path(paths.get("results_dir", "results")),
            extra_rows=Path(extra) if extra else None,
            metrics=_str_list(lb["metrics"]) if lb.get("metrics") else None,
            aspects=_aspects(lb.get("aspects")),
            on_missing=lb.get("on_missing", "error"),
            allow_mixed=_bool(lb.get("allow_mixed", False), "leaderboard.allow_mixed"),
            bootstrap=int(lb.get("bootstrap") or 0),
            level=float(lb.get("level", 0.95)),
            ci=bool(lb.get("ci", False)),
            drilldown=lb.get("drilldown") or None,
            drilldown_n=int(lb.get("drilldown_n", 24)),
            decimals=int(lb.get("decimals", 2)),
            decimals_by_metric=dict(lb.get("decimals_by_metric") or {}),
            formats=_str_list(lb.get("formats") or FORMATS),
            latex_fit=str(lb.get("latex_fit") or "shrink"),
            latex_aspect_scores=_bool(lb.get("latex_aspect_scores", True), "leaderboard.latex_aspect_scores"),
            human=Path(lb["human"]) if lb.get("human") else None,
        )


def _aspects(value: Any) -> dict[str, list[str]]:
    """``leaderboard.aspects``: null (TISE's six), a preset name (:data:`ASPECT_PRESETS`) or a mapping."""
    if value is None:
        value = TISE_ASPECTS
    if isinstance(value, str):
        if value not in ASPECT_PRESETS:
            raise ConfigError(
                f"leaderboard.aspects={value!r}: not a preset; presets: {', '.join(ASPECT_PRESETS)} "
                "(or give a mapping, e.g. 'leaderboard.aspects={realism:[FID],relevance:[RP]}')"
            )
        value = ASPECT_PRESETS[value]
    if not isinstance(value, Mapping):
        raise ConfigError(f"leaderboard.aspects must be a preset name or a mapping of aspect -> metrics, got {value!r}")
    return {str(k): [str(m) for m in v] for k, v in value.items()}


def _bool(value: Any, key: str) -> bool:
    """A true/false option; anything else (e.g. the string 'yes' from a script) is refused, never guessed."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{key} must be true or false, got {value!r}.")


def _str_list(value: Any) -> list[str]:
    """``FID`` or ``[FID, RP]`` (a bare string on the command line is one item, not its characters)."""
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _columns_for(collected: Collected, selected: list[str] | None, aspects: Mapping[str, list[str]]) -> list[str]:
    """Metric columns: the selection (its order), or every metric some row has — the aspects' metrics first, in
    aspect order (TISE's table layout), then the rest in registry order. Ids not in the registry: error."""
    if selected is not None:
        return resolve_metric_ids(selected, "leaderboard.metrics")
    present = {m for r in collected.rows for m, v in r.get("values", {}).items() if v is not None}
    registry = list(all_metrics())
    unknown = sorted(present - set(registry))
    if unknown:
        srcs = sorted({r.get("source", "?") for r in collected.rows if set(r.get("values", {})) & set(unknown)})
        raise ConfigError(
            f"metric(s) {unknown} in {srcs[:3]} are not in the metric registry (direction unknown). "
            "Select the known ones with leaderboard.metrics=[...]."
        )
    ordered = [m for ms in aspects.values() for m in ms if m in present]
    return list(dict.fromkeys([*ordered, *[m for m in registry if m in present]]))


def make_leaderboard(
    collected: Collected,
    data: str,
    *,
    metrics: Sequence[str] | None = None,
    aspects: Mapping[str, Sequence[str]] = TISE_ASPECTS,
    on_missing: OnMissing = "error",
    allow_mixed: bool = False,
) -> Leaderboard:
    """Rank the collected rows into a Leaderboard dict (no uncertainty, no files).

    Every column two or more rows fill is checked for comparability first (:mod:`.comparable`): rows that
    differ in recorded settings, unit or protocol are refused unless ``allow_mixed`` (then footnoted).
    """
    if not collected.rows:
        raise ConfigError(
            f"nothing to rank for data={data}: no run folder with metrics.json and no extra rows. "
            "Evaluate a model first (python -m tise_bench model=<m> data=<d>) or pass "
            "leaderboard.extra_rows=<file.csv>."
        )
    asp = {name: resolve_metric_ids(list(ms), f"leaderboard.aspects.{name}") for name, ms in aspects.items()}
    ids = _columns_for(collected, list(metrics) if metrics is not None else None, asp)
    present = [m for m in ids if any(r.get("values", {}).get(m) is not None for r in collected.rows)]
    for r in collected.rows:  # a row lists every column; absent = None (never a silent zero)
        r["values"] = {m: r.get("values", {}).get(m) for m in present}
    comparability = check_comparability(collected.rows, present, allow_mixed=allow_mixed)
    ranking = ranking_score(collected.rows, present, asp, on_missing)
    lb: Leaderboard = {
        "schema_version": LEADERBOARD_SCHEMA,
        "data": data,
        "metrics": metric_columns(present),
        "aspects": ranking.aspects,
        "rows": ranking.rows,
        "excluded": ranking.excluded,
    }
    lb["random_weights"] = list(collected.random_weights)
    lb["comparability"] = comparability
    if comparability["mixed"]:
        log.warning(
            "leaderboard.allow_mixed=true: ranking %d non-comparable column mix(es), footnoted in every output: %s",
            len(comparability["mixed"]),
            "; ".join(x["note"] for x in comparability["mixed"]),
        )
    if collected.random_weights:
        log.warning(
            "RANDOM-WEIGHTS BACKBONES in %s: smoke-test numbers, not comparable to any paper.",
            ", ".join(collected.random_weights),
        )
    return lb


def _optional(name: str) -> Callable[..., Any] | None:
    """``leaderboard.uncertainty.add_uncertainty`` etc. while those modules are still being written.

    TODO(lead): drop this guard and import directly once uncertainty.py and html.py have landed.
    """
    module = {"add_uncertainty": "uncertainty", "render_html": "html", "build_drilldown": "html"}[name]
    try:
        mod = __import__(f"{__package__}.{module}", fromlist=[name])
        return getattr(mod, name)
    except ImportError as e:  # ModuleNotFoundError included; AttributeError (wrong API) is a real bug
        log.warning("tise_bench.leaderboard.%s is not available (%s): skipping %s.", module, e, name)
        return None


def write_leaderboard(
    lb: Leaderboard, out_dir: Path, opts: TableOptions, formats: Sequence[str] = FORMATS
) -> dict[str, Path]:
    """Write ``leaderboard.<fmt>`` for each format into ``out_dir`` as one set; returns {format: path}.

    Every format is rendered in memory first, then all are written under temporary names and renamed into place
    together (:func:`~tise_bench.fsutil.replace_together`); the files of formats this build does not write are
    removed after. So the ``leaderboard.*`` files in a folder always come from one build: an exception or a full
    disk midway leaves the previous set whole and no temporary file."""
    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise ConfigError(f"leaderboard.formats: unknown {bad}; choose from {list(FORMATS)}.")
    renderers: dict[str, Callable[[], str]] = {
        "csv": lambda: to_csv(lb),
        "md": lambda: to_markdown(lb, opts),
        "tex": lambda: to_latex(lb, opts),
        "json": lambda: to_json(lb),
    }
    texts: dict[str, bytes] = {}
    for fmt in formats:
        if fmt == "html":
            render = _optional("render_html")
            if render is None:
                continue
            renderers["html"] = lambda: render(lb)
        texts[fmt] = renderers[fmt]().encode("utf-8")
    paths = replace_together(out_dir, {f"leaderboard.{fmt}": data for fmt, data in texts.items()}, LEADERBOARD)
    with disk_errors(out_dir, LEADERBOARD):
        for fmt in FORMATS:
            stale = out_dir / f"leaderboard.{fmt}"
            if fmt not in texts and stale.is_file():  # an earlier build's: it would disagree with this one
                stale.unlink()
                log.info("removed %s (from an earlier build; not in leaderboard.formats)", stale)
    return {fmt: paths[f"leaderboard.{fmt}"] for fmt in texts}


def build(opts: LeaderboardOptions) -> tuple[Leaderboard, dict[str, Path]]:
    """The whole pass: collect, rank, (bootstrap), (drilldown), write. Returns the board and written files."""
    data_dir = Path(opts.results_dir) / opts.data
    check_writable(data_dir, LEADERBOARD, create=False)  # a disk problem is reported before the bootstrap pass
    ids = resolve_metric_ids(opts.metrics, "leaderboard.metrics") if opts.metrics is not None else None
    collected = collect_runs(data_dir, ids)
    if opts.extra_rows is not None:
        collected = merge(collected, read_extra_rows(opts.extra_rows))
    lb = make_leaderboard(
        collected,
        opts.data,
        metrics=ids,
        aspects=opts.aspects,
        on_missing=opts.on_missing,
        allow_mixed=opts.allow_mixed,
    )

    if opts.bootstrap > 0:
        if not collected.run_dirs:
            log.warning(
                "leaderboard.bootstrap=%d but there are no runs (extra rows have no per-sample values).", opts.bootstrap
            )
        elif (add_uncertainty := _optional("add_uncertainty")) is not None:
            add_uncertainty(lb, collected.run_dirs, opts.bootstrap, opts.level)
    if opts.ci and not any(r.get("ci") for r in lb["rows"]):
        log.warning(
            "leaderboard.ci=true but no row carries an interval: it needs leaderboard.bootstrap=<N> "
            "(e.g. 1000) and runs that wrote bootstrap replicates (bootstrap.replicates > 0, the "
            "default); printing values only."
        )
    if opts.drilldown:
        if opts.drilldown not in collected.run_dirs:
            raise ConfigError(
                f"leaderboard.drilldown={opts.drilldown!r} is not a run under {data_dir}; "
                f"runs: {sorted(collected.run_dirs)}."
            )
        if (drill := _optional("build_drilldown")) is not None:
            dd = drill(collected.run_dirs[opts.drilldown], opts.drilldown_n)
            lb["drilldown"] = {"model": opts.drilldown, **dd}

    if opts.human is not None:
        from ..agreement.human import agreement

        lb["agreement"] = agreement(opts.human, data_dir, n_boot=opts.bootstrap, level=opts.level)

    return lb, write_leaderboard(lb, data_dir, table_options(opts), opts.formats)


def table_options(opts: LeaderboardOptions) -> TableOptions:
    """The formatting part of the options (``leaderboard.decimals``, ``decimals_by_metric``, ``ci``, ``latex_*``)."""
    per_metric = {
        resolve_metric_ids([k], "leaderboard.decimals_by_metric")[0]: int(v) for k, v in opts.decimals_by_metric.items()
    }
    return TableOptions(
        decimals=opts.decimals,
        decimals_by_metric=per_metric,
        ci=opts.ci,
        latex_fit=opts.latex_fit,
        latex_aspect_scores=opts.latex_aspect_scores,
    )
