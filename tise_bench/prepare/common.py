"""Shared pieces of eval-set preparation: sizes, seeded streams, sampling, distractors, references, summary.

Determinism contract (SPEC §4): every input list is sorted by id before any random draw, and each subset
draws from its own stream ``np.random.default_rng([seed, crc32(subset)])``, so changing one subset's size
never changes another subset's records, and two runs with the same inputs write byte-identical manifests.
"""

from __future__ import annotations

import os
import pickle
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np

from ..data.manifest import MANIFESTS, Record, manifest_text
from ..data.samples import DUP_SEPARATOR
from ..errors import ConfigError, DataError
from ..fsutil import replace_together

T = TypeVar("T")
Log = Callable[[str], None]


@dataclass(frozen=True)
class Sizes:
    """How many records each subset gets (``None`` = every eligible caption).

    ``soa_class_caps`` overrides ``soa_per_class`` for single classes; by default "person" is capped at
    30,000 captions, as Hinz et al. (SOA) sample 30,000 of the person captions.
    """

    realism: int | None = 30000
    rp: int | None = 5000
    rp_distractors: int = 99
    pa_per_word: int | None = 1000
    ca: int | None = None
    soa_per_class: int | None = None
    soa_class_caps: Mapping[str, int] = field(default_factory=lambda: {"person": 30000})

    @classmethod
    def from_any(cls, sizes: "Sizes | Mapping[str, Any] | None") -> "Sizes":
        """Build from a mapping (a Hydra ``sizes`` node); unknown keys are an error naming the valid ones."""
        if sizes is None:
            return cls()
        if isinstance(sizes, Sizes):
            return sizes
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(sizes) - names)
        if unknown:
            raise ConfigError(f"unknown sizes key(s) {unknown}; valid keys: {sorted(names)}")
        out = dict(sizes)
        for k, v in out.items():
            if k == "soa_class_caps":
                out[k] = {str(c): int(n) for c, n in dict(v or {}).items()}
            elif v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError(f"sizes.{k}={v!r}: expected a non-negative integer or null (= no limit)")
        return cls(**out)

    def soa_cap(self, cls_name: str) -> int | None:
        return self.soa_class_caps.get(cls_name, self.soa_per_class)


@dataclass
class Summary:
    """Records written per subset and skipped inputs per (subset, reason); printed at the end."""

    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def skip(self, subset: str, reason: str, n: int = 1) -> None:
        d = self.skipped.setdefault(subset, {})
        d[reason] = d.get(reason, 0) + n

    def lines(self) -> list[str]:
        out = []
        for s, n in self.written.items():
            skips = self.skipped.get(s, {})
            why = "; ".join(f"{r}: {k}" for r, k in sorted(skips.items()))
            out.append(f"  {s:8s} {n:7d} records" + (f"   (skipped {why})" if why else ""))
        out += [f"  note: {n}" for n in self.notes]
        return out


