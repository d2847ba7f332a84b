"""Built-in metrics; importing this package registers them all (see :mod:`tise_bench.registry`).

Every module of the package is imported (in name order), so a new metric is one new module here: its
``@register_metric`` runs on import and no list elsewhere names it. An import error in any module is raised,
never swallowed: a metric that fails to load must not silently vanish from runs and tables.
"""

from __future__ import annotations

import importlib
import pkgutil


def _import_all() -> tuple[str, ...]:
    names = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)))
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names


#: The metric modules, as imported (registry order follows it).
MODULES = _import_all()
