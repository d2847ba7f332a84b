"""``python -m tise_bench.leaderboard data=<d> [paths.results_dir=results] [leaderboard.<key>=...]``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from ..errors import TiseError


@hydra.main(version_base="1.3", config_path="conf", config_name="leaderboard")
def main(cfg: DictConfig) -> None:
    from .build import LeaderboardOptions, build, table_options
    from .tables import to_text

    try:
        opts = LeaderboardOptions.from_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
        lb, written = build(opts)
    except TiseError as e:
        print(f"tise_bench.leaderboard: error: {e}", file=sys.stderr)
        sys.exit(2)
    best = lb["rows"][0]
    print(f"{len(lb['rows'])} rows ranked on {opts.data}; best RS: {best['model']} ({best['rs']:.2f})\n")
    print(to_text(lb, table_options(opts)))
    for fmt, path in written.items():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