def subset_rng(seed: int, subset: str) -> np.random.Generator:
    """The seeded stream of one subset: independent of every other subset's sizes."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r}: expected a non-negative integer")
    return np.random.default_rng([seed, zlib.crc32(subset.encode())])


def clean_caption(text: str) -> str:
    """Collapse whitespace (COCO captions carry stray newlines and double spaces)."""
    return " ".join(str(text).split())


def text_key(text: str) -> str:
    """Comparison key for "the same caption": case, whitespace and a final full stop ignored."""
    return " ".join(text.lower().split()).rstrip(" .")


def sample(items: Sequence[T], n: int | None, rng: np.random.Generator) -> list[T]:
    """Up to ``n`` of ``items`` without replacement, kept in input order (``None`` = all, no draw)."""
    if n is None or n >= len(items):
        return list(items)
    keep = np.sort(rng.choice(len(items), size=n, replace=False))
    return [items[int(i)] for i in keep]


def round_robin(groups: Sequence[Sequence[T]], n: int | None, rng: np.random.Generator) -> list[T]:
    """``n`` items, one per group first (groups in a seeded order, each group's items shuffled), then a
    second item per group, and so on: e.g. one caption per image before any image gets two."""
    order = rng.permutation(len(groups))
    shuffled = [[g[int(i)] for i in rng.permutation(len(g))] for g in groups]
    total = sum(len(g) for g in groups)
    n = total if n is None else min(n, total)
    out: list[T] = []
    depth = 0
    while len(out) < n:
        for gi in order:
            g = shuffled[int(gi)]
            if depth < len(g):
                out.append(g[depth])
                if len(out) == n:
                    break
        depth += 1
    return out


def draw_distractors(
    rng: np.random.Generator,
    pool_texts: Sequence[str],
    pool_groups: Sequence[Any],
    own_group: Any,
    own_text: str,
    k: int,
) -> list[str]:
    """``k`` distinct captions of OTHER groups (images), drawn without replacement.

    A candidate is rejected when it belongs to ``own_group`` or reads the same as ``own_text`` or as an
    already drawn distractor (:func:`text_key`), so the true caption is never among its own distractors.
    Fewer than ``k`` come back only when the pool has fewer acceptable captions.
    """
    n = len(pool_texts)
    own = text_key(own_text)

    def accept(idx: np.ndarray) -> list[str]:
        seen = {own}
        out: list[str] = []
        for i in idx:
            t = pool_texts[int(i)]
            key = text_key(t)
            if pool_groups[int(i)] == own_group or key in seen:
                continue
            seen.add(key)
            out.append(t)
            if len(out) == k:
                break
        return out

    take = min(n, 2 * k + 16)
    picked = accept(rng.choice(n, size=take, replace=False))
    if len(picked) < k and take < n:  # rare: many rejects; fall back to the whole pool in a seeded order
        picked = accept(rng.permutation(n))
    return picked


def reference_path(image: Path, manifest_dir: Path) -> str:
    """The image path relative to the manifest folder when the image lies inside it, else absolute.

    (load_manifest resolves relative paths against the manifest's folder; ``../`` paths are avoided so
    that moving the prepared folder never silently breaks references.)
    """
    image = Path(os.path.abspath(image))
    try:
        return image.relative_to(Path(os.path.abspath(manifest_dir))).as_posix()
    except ValueError:
        return image.as_posix()


def unique_ids(records: list[Record]) -> list[Record]:
    """Give the 2nd, 3rd, … record with an already used id the suffix ``-1``, ``-2``, … (:data:`DUP_SEPARATOR`).

    Not ``_<n>``: ``<id>_<k>.png`` names sample k of ``<id>``, so a made id ``A_1`` beside ``A`` made the image
    name ``A_1.png`` ambiguous. A made id is never another id followed by ``_<digits>`` (nor is any id it), so
    the image names of new manifests cannot collide; older manifests with ``_<n>`` ids still load."""
    from dataclasses import replace

    used: set[str] = {r.id for r in records}

    def free(cand: str) -> bool:
        if cand in used:
            return False
        return not any(u.startswith(cand + "_") and u[len(cand) + 1 :].isdigit() for u in used)

    seen: dict[str, int] = {}
    out = []
    for r in records:
        if r.id in seen:
            k = seen[r.id]
            while not free(f"{r.id}{DUP_SEPARATOR}{k}"):
                k += 1
            seen[r.id] = k + 1
            new = f"{r.id}{DUP_SEPARATOR}{k}"
            used.add(new)
            out.append(replace(r, id=new))
        else:
            seen[r.id] = 1
            out.append(r)
    return out


def write_subsets(
    out: Path, subsets: Mapping[str, list[Record]], seed: int, summary: Summary, log: Log | None
) -> dict[str, Path]:
    """Write ``<out>/<subset>.jsonl`` for every non-empty subset as one set (:func:`replace_together`: a failure
    midway leaves the previous manifests whole); empty ones are reported, not written."""
    paths: dict[str, Path] = {}
    texts: dict[str, bytes] = {}
    for name, recs in subsets.items():
        summary.written[name] = len(recs)
        if not recs:
            summary.notes.append(f"{name}: no eligible captions, manifest not written")
            continue
        paths[name] = out / f"{name}.jsonl"
        texts[paths[name].name] = manifest_text(recs, seed=seed, subset=name).encode("utf-8")
    if texts:
        replace_together(out, texts, MANIFESTS)
    if log is not None:
        log(f"tise_bench.prepare: wrote {len(paths)} manifest(s) to {out} (seed {seed})")
        for line in summary.lines():
            log(line)
    return paths


_SAFE_GLOBALS = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "tuple"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
}


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data only (containers, strings, numbers, numpy scalars/arrays): a caption file
    has no business importing anything else, and a pickle that tries to is refused, not executed."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: caption pickles should hold plain data")


def load_pickle(path: Path) -> Any:
    """Load a data-only pickle (Python 2 pickles are read with ``latin1``, as AttnGAN/TISE files need)."""
    try:
        with path.open("rb") as fh:
            return _DataOnlyUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"{path}: cannot read this pickle ({e}); expected the released caption file") from None
