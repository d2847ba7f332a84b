"""T2I-CompBench prompt files → ``spatial`` and ``numeracy`` manifests (``python -m tise_bench.prepare data=compbench``).

Input: CompBench's ``examples/dataset/<category>_<split>.txt`` (``Karine-Huang/T2I-CompBench``), one prompt a
line (CRLF in the released files), looked up in ``compbench_root``, ``compbench_root/dataset`` or
``compbench_root/examples/dataset``. ``split``: ``val`` (the 300 prompts a category is evaluated on; default),
``train``, or ``all`` (``<category>.txt``).

Each record: ``id`` = ``<category>-<line>`` (0-based line among the non-empty lines, 4 digits), ``caption`` =
the prompt, and the structured field ``compbench`` that :mod:`tise_bench.metrics.compbench` scores from:
``{"task": "spatial", "object_a", "relation", "object_b"}`` or ``{"task": "numeracy", "objects",
"numbers"}``, parsed with CompBench's rules (the metric module's :func:`parse_spatial` and
:func:`parse_numeracy`). A prompt those rules cannot parse is written without the field and counted; the
metric skips it and counts it again. Prompts naming a noun outside the COCO-80 classes are written too (an
imported detector may know them) and counted in a note: with the COCO detector they are skipped, not scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.manifest import Record
from ..errors import ConfigError, DataError
from ..text.compbench import (
    NUMERACY_ALIASES,
    PERSON_WORDS,
    parse_numeracy,
    parse_spatial,
    tokenize,
)
from ..text.coco_classes import COCO_CLASSES
from .common import Log, Summary, clean_caption, write_subsets

CATEGORIES = ("spatial", "numeracy")
SPLITS = ("val", "train", "all")


def prompt_file(root: Path, category: str, split: str) -> Path:
    """``<category>_<split>.txt`` (``<category>.txt`` for ``all``) in root, root/dataset or root/examples/dataset."""
    name = f"{category}.txt" if split == "all" else f"{category}_{split}.txt"
    cands = [root / name, root / "dataset" / name, root / "examples" / "dataset" / name]
    for c in cands:
        if c.is_file():
            return c
    raise DataError(
        f"T2I-CompBench prompt file {name!r} not found; looked in: {', '.join(str(c) for c in cands)}. "
        f"Point compbench_root=<dir> at a T2I-CompBench checkout (its examples/dataset/ folder holds "
        f"{name}) or at a folder with the file."
    )


def read_prompts(path: Path) -> list[str]:
    """The file's non-empty lines, whitespace collapsed (the released files end lines with CRLF)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read T2I-CompBench prompt file {path}: {e}") from None
    return [c for c in (clean_caption(line) for line in text.splitlines()) if c]


def compbench_field(category: str, caption: str) -> dict[str, Any] | None:
    """The record's ``compbench`` field by CompBench's parsing rules; None where they parse nothing."""
    if category == "spatial":
        got = parse_spatial(caption)
        if got is None:
            return None
        return {"task": "spatial", "object_a": got[0], "relation": got[1], "object_b": got[2]}
    parsed = parse_numeracy(tokenize(caption))
    if parsed is None or not parsed[0] or len(parsed[0]) != len(parsed[1]):
        return None
    return {"task": "numeracy", "objects": parsed[0], "numbers": parsed[1]}


def _nouns(f: dict[str, Any]) -> list[str]:
    if f["task"] == "spatial":
        return ["person" if o in PERSON_WORDS else o for o in (f["object_a"], f["object_b"])]
    return [NUMERACY_ALIASES.get(o, o) for o in f["objects"]]


def compbench_records(category: str, prompts: list[str], summary: Summary) -> list[Record]:
    coco = set(COCO_CLASSES)
    out, outside = [], 0
    for i, caption in enumerate(prompts):
        f = compbench_field(category, caption)
        if f is None:
            summary.skip(category, "not parsed by CompBench's rules (written without the compbench field)")
        elif any(n not in coco for n in _nouns(f)):
            outside += 1
        out.append(Record(id=f"{category}-{i:04d}", caption=caption, extra={} if f is None else {"compbench": f}))
    if outside:
        summary.notes.append(
            f"{category}: {outside} of {len(prompts)} prompts name a noun outside COCO-80; a COCO detector "
            f"cannot score them (compbench_{category} skips and counts them)"
        )
    return out


def prepare_compbench(
    compbench_root: str | Path, out: str | Path, split: str = "val", log: Log | None = print
) -> dict[str, Path]:
    """Write ``<out>/spatial.jsonl`` and ``<out>/numeracy.jsonl``; returns subset → path."""
    if split not in SPLITS:
        raise ConfigError(f"compbench_split={split!r} is not valid; choose one of {', '.join(SPLITS)}")
    root = Path(compbench_root)
    summary = Summary()
    subsets = {c: compbench_records(c, read_prompts(prompt_file(root, c, split)), summary) for c in CATEGORIES}
    return write_subsets(Path(out), subsets, 0, summary, log)
