"""Backbones built only when a feature is missing (issue 14 item 1, ``tise_bench/backbones/lazy.py``).

A built backbone leaves a *card* in the cache (what a run reads from it without running it); a later run with the
same construction gets a :class:`LazyBackbone` answering from the card and builds the network only when some
feature is missing. Checked here: the card answers exactly what the built backbone answers; its key changes with
anything the backbone's identity depends on; a fully cached run through the CLI's path builds nothing and writes
the same metrics; a run with one new image builds exactly the backbones that image needs.
"""

from __future__ import annotations

import json
import os

import pytest

import tise_bench.backbones as bb_mod
from helpers import RANDOM_BACKBONES, cache_with_session_weights, custom_run_config, structured_images
from tise_bench.backbones import build_backbones
from tise_bench.backbones.lazy import CARD_ATTRS, LazyBackbone, card_key, file_identity, read_card
from tise_bench.runner import run

_MISSING = object()
_MATERIALISE = LazyBackbone.materialise


def _lazy_set(cache, names=("clip", "inception")):
    """The backbones as a fresh process would get them (nothing built in this process)."""
    saved = dict(bb_mod._BUILT)
    bb_mod._BUILT.clear()
    try:
        return build_backbones(RANDOM_BACKBONES, set(names), cache, lazy=True)
    finally:
        bb_mod._BUILT.clear()
        bb_mod._BUILT.update(saved)


def test_card_answers_what_the_built_backbone_answers(session_cache):
    built = build_backbones(RANDOM_BACKBONES, {"clip", "inception"}, session_cache)  # writes the cards if missing
    lazy = _lazy_set(session_cache)
    for name, real in built.items():
        proxy = lazy[name]
        assert isinstance(proxy, LazyBackbone) and not proxy.is_built
        for attr in CARD_ATTRS:
            assert getattr(proxy, attr, _MISSING) == getattr(real, attr, _MISSING), (name, attr)
        assert proxy.describe() == real.describe()
        assert proxy.n_forward_images == 0
        assert not proxy.is_built  # none of the above built it
        assert proxy.preprocess is not None  # anything else does, once
        assert proxy.is_built and proxy.namespace == real.namespace


def test_card_key_follows_the_backbones_identity(tmp_path):
    from tise_bench.backbones.clip import ClipBackbone

    kwargs = {"model": "ViT-B-32", "random": True, "seed": 0, "cache_dir": str(tmp_path), "weights": None}
    key = ("clip", False, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    base = card_key(ClipBackbone, key, kwargs, "cpu")
    assert base == card_key(ClipBackbone, key, kwargs, "cpu")
    assert card_key(ClipBackbone, key, kwargs, "cuda") != base  # fp16 namespaces exist on CUDA only
    seed1 = {**kwargs, "seed": 1}
    assert card_key(ClipBackbone, ("clip", False, (("seed", "1"),)), seed1, "cpu") != base
    f = tmp_path / "dets.json"
    f.write_text("{}")
    with_file = {**kwargs, "detections": str(f)}
    first = card_key(ClipBackbone, key, with_file, "cpu")
    os.utime(f, ns=(1, 1))  # the same path, another file state: another card
    assert card_key(ClipBackbone, key, with_file, "cpu") != first
    assert file_identity(tmp_path / "absent") is None


def test_unreadable_card_is_ignored_with_a_warning(tmp_path, caplog):
    (tmp_path / "backbone-cards").mkdir()
    (tmp_path / "backbone-cards" / "k.json").write_text('{"version": 1, "attrs": {"name": "not a literal"}')
    assert read_card(tmp_path, "k") is None
    assert "unreadable" in caplog.text
    assert read_card(tmp_path, "absent") is None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, session_cache):
    root = tmp_path_factory.mktemp("lazy")
    cache_with_session_weights(session_cache, root / "cache")
    structured_images(root / "gen", 6, seed=1611, size=32)
    refs = structured_images(root / "ref", 6, seed=1612, size=32)
    recs = [{"id": f"{i:04d}", "caption": f"scene {i}", "reference": str(refs[i])} for i in range(6)]
    (root / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return root


def _run(root, monkeypatch, *, may_build: bool):
    """One run through the CLI's path as a fresh process would make it (no backbone built in this process)."""
    monkeypatch.setattr(bb_mod, "_BUILT", {})
    built: list[str] = []

    def materialise(self):
        if not self.is_built:
            built.append(self._lazy_name)
        assert may_build, f"a cached re-run built backbone {self._lazy_name!r}"
        return _MATERIALISE(self)

    monkeypatch.setattr(LazyBackbone, "materialise", materialise)
    cfg = custom_run_config(root, root / "m.jsonl", "metrics.ids=[clip_score,clip_rp,is,fid]")
    (result,) = run(cfg)
    return result, built, dict(bb_mod._BUILT)


def test_cached_rerun_builds_no_backbone_and_writes_the_same_metrics(tiny, monkeypatch):
    first, _, constructed = _run(tiny, monkeypatch, may_build=True)
    assert constructed  # the first run in this cache built its networks (and left their cards)
    again, built, constructed = _run(tiny, monkeypatch, may_build=False)
    assert built == [] and constructed == {}  # nothing constructed, not even behind a proxy
    assert again.values() == first.values()
    assert again.provenance["backbones"] == first.provenance["backbones"]
    assert set(again.provenance["backbone_forwards"].values()) == {0}
    # one new image: the backbones its features need are built, and only then
    structured_images(tiny / "gen", 1, seed=1613, size=32, prefix="x")
    (tiny / "gen" / "x0000.png").replace(tiny / "gen" / "0005.png")
    changed, built, _ = _run(tiny, monkeypatch, may_build=True)
    assert sorted(built) == ["clip", "inception"]
    assert changed.provenance["backbone_forwards"]["clip"] == 1


def test_threads_asking_at_once_build_once():
    """The bank's input workers reach an unbuilt backbone at the same moment: one builds, the others wait (two
    concurrent random-weight builds would interleave draws from torch's one global RNG: wrong weights under the
    card's namespace, as CI caught on a resumed run)."""
    import threading
    import time

    builds: list[int] = []

    class Net:
        def preprocess(self, x):
            return x

    def build():
        builds.append(1)
        time.sleep(0.2)  # a slow construction: every thread arrives while it runs
        return Net()

    proxy = LazyBackbone("clip", {"attrs": {}, "absent": set(), "describe": {}, "counters": []}, build)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(proxy.preprocess(1))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == [1] and got == [1] * 6
