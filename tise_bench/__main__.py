"""``python -m tise_bench [overrides]`` — thin Hydra entry point around :func:`tise_bench.runner.run`.

The command line is checked against the schema first (:func:`tise_bench.config_schema.check_overrides`): an
unknown key or config group option is refused with a "did you mean" before Hydra composes (Hydra would suggest
``+key=value`` for a typo) and before it writes its run folder.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import hydra
from omegaconf import DictConfig, OmegaConf

from .config_schema import check_overrides, register
from .errors import TiseError

register()  # the typed schema config.yaml extends (tise_bench/config_schema.py)


def _fail(e: TiseError) -> NoReturn:
    print(f"tise_bench: error: {e}", file=sys.stderr)
    sys.exit(2)


def check_command_line(argv: Sequence[str]) -> None:
    """Hydra's own argument parser picks the overrides out of ``argv``; those are checked against the schema. A
    run with another primary config (``--config-path`` / ``--config-name``) is Hydra's to check, as are flags
    Hydra's parser refuses (it prints its usage)."""
    from hydra._internal.utils import get_args_parser

    try:
        args, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:
        return
    if args.config_path or args.config_name or args.shell_completion:
        return
    check_overrides(args.overrides, args.config_dir)


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from .runner import quiet_third_party_logs, run

    quiet_third_party_logs(bool(OmegaConf.select(cfg, "verbose", default=False)))
    try:
        run(cfg)
    except TiseError as e:
        _fail(e)


def main() -> None:
    """The ``tise-bench`` command (and ``python -m tise_bench``)."""
    try:
        check_command_line(sys.argv[1:])
    except TiseError as e:
        _fail(e)
    _hydra_main()


if __name__ == "__main__":
    main()
