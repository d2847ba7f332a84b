"""``python -m tise_bench [overrides]`` — thin Hydra entry point around :func:`tise_bench.runner.run`."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from .config_schema import register
from .errors import TiseError

register()  # the typed schema config.yaml extends (tise_bench/config_schema.py)


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from .runner import run

    try:
        run(cfg)
    except TiseError as e:
        print(f"tise_bench: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
