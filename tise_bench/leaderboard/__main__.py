"""``python -m tise_bench.leaderboard data=<d> [paths.results_dir=results] [leaderboard.<key>=...]``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from ..errors import TiseError

if TYPE_CHECKING:  # imported late at run time (start-up time of the CLI)
    from .build import LeaderboardOptions


def run(opts: LeaderboardOptions) -> None:
    """Build the leaderboard and print, on stdout, the ranked table (:func:`~.tables.to_text`) and the files."""
    from .build import build, table_options
    from .tables import to_text

    lb, written = build(opts)
    best = lb["rows"][0]
    print(f"{len(lb['rows'])} rows ranked on {opts.data}; best RS: {best['model']} ({best['rs']:.2f})\n")
    print(to_text(lb, table_options(opts)))
    for path in written.values():
        print(f"wrote {path}")


@hydra.main(version_base="1.3", config_path="conf", config_name="leaderboard")
def main(cfg: DictConfig) -> None:
    from .build import LeaderboardOptions

    try:
        run(LeaderboardOptions.from_config(OmegaConf.to_container(cfg, resolve=True)))  # type: ignore[arg-type]
    except TiseError as e:
        print(f"tise_bench.leaderboard: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
