"""The packaged Hydra configs; importing this package registers their typed schema (:mod:`tise_bench.config_schema`)."""

from ..config_schema import register

register()
