"""Test-wide setup: offline, random backbones, one session cache for the random weights files."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import RANDOM_BACKBONES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TISE_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-cfg-"))


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """A cache holding the random-weights files (built once per session: ~6 s for Inception)."""
    cache = tmp_path_factory.mktemp("cache")
    from tise_bench.backbones import build_backbones

    build_backbones(RANDOM_BACKBONES, {"clip", "inception"}, cache)
    return cache


@pytest.fixture()
def fresh_cache(session_cache, tmp_path) -> Path:
    """An empty feature cache that reuses the session's random weights files."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for sub in ("weights", "weights-hashes"):
        if (session_cache / sub).is_dir():
            shutil.copytree(session_cache / sub, cache / sub)
    return cache
