"""tise_bench — the TISE bag of text-to-image metrics from one command, through one cached feature pass."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, DataError, TiseError, WeightsNotFoundError  # noqa: E402


def evaluate(*args, **kwargs):
    """See :func:`tise_bench.api.evaluate`."""
    from .api import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = ["evaluate", "TiseError", "ConfigError", "DataError", "WeightsNotFoundError", "__version__"]
