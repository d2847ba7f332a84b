"""Backbones built only when a forward is needed (issue 14: cached re-runs in seconds).

A fully cached re-run needs no network: every feature is in the cache, keyed by the backbone's ``namespace``. What
the rest of a run reads from a backbone without running it (its namespace, ``describe()`` for ``metrics.json``, the
detector's class names, CLIP's logit scale, …) is small, plain data: the *card*. After a backbone is built its card
is written to ``<cache>/backbone-cards/<key>.json``; a later run with a card for the same key gets a
:class:`LazyBackbone` that answers from the card and builds the network on the first access to anything else
(``preprocess``, ``forward``, ``encode_text``, …), i.e. only when some feature is missing.

The card's key is everything the built object's identity depends on, so a card is never served for another network:
the backbone's class and every constructor argument (:func:`tise_bench.backbones.build_backbone`'s per-process key),
the resolved device type (fp16 namespaces exist on CUDA only), the versions of tise_bench and of the libraries that
make the networks (torch, torchvision, open_clip, ultralytics, torch-fidelity, numpy), the sha256 of the
``tise_bench/backbones`` source files (random weights are drawn by that code), and the identity (path, device,
inode, size, mtime, ctime, as :func:`~tise_bench.backbones.base.file_sha256`'s memo) of every weights file the
loader reads (``weights_needed``) and of every file a constructor argument names (imported detections). A card that
cannot be read, or whose values do not round-trip, is ignored (the backbone is built, the card rewritten).
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from ..fsutil import CACHE, atomic_write_text

log = logging.getLogger(__name__)

CARD_VERSION = 1
#: What a run reads from a backbone besides its forwards (bank, pipeline, comparability, results); anything else
#: builds the network. Attributes a backbone does not have are recorded as absent (``getattr(bb, a, default)``
#: then gets the default without building).
CARD_ATTRS = (
    "name",
    "ident",
    "weights_hash",
    "preproc_version",
    "provides",
    "is_random",
    "amp",
    "amp_capable",
    "fast_path",
    "preprocess_mode",
    "fast",
    "namespace",
    "needs_source",
    "logit_scale",
    "names",
    "detector",
    "weights_name",
    "resize",
)
#: Forward counters (:func:`~tise_bench.backbones.base.forward_counts`): 0 until the network is built.
COUNTERS = ("n_forward_images", "n_forward_texts")
_LIBRARIES = ("torch", "torchvision", "open_clip_torch", "ultralytics", "torch-fidelity", "numpy")
_ABSENT = "__absent__"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


_SOURCE_HASH: str | None = None


def source_hash() -> str:
    """sha256 over the ``tise_bench/backbones`` package's source files (names and bytes), computed once."""
    global _SOURCE_HASH
    if _SOURCE_HASH is None:
        h = hashlib.sha256()
        root = Path(__file__).parent
        for p in sorted(root.rglob("*.py")):
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
        _SOURCE_HASH = h.hexdigest()
    return _SOURCE_HASH


def file_identity(path: str | Path) -> str | None:
    """``path|dev|ino|size|mtime_ns|ctime_ns`` of an existing file, else None (as ``file_sha256``'s memo key)."""
    try:
        p = Path(path).expanduser()
        if not p.is_file():
            return None
        st = p.stat()
        return f"{p.resolve()}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"
    except (OSError, ValueError):
        return None


