"""The HTML render tests need Chromium: without one they skip on a developer's machine but fail in CI, where
.ci/run installs it and sets TISE_REQUIRE_CHROMIUM=1 (issue 15, item 2: no silently skipped checks in CI)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from . import test_html


@pytest.fixture
def no_browser(monkeypatch, tmp_path):
    monkeypatch.setattr(test_html, "DEBIAN_CHROMIUM", str(tmp_path / "absent" / "chromium"))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)


def test_missing_chromium_fails_when_required(no_browser, monkeypatch):
    monkeypatch.setenv("TISE_REQUIRE_CHROMIUM", "1")
    with pytest.raises(pytest.fail.Exception) as e:
        test_html._chromium()
    msg = str(e.value)
    assert "TISE_REQUIRE_CHROMIUM=1 but no Chromium was found" in msg
    assert "chromium / chromium-browser on PATH" in msg and "apt-get install -y chromium" in msg


def test_missing_chromium_lets_the_caller_skip_when_not_required(no_browser, monkeypatch):
    monkeypatch.delenv("TISE_REQUIRE_CHROMIUM", raising=False)
    assert test_html._chromium() is None


@pytest.mark.parametrize("name", ["chromium", "chromium-browser"])
def test_either_command_name_is_found_on_path(no_browser, monkeypatch, tmp_path, name):
    exe = tmp_path / "bin" / name
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setattr(shutil, "which", lambda n, *a, **k: str(exe) if n == name else None)
    monkeypatch.setenv("TISE_REQUIRE_CHROMIUM", "1")
    assert test_html._chromium() == str(exe)


def test_the_ci_script_requires_chromium_and_lists_skips():
    """.ci/run installs Chromium or stops, exports TISE_REQUIRE_CHROMIUM=1 and runs pytest with -rs."""
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "export TISE_REQUIRE_CHROMIUM=1" in ci
    assert "exit 1" in ci and "warning: could not install chromium" not in ci
    pytest_lines = [ln for ln in ci.splitlines() if ln.startswith("python -m pytest")]
    assert len(pytest_lines) == 1 and " -rs" in pytest_lines[0] and "--durations=15" in pytest_lines[0]
