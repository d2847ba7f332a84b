"""``import tise_bench`` stays light, and ``tise_bench.evaluate`` is the API function itself (its signature in help())."""

from __future__ import annotations

import inspect
import subprocess
import sys


def test_import_is_light_and_evaluate_has_its_signature():
    code = "import sys, tise_bench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
    import tise_bench
    from tise_bench import api

    assert tise_bench.evaluate is api.evaluate
    params = inspect.signature(tise_bench.evaluate).parameters
    assert {"images", "captions", "references", "metrics", "backbones", "write_to", "bootstrap"} <= set(params)