def card_key(cls: type, build_key: tuple, kwargs: Mapping[str, Any], device_type: str) -> str | None:
    """The card's key, or None when the backbone's files cannot be identified now (then it is simply built)."""
    from tise_bench import __version__

    files = []
    needed = getattr(cls, "weights_needed", None)
    if needed is not None:
        try:
            wanted = needed(**kwargs)
        except Exception:  # noqa: BLE001 (no card: the build reports the problem itself)
            return None
        for wf in wanted:
            if wf.found is None:
                return None  # missing: the build downloads or fails, no card
            files.append(file_identity(wf.found))
    for k, v in sorted(kwargs.items()):  # a file named by an argument (imported detections' JSON, local weights)
        if isinstance(v, (str, Path)) and k != "cache_dir" and str(v) and (ident := file_identity(v)) is not None:
            files.append(f"{k}={ident}")
    parts = {
        "card": CARD_VERSION,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "build": repr(build_key),
        "device_type": device_type,
        "tise_bench": __version__,
        "libraries": {d: _version(d) for d in _LIBRARIES},
        "source": source_hash(),
        "files": files,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _card_path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / "backbone-cards" / f"{key}.json"


def _literal(value: Any) -> str | None:
    """``repr(value)`` when it reads back equal through :func:`ast.literal_eval` (plain data), else None."""
    try:
        text = repr(value)
        return text if ast.literal_eval(text) == value else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def make_card(bb: Any) -> dict[str, Any]:
    """The card of a built backbone: each :data:`CARD_ATTRS` value as a Python literal (or absent), its
    ``describe()``, the counters it has. An attribute whose value is not plain data is left out (reading it
    builds the network)."""
    attrs: dict[str, str] = {}
    for a in CARD_ATTRS:
        if not hasattr(bb, a):
            attrs[a] = _ABSENT
        elif (text := _literal(getattr(bb, a))) is not None:
            attrs[a] = text
    describe = _literal(bb.describe())
    return {
        "version": CARD_VERSION,
        "attrs": attrs,
        "describe": describe,
        "counters": [c for c in COUNTERS if hasattr(bb, c)],
    }


def write_card(bb: Any, cache_dir: str | Path, key: str) -> None:
    try:
        atomic_write_text(_card_path(cache_dir, key), json.dumps(make_card(bb), indent=1), CACHE)
    except Exception as e:  # noqa: BLE001 (a card is an optimisation: a failed write costs a build next time)
        log.debug("backbone card %s not written: %s", key, e)


def has_card(cache_dir: str | Path, key: str) -> bool:
    return _card_path(cache_dir, key).is_file()


def read_card(cache_dir: str | Path, key: str) -> dict[str, Any] | None:
    path = _card_path(cache_dir, key)
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text())
        if card.get("version") != CARD_VERSION or card.get("describe") is None:
            return None
        attrs = card["attrs"]
        return {
            "attrs": {a: ast.literal_eval(t) for a, t in attrs.items() if t != _ABSENT},
            "absent": {a for a, t in attrs.items() if t == _ABSENT},
            "describe": ast.literal_eval(card["describe"]),
            "counters": list(card["counters"]),
        }
    except (OSError, ValueError, SyntaxError, KeyError, TypeError) as e:
        log.warning("backbone card %s is unreadable (%s); the backbone is built", path, e)
        return None


class LazyBackbone:
    """Stands for a built backbone: answers from its card, builds the network on first use of anything else.

    Reads of card attributes, ``describe()`` and the forward counters cost nothing; every other attribute (a
    method such as ``preprocess`` or ``forward``, ``device``, the network) builds the backbone once, after which
    the proxy forwards everything to it."""

    def __init__(self, name: str, card: dict[str, Any], build: Callable[[], Any]) -> None:
        self._lazy_name = name
        self._card = card
        self._build = build
        self._built: Any = None
        self._lock = threading.Lock()

    @property
    def is_built(self) -> bool:
        return self._built is not None

    def materialise(self) -> Any:
        """The built backbone, built once. The bank's input workers may all need it at the same moment: one
        builds, the others wait (two concurrent builds would also draw random weights from one global RNG)."""
        if self._built is None:
            with self._lock:
                if self._built is None:
                    log.info("building backbone %s (features missing from the cache)", self._lazy_name)
                    self._built = self._build()
        return self._built

    def describe(self) -> dict[str, object]:
        if self._built is not None:
            return self._built.describe()
        return dict(self._card["describe"])

    def __getattr__(self, attr: str) -> Any:  # only called for what the instance itself does not have
        if attr.startswith("_lazy") or attr in ("_card", "_build", "_built", "_lock"):
            raise AttributeError(attr)
        if self._built is None:
            if attr in self._card["attrs"]:
                return self._card["attrs"][attr]
            if attr in self._card["absent"]:
                raise AttributeError(f"backbone {self._lazy_name!r} has no attribute {attr!r}")
            if attr in COUNTERS:
                if attr in self._card["counters"]:
                    return 0
                raise AttributeError(f"backbone {self._lazy_name!r} has no attribute {attr!r}")
        return getattr(self.materialise(), attr)

    def __repr__(self) -> str:
        state = "built" if self._built is not None else "not built"
        return f"<LazyBackbone {self._lazy_name} ({state}): {self._card['attrs'].get('namespace', '?')}>"


def device_type(device: str) -> str:
    """``auto`` resolved as the backbones resolve it (CUDA when available), then its type."""
    from .base import resolve_device

    return resolve_device(device).type
