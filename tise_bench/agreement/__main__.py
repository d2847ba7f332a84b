"""``python -m tise_bench.agreement data=<d> human=<ratings.csv> [paths.results_dir=results] [bootstrap=N]``."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError, TiseError

FILES = ("agreement.json", "agreement.csv", "agreement.md")


def write_report(report: dict, folder: Path, decimals: int = 3) -> dict[str, Path]:
    """The three files, replaced together in ``folder``."""
    from ..fsutil import Place, replace_together
    from ..leaderboard.tables import csv_cell
    from .human import to_csv_rows, to_markdown

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[csv_cell(c) for c in row] for row in to_csv_rows(report)])
    files = {
        "agreement.json": json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"),
        "agreement.csv": buf.getvalue().encode("utf-8"),
        "agreement.md": to_markdown(report, decimals).encode("utf-8"),
    }
    return replace_together(folder, files, Place("agreement folder", "paths.results_dir=<folder>"))


@hydra.main(version_base="1.3", config_path="conf", config_name="agreement")
def main(cfg: DictConfig) -> None:
    from ..names import check_name
    from .human import agreement, to_markdown

    try:
        for key in ("data", "human"):
            if OmegaConf.is_missing(cfg, key):
                raise ConfigError(
                    f"give {key}=<...>: python -m tise_bench.agreement data=<eval set> human=<ratings.csv>"
                )
        data = check_name(str(cfg.data), "data")
        folder = Path(str(cfg.paths.results_dir)) / data
        report = agreement(
            str(cfg.human), folder, n_boot=int(cfg.bootstrap), level=float(cfg.level), seed=int(cfg.seed)
        )
        written = write_report(report, folder, int(cfg.decimals))
    except TiseError as e:
        print(f"tise_bench.agreement: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(to_markdown(report, int(cfg.decimals)))
    for path in written.values():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
