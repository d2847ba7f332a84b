"""Built-in metrics; importing this package registers them all (see :mod:`tise_bench.registry`)."""
from . import calibration  # noqa: F401
from . import clip  # noqa: F401
from . import inception  # noqa: F401
from . import rp  # noqa: F401
from . import pa  # noqa: F401
from . import objects  # noqa: F401
from . import object_fidelity  # noqa: F401
