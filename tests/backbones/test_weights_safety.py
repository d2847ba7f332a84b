"""Untrusted weight files never run code: every checkpoint is read with torch.load(weights_only=True) (ultralytics'
detector checkpoints, which are pickles by design, only when named or in our cache); the real Inception must carry
the sha256 that torch-fidelity's file name publishes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import tise_bench
import tise_bench.backbones.inception as inception
from tise_bench.backbones.inception import InceptionBackbone
from tise_bench.backbones.object_classifier import read_state_dict
from tise_bench.errors import WeightsNotFoundError

PACKAGE = Path(tise_bench.__file__).parent


class _Boom:
    def __reduce__(self):  # what a crafted checkpoint does: call something when unpickled
        return (Path.touch, (Path(self.target),))

    target = ""


def test_published_inception_hash_is_torch_fidelitys_file_name_suffix(monkeypatch):
    monkeypatch.undo()  # the autouse stand-in of tests/backbones/conftest.py
    assert inception.URL.endswith("/v0.2.0/weights-inception-2015-12-05-6726825d.pth")
    assert inception.PUBLISHED_SHA256_PREFIX == "6726825d"


def test_real_inception_with_another_hash_is_refused(fidelity_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "PUBLISHED_SHA256_PREFIX", "6726825d")  # the real file's
    with pytest.raises(WeightsNotFoundError, match=r"(?s)not that of torch-fidelity's published.*6726825d"):
        InceptionBackbone(weights=str(fidelity_ckpt), cache_dir=tmp_path, device="cpu")


@pytest.mark.parametrize("loader", ["inception", "classifier"])
def test_a_crafted_checkpoint_does_not_run_code(tmp_path, loader):
    marker = tmp_path / "pwned"
    _Boom.target = str(marker)
    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "payload": _Boom()}, evil)
    with pytest.raises(WeightsNotFoundError):
        if loader == "inception":
            inception._load_fidelity(evil, random=True)
        else:
            read_state_dict(evil, "backbones.object_classifier.weights", "a state dict")
    assert not marker.exists()
    with pytest.raises(WeightsNotFoundError, match="weights_only=True"):
        read_state_dict(evil, "backbones.object_classifier.weights", "a state dict")


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            yield node, f"{node.func.value.id}.{node.func.attr}"


def test_no_unsafe_load_anywhere_in_the_package():
    """Scan: no torch.load without weights_only=True, no pickle.load(s) outside the allow-list unpickler."""
    bad = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, name in _calls(tree):
            if name == "torch.load":
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                if not ok:
                    bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} torch.load without weights_only=True")
            if name in ("pickle.load", "pickle.loads"):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    assert not bad, bad


@pytest.mark.parametrize("switch", ["TISE_OFFLINE", "HF_HUB_OFFLINE"])
def test_one_offline_switch_stops_every_connection(switch, tmp_path, monkeypatch):
    """With TISE_OFFLINE=1 (or HF_HUB_OFFLINE=1 alone) a missing real Inception fails at once, no socket opened."""
    import socket

    for v in ("TISE_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(switch, "1")
    opened = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: opened.append(a) or None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError, match="network is unreachable"):
        InceptionBackbone(cache_dir=tmp_path, device="cpu")
    assert opened == []


def test_weights_hash_memo_is_not_fooled_by_a_restored_mtime(tmp_path):
    """Same size, same mtime, other bytes: the memoised hash must not be served (the namespace would lie)."""
    import os

    from tise_bench.backbones.base import file_sha256

    f = tmp_path / "w.pth"
    f.write_bytes(b"a" * 64)
    st = os.stat(f)
    first = file_sha256(f, tmp_path / "memo")
    f.write_bytes(b"b" * 64)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # restore the mtime, as `cp -p` or tar would
    assert os.stat(f).st_mtime_ns == st.st_mtime_ns and os.stat(f).st_size == st.st_size
    second = file_sha256(f, tmp_path / "memo")
    assert second != first and second == __import__("hashlib").sha256(b"b" * 64).hexdigest()
