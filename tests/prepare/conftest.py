"""tests/prepare fixtures: ``coco`` = a tiny COCO-2014-format val set in tmp_path (see prepare_fixtures)."""

from __future__ import annotations

import pytest
from prepare_fixtures import CocoFixture, write_coco


@pytest.fixture()
def coco(tmp_path) -> CocoFixture:
    return write_coco(tmp_path / "coco")
