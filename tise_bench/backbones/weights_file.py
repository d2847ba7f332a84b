"""What a backbone needs on disk: :class:`WeightsFile`, returned by each loader's ``weights_needed``.

Each backbone class with a weights file has a classmethod ``weights_needed(**kwargs)`` taking the constructor's
keyword arguments (the same ones :func:`tise_bench.backbones.build_backbone` passes) and returning one
:class:`WeightsFile` per file, from the loader's own constants and path logic; it opens no network connection and
loads nothing. ``python -m tise_bench.weights`` lists, checks and fetches them; ``build_backbones`` checks them all
before building, so a run missing several files names every one at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse


@dataclass(frozen=True)
class WeightsFile:
    """One file a configured backbone loads."""

    backbone: str  # the config block it belongs to (``clip``; the segmenter's CLIP: ``segmenter``)
    what: str  # what the file is, e.g. "open_clip ViT-B-32/openai checkpoint"
    url: str  # where it is published ("" when there is no public download)
    paths: tuple[str, ...]  # exactly where the loader looks, in its order
    key: str  # the config key that points the loader at a local copy
    sha256: str | None = None  # the published sha256 (or the published prefix of it); None: none published
    found: str | None = None  # the first of ``paths`` that is a file now
    #: the loader's (or its library's) own download to where it looks; None: the user provides the file
    download: Callable[[], str] | None = field(default=None, compare=False, repr=False)
    run_downloads: bool = True  # a run downloads it itself when online (False: a run never does)
    fix: str = ""  # what to do when it is missing
    given: bool = False  # ``paths`` is the one file the config names (``key``), not a cache the loader looks in

    @property
    def host(self) -> str:
        """The host of :attr:`url` (probed before a download)."""
        return urlparse(self.url).hostname or ""


def hf_url(repo: str, name: str) -> str:
    """The download URL of file ``name`` in Hugging Face model repo ``repo``."""
    return f"https://huggingface.co/{repo}/resolve/main/{name}"


def hf_cache_entry(repo: str, name: str) -> str:
    """How a Hugging Face cache lookup is named in listings and messages: the cache folder, repo and file."""
    from huggingface_hub import constants

    return f"huggingface cache {constants.HF_HUB_CACHE}: {repo}/{name}"


def local_file(weights: str) -> tuple[str, str | None]:
    """A user-given path (``~`` expanded) and itself when it is a file now."""
    p = Path(weights).expanduser()
    return str(p), (str(p) if p.is_file() else None)
