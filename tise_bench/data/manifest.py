"""JSONL eval-set manifests (SPEC §1): one record per prompt, validated with messages naming file:line."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

SCHEMA_VERSION = 1
_KNOWN = {"id", "caption", "reference", "category", "labels", "counts", "positional_word", "counter_caption",
          "mismatched", "ref_captions", "subset", "schema_version", "seed"}


@dataclass(frozen=True)
class Record:
    id: str
    caption: str
    reference: str | None = None
    category: str | None = None
    labels: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    positional_word: str | None = None
    counter_caption: str | None = None
    mismatched: tuple[str, ...] = ()
    ref_captions: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "caption": self.caption}
        for k in ("reference", "category", "positional_word", "counter_caption"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        for k in ("labels", "mismatched", "ref_captions"):
            v = getattr(self, k)
            if v:
                out[k] = list(v)
        if self.counts:
            out["counts"] = dict(self.counts)
        out.update(self.extra)
        return out


def _fail(path: Path, line: int, msg: str) -> DataError:
    return DataError(f"{path}:{line}: {msg}")


def parse_record(obj: Any, path: Path, line: int, base: Path) -> Record:
    if not isinstance(obj, dict):
        raise _fail(path, line, f"expected a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        raise _fail(path, line, "record has no 'id'; every record needs a unique string id")
    rid = str(rid)
    cap = obj.get("caption")
    if not isinstance(cap, str) or not cap.strip():
        raise _fail(path, line, f"record {rid!r} has an empty or missing 'caption'; give it text or remove the line")
    ref = obj.get("reference")
    if ref is not None:
        ref = str(ref)
        if not Path(ref).is_absolute():
            ref = str((base / ref).resolve())
    counts = obj.get("counts") or {}
    if not isinstance(counts, dict) or not all(isinstance(v, int) and v >= 0 for v in counts.values()):
        raise _fail(path, line, f"record {rid!r}: 'counts' must be an object of non-negative integers, got {counts!r}")
    extra = {k: v for k, v in obj.items() if k not in _KNOWN}
    return Record(
        id=rid, caption=cap.strip(), reference=ref, category=obj.get("category"),
        labels=tuple(obj.get("labels") or ()), counts={str(k): int(v) for k, v in counts.items()},
        positional_word=obj.get("positional_word"), counter_caption=obj.get("counter_caption"),
        mismatched=tuple(str(m) for m in (obj.get("mismatched") or ())),
        ref_captions=tuple(str(c) for c in (obj.get("ref_captions") or ())), extra=extra,
    )


def load_manifest(path: str | Path) -> list[Record]:
    """Read a JSONL manifest; relative ``reference`` paths resolve against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}. Point data.manifest (or data.subsets.<name>) at a JSONL file.")
    records: list[Record] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for i, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise _fail(path, i, f"malformed JSON ({e.msg} at column {e.colno}); fix or delete this line") from None
            if isinstance(obj, dict) and "schema_version" in obj and set(obj) <= {"schema_version", "seed", "subset"}:
                if int(obj["schema_version"]) > SCHEMA_VERSION:
                    raise _fail(path, i, f"manifest schema_version {obj['schema_version']} is newer than this "
                                         f"tise_bench supports ({SCHEMA_VERSION}); upgrade tise_bench")
                continue  # header line
            rec = parse_record(obj, path, i, path.parent)
            if rec.id in seen:
                raise _fail(path, i, f"duplicate id {rec.id!r} (first on line {seen[rec.id]}); ids must be unique")
            seen[rec.id] = i
            records.append(rec)
    if not records:
        raise DataError(f"manifest {path} has no records")
    return records


def write_manifest(path: str | Path, records: list[Record], *, seed: int | None = None, subset: str | None = None) -> None:
    """Write a manifest with a header line carrying the schema version (and seed); byte-deterministic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    if seed is not None:
        header["seed"] = seed
    if subset is not None:
        header["subset"] = subset
    lines = [json.dumps(header, sort_keys=True)]
    lines += [json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False) for r in records]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
