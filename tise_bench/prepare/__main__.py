"""``python -m tise_bench.prepare data=coco coco_root=<dir> [out=<dir>] [seed=0] [sizes.rp=5000 ...]``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from ..errors import TiseError


@hydra.main(version_base="1.3", config_path="conf", config_name="prepare")
def main(cfg: DictConfig) -> None:
    from . import run_prepare

    try:
        run_prepare(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    except TiseError as e:
        print(f"tise_bench.prepare: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
