"""GenEval prompt sets: ``python -m tise_bench.prepare data=geneval [geneval_metadata=<file>]``.

With ``geneval_metadata=<evaluation_metadata.jsonl>`` (djghosh13/geneval ``prompts/``) every line becomes a record,
in file order: ``id`` = the line's index as GenEval names its image folders (``00000`` ..., ``f"{index:0>5}"``),
``caption`` = ``prompt``, and ``tag`` / ``include`` / ``exclude`` kept as given (checked by
:func:`tise_bench.metrics.geneval.record_spec`, errors name file:line).

Without it, :func:`generate_suite` builds the set as GenEval's ``prompts/create_prompts.py`` does, with its
templates and draws in the same order from ``numpy.random.default_rng(seed)``: the 80 single-object prompts,
then ``n`` each of two_object, counting (2..4), colors (no coloured person), position, color_attr, de-duplicated
keeping the first. GenEval's published file is ``seed=43, n=100`` (553 prompts); the seed defaults to 43 here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data.manifest import Record, write_manifest
from ..errors import DataError
from ..metrics.geneval import COLORS, GENEVAL_CLASSES, RELATIONS, record_spec

SUBSET = "geneval"
GENEVAL_SEED, GENEVAL_N = 43, 100  # create_prompts.py's defaults (--seed 43, --num-prompts 100)
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def with_article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def make_plural(name: str) -> str:
    return f"{name}es" if name[-1] in "s" else f"{name}s"


def generate_suite(seed: int = GENEVAL_SEED, n: int = GENEVAL_N) -> list[dict[str, Any]]:
    """create_prompts.py ``generate_suite``: the GenEval metadata records (tag, include[, exclude], prompt)."""
    rng = np.random.default_rng(seed)
    names, k = list(GENEVAL_CLASSES), len(GENEVAL_CLASSES)
    person = names.index("person")
    out: list[dict[str, Any]] = [
        {
            "tag": "single_object",
            "include": [{"class": names[i], "count": 1}],
            "prompt": f"a photo of {with_article(names[i])}",
        }
        for i in rng.choice(k, size=k, replace=False)
    ]
    for _ in range(n):
        a, b = rng.choice(k, size=2, replace=False)
        out.append(
            {
                "tag": "two_object",
                "include": [{"class": names[a], "count": 1}, {"class": names[b], "count": 1}],
                "prompt": f"a photo of {with_article(names[a])} and {with_article(names[b])}",
            }
        )
    for _ in range(n):
        i = rng.choice(k)
        num = int(rng.integers(2, 4, endpoint=True))
        out.append(
            {
                "tag": "counting",
                "include": [{"class": names[i], "count": num}],
                "exclude": [{"class": names[i], "count": num + 1}],
                "prompt": f"a photo of {NUMBERS[num]} {make_plural(names[i])}",
            }
        )
    for _ in range(n):
        i = (rng.choice(k - 1) + 1 + person) % k  # no "[COLOR] person" prompts
        color = COLORS[rng.choice(len(COLORS))]
        out.append(
            {
                "tag": "colors",
                "include": [{"class": names[i], "count": 1, "color": color}],
                "prompt": f"a photo of {with_article(color)} {names[i]}",
            }
        )
    for _ in range(n):
        a, b = rng.choice(k, size=2, replace=False)
        pos = RELATIONS[rng.choice(len(RELATIONS))]
        out.append(
            {
                "tag": "position",
                "include": [{"class": names[b], "count": 1}, {"class": names[a], "count": 1, "position": [pos, 0]}],
                "prompt": f"a photo of {with_article(names[a])} {pos} {with_article(names[b])}",
            }
        )
    for _ in range(n):
        a, b = (rng.choice(k - 1, size=2, replace=False) + 1 + person) % k
        ca, cb = rng.choice(len(COLORS), size=2, replace=False)
        out.append(
            {
                "tag": "color_attr",
                "include": [
                    {"class": names[a], "count": 1, "color": COLORS[ca]},
                    {"class": names[b], "count": 1, "color": COLORS[cb]},
                ],
                "prompt": f"a photo of {with_article(COLORS[ca])} {names[a]} and {with_article(COLORS[cb])} {names[b]}",
            }
        )
    uniq, seen = [], set()
    for s in out:  # create_prompts.py de-duplicates on the whole record (yaml.safe_dump), first kept
        key = json.dumps(s, sort_keys=True)
        if key not in seen:
            uniq.append(s)
            seen.add(key)
    return uniq


def read_metadata(path: str | Path) -> list[dict[str, Any]]:
    """GenEval's ``evaluation_metadata.jsonl``: one JSON object per line; errors name file:line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"geneval_metadata={path}: no such file (GenEval's prompts/evaluation_metadata.jsonl)")
    out: list[dict[str, Any]] = []
    for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: malformed JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or not obj["prompt"].strip():
            raise DataError(f"{path}:{i}: expected an object with a 'prompt' string (and tag, include[, exclude])")
        try:
            record_spec(_record(len(out), obj))
        except DataError as e:
            raise DataError(f"{path}:{i}: {e}") from None
        out.append(obj)
    if not out:
        raise DataError(f"{path}: no prompts")
    return out


def _record(index: int, meta: dict[str, Any]) -> Record:
    extra: dict[str, Any] = {k: meta[k] for k in ("tag", "include", "exclude") if k in meta}
    return Record(id=f"{index:0>5}", caption=str(meta["prompt"]).strip(), extra=extra)


def prepare_geneval(
    out: str | Path, *, metadata: str | Path | None = None, seed: int = GENEVAL_SEED, n: int = GENEVAL_N
) -> dict[str, Path]:
    """-> ``{"geneval": <out>/geneval.jsonl}`` from GenEval's metadata file, or generated as create_prompts.py."""
    metas = read_metadata(metadata) if metadata else generate_suite(seed, n)
    records = [_record(i, m) for i, m in enumerate(metas)]
    for r in records:
        record_spec(r)
    path = Path(out) / f"{SUBSET}.jsonl"
    write_manifest(path, records, seed=None if metadata else seed, subset=SUBSET)
    return {SUBSET: path}
