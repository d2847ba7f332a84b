"""``python -m tise_bench.weights [list|check|fetch] <config overrides>``: the weights files a config needs.

The backbones are those the selected metrics need (``metrics.ids`` → each metric's needs → stages expanded, as
:func:`tise_bench.planning.plan` and :func:`tise_bench.backbones.build_backbones` do), none of them built; each
file comes from its loader's own ``weights_needed`` (:mod:`tise_bench.backbones.weights_file`): URL, published
sha256 (or its prefix), the exact places the loader looks, the config key of a local copy.

* ``list``: every file, or "random weights (no file)" for a random backbone;
* ``check``: presence and sha256 (:func:`~tise_bench.backbones.base.file_sha256`, memoised in the cache); exit 0
  when all are there and valid, else 1 with one message naming every missing or bad file, its URL and the fix;
* ``fetch``: downloads the missing ones through each loader's own download (open_clip, torch hub, ultralytics,
  Hugging Face), then checks; offline (``TISE_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``) it fails at once, naming every
  missing file and what to provide.

:func:`check_before_build` is what every run does before building its backbones (one
:class:`~tise_bench.errors.WeightsNotFoundError` naming every file a run cannot get).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backbones.base import file_sha256, host_reachable, offline_requested
from .backbones.registry import BuildContext, expand_stages, get_backbone, validate
from .backbones.weights_file import WeightsFile
from .errors import ConfigError, TiseError, WeightsNotFoundError

COMMANDS = ("list", "check", "fetch")


@dataclass(frozen=True)
class BackboneWeights:
    """The files one configured backbone loads (none: random weights, or a variant without a network file)."""

    name: str
    random: bool
    files: tuple[WeightsFile, ...]


def metric_backbones(metrics_cfg: Mapping[str, Any], backbones_cfg: Mapping[str, Any]) -> list[str]:
    """The backbones the selected metrics need (each metric's ``needs_for`` its params; stages expanded)."""
    from .registry import get_metric

    params = dict(metrics_cfg.get("params") or {})
    names = {n.backbone for mid in metrics_cfg["ids"] for n in get_metric(mid).needs_for(params.get(mid))}
    return sorted(expand_stages(backbones_cfg, names))


def weights_for(backbones_cfg: Mapping[str, Any], names: Sequence[str], cache_dir: str | Path) -> list[BackboneWeights]:
    """Each backbone's files, from the arguments :func:`~tise_bench.backbones.build_backbone` would construct it
    with (the same precedence: a weights file wins over ``random``); nothing is built or downloaded."""
    top = validate(backbones_cfg)
    out = []
    for name in names:
        sub = backbones_cfg.get(name)
        entry = get_backbone(name)  # an unregistered name gets a did-you-mean
        if sub is None:
            raise ConfigError(f"metrics need backbone {name!r} but backbones.{name} is not configured")
        config = entry.parse(dict(sub))
        cls, make_kwargs = entry.select(config)
        weights = config.weights or None
        random = bool(top.random or config.random) and weights is None
        ctx = BuildContext(weights=weights, random=random, seed=top.seed, cache_dir=str(cache_dir), device=top.device)
        needed = getattr(cls, "weights_needed", None)
        files = needed(**make_kwargs(config, ctx)) if needed is not None else []
        out.append(BackboneWeights(name, random, tuple(files)))
    return out


def _sha(sha256: str) -> str:
    """A published sha256 as printed: a prefix ends with "…"."""
    return sha256 if len(sha256) == 64 else f"{sha256}…"


def problem(wf: WeightsFile, memo_dir: str | Path) -> str | None:
    """Why ``wf`` cannot be loaded as it is (missing, or a sha256 other than the published one); None when fine."""
    if wf.found is None:
        return f"missing: {wf.key}={wf.paths[0]} does not exist" if wf.given else "missing"
    if wf.sha256:
        digest = file_sha256(wf.found, memo_dir)
        if not digest.startswith(wf.sha256):
            return f"bad: {wf.found} has sha256 {digest[:16]}…, not the published {_sha(wf.sha256)}"
    return None


def describe_problems(problems: Sequence[tuple[WeightsFile, str]], intro: str) -> str:
    """One message for every file: what it is, why, its URL, where it was looked for and the fix."""
    lines = [intro]
    for wf, why in problems:
        lines.append(f"  - backbones.{wf.backbone}: {wf.what}: {why}")
        lines.append(f"      url: {wf.url or 'no public download'}")
        lines.append(f"      looked in: {'; '.join(wf.paths)}")
        lines.append(f"      fix: {wf.fix or f'give the file as {wf.key}=/path/to/file'}")
    return "\n".join(lines)


def find_problems(groups: Sequence[BackboneWeights], memo_dir: str | Path) -> list[tuple[WeightsFile, str]]:
    return [(wf, why) for g in groups for wf in g.files if (why := problem(wf, memo_dir)) is not None]


def check_before_build(backbones_cfg: Mapping[str, Any], names: Sequence[str], cache_dir: str | Path) -> None:
    """Before a run builds its backbones: one :class:`WeightsNotFoundError` naming every file it cannot get (missing
    and not downloadable now, or with a sha256 other than the published one). A missing file the loader downloads
    itself is left to it when its host answers (never probed offline)."""
    groups = [g for g in weights_for(backbones_cfg, names, cache_dir) if g.files]
    reachable: dict[str, bool] = {}

    def run_gets(wf: WeightsFile) -> bool:
        if not (wf.run_downloads and wf.download is not None and wf.host):
            return False
        if wf.host not in reachable:
            reachable[wf.host] = host_reachable(wf.host)
        return reachable[wf.host]

    problems = [
        (wf, why) for wf, why in find_problems(groups, cache_dir) if not (why.startswith("missing") and run_gets(wf))
    ]
    if problems:
        raise WeightsNotFoundError(
            describe_problems(problems, f"{len(problems)} weights file(s) this run needs cannot be loaded:")
            + "\n  `python -m tise_bench.weights list <same overrides>` lists every file; `... fetch` downloads "
            "the missing ones with a URL when online; or run offline smoke tests with backbones=random."
        )


def list_lines(groups: Sequence[BackboneWeights], memo_dir: str | Path) -> list[str]:
    lines = []
    for g in groups:
        if not g.files:
            lines.append(f"{g.name}: " + ("random weights (no file)" if g.random else "no weights file"))
            continue
        for wf in g.files:
            state = problem(wf, memo_dir) or f"ok: {wf.found}"
            lines += [
                f"{g.name}: {wf.what}",
                f"    url:       {wf.url or 'no public download'}",
                f"    sha256:    {_sha(wf.sha256) + ' (published)' if wf.sha256 else 'none published'}",
                f"    looked in: {'; '.join(wf.paths)}",
                f"    local copy: {wf.key}=/path/to/file",
                f"    status:    {state}",
            ]
    return lines or ["the selected metrics need no backbone"]


def fetch(groups: Sequence[BackboneWeights], memo_dir: str | Path) -> None:
    """Download every missing file that has a download (the caller checks again afterwards). Offline: nothing is tried,
    one :class:`WeightsNotFoundError` names every missing file and what to provide."""
    problems = find_problems(groups, memo_dir)
    missing = [(wf, why) for wf, why in problems if why.startswith("missing")]
    if missing and offline_requested():
        raise WeightsNotFoundError(
            describe_problems(
                missing,
                f"offline (TISE_OFFLINE / HF_HUB_OFFLINE is set): nothing downloaded; {len(missing)} missing weights "
                f"file(s) to provide:",
            )
        )
    for wf, _ in missing:
        if wf.download is not None:
            try:
                print(f"fetching backbones.{wf.backbone}: {wf.what} from {wf.url}", file=sys.stderr)
                wf.download()
            except TiseError as e:
                print(f"  failed: {e}", file=sys.stderr)


def _config(overrides: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(metrics, backbones, cache_dir) of the config ``python -m tise_bench <overrides>`` would run; third-party log
    noise silenced as in a run (``verbose=true`` shows it)."""
    from omegaconf import OmegaConf

    from .config_schema import check_overrides, compose
    from .runner import quiet_third_party_logs

    check_overrides(list(overrides))
    cfg = compose(list(overrides))
    quiet_third_party_logs(bool(OmegaConf.select(cfg, "verbose", default=False)))
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("metrics", "backbones")}
    return plain["metrics"], plain["backbones"], str(OmegaConf.select(cfg, "paths.cache_dir"))  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tise_bench.weights",
        description="List, check or fetch the weights files the configured backbones need for the selected metrics.",
    )
    ap.add_argument("command", choices=COMMANDS, help="list: every file; check: presence and sha256; fetch: download")
    ap.add_argument(
        "overrides", nargs="*", help="config overrides, as for python -m tise_bench (e.g. backbones=random)"
    )
    args = ap.parse_args(argv)
    try:
        metrics, backbones, cache_dir = _config(args.overrides)
        groups = weights_for(backbones, metric_backbones(metrics, backbones), cache_dir)
        if args.command == "list":
            print("\n".join(list_lines(groups, cache_dir)))
            return 0
        if args.command == "fetch":
            fetch(groups, cache_dir)
            groups = weights_for(backbones, metric_backbones(metrics, backbones), cache_dir)  # found anew
        problems = find_problems(groups, cache_dir)
    except TiseError as e:
        print(f"tise_bench.weights: error: {e}", file=sys.stderr)
        return 2 if not isinstance(e, WeightsNotFoundError) else 1
    if problems:
        print(describe_problems(problems, f"{len(problems)} weights file(s) missing or bad:"), file=sys.stderr)
        return 1
    n = sum(len(g.files) for g in groups)
    print(f"all {n} weights file(s) present" + (" and valid" if n else " (none needed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
