"""tise_bench — the TISE bag of text-to-image metrics from one command, through one cached feature pass."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, DataError, TiseError, WeightsNotFoundError  # noqa: E402


def __getattr__(name: str):
    """``tise_bench.evaluate`` is :func:`tise_bench.api.evaluate` itself (its signature and docstring in
    ``help()``), imported on first use so that ``import tise_bench`` stays light (no torch)."""
    if name == "evaluate":
        from .api import evaluate

        return evaluate
    if name == "Evaluator":  # the stateful evaluator for training loops (tise_bench/evaluator.py), imported likewise
        from .evaluator import Evaluator

        return Evaluator
    raise AttributeError(f"module 'tise_bench' has no attribute {name!r}")


__all__ = ["evaluate", "Evaluator", "TiseError", "ConfigError", "DataError", "WeightsNotFoundError", "__version__"]
