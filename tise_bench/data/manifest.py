"""JSONL eval-set manifests (SPEC §1): one record per prompt, validated with messages naming file:line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..fsutil import Place, atomic_write_text

SCHEMA_VERSION = 1
_KNOWN = {
    "id",
    "caption",
    "reference",
    "category",
    "labels",
    "counts",
    "positional_word",
    "counter_caption",
    "mismatched",
    "ref_captions",
    "subset",
    "schema_version",
    "seed",
}


@dataclass(frozen=True)
class Record:
    """One prompt of an eval set (SPEC §1); optional fields are used only by the subsets that need them."""

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


def _opt_str(obj: dict[str, Any], key: str, rid: str, path: Path, line: int) -> str | None:
    """``obj[key]`` as a non-empty string, ``None`` when absent/null; anything else is an error."""
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise _fail(path, line, f"record {rid!r}: {key!r} must be a non-empty string, got {v!r}")
    return v


def _str_list(obj: dict[str, Any], key: str, rid: str, path: Path, line: int) -> tuple[str, ...]:
    """``obj[key]`` as a tuple of strings (absent/null -> ``()``). A bare string is an error, not its
    characters."""
    v = obj.get(key)
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in v):
        raise _fail(path, line, f"record {rid!r}: {key!r} must be a list of strings, got {v!r}")
    return tuple(str(x) for x in v)


def parse_record(obj: Any, path: Path, line: int, base: Path) -> Record:
    """Validate one manifest object; every error names ``path:line``, the record and the field."""
    if not isinstance(obj, dict):
        raise _fail(path, line, f"expected a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        raise _fail(path, line, "record has no 'id'; every record needs a unique string id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise _fail(path, line, f"'id' must be a string (or an integer), got {type(rid).__name__} {rid!r}")
    rid = str(rid)
    cap = obj.get("caption")
    if cap is not None and not isinstance(cap, str):
        raise _fail(path, line, f"record {rid!r}: 'caption' must be a string, got {type(cap).__name__} {cap!r}")
    if cap is None or not cap.strip():
        raise _fail(path, line, f"record {rid!r} has an empty or missing 'caption'; give it text or remove the line")
    ref = _opt_str(obj, "reference", rid, path, line)
    if ref is not None and not Path(ref).is_absolute():
        ref = str((base / ref).resolve())
    counts = obj.get("counts") or {}
    if not isinstance(counts, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()
    ):
        raise _fail(path, line, f"record {rid!r}: 'counts' must be an object of non-negative integers, got {counts!r}")
    category = obj.get("category")
    if category is not None and (isinstance(category, bool) or not isinstance(category, (str, int))):
        raise _fail(path, line, f"record {rid!r}: 'category' must be a string, got {category!r}")
    extra = {k: v for k, v in obj.items() if k not in _KNOWN}
    return Record(
        id=rid,
        caption=cap.strip(),
        reference=ref,
        category=None if category is None else str(category),
        labels=_str_list(obj, "labels", rid, path, line),
        counts={str(k): int(v) for k, v in counts.items()},
        positional_word=_opt_str(obj, "positional_word", rid, path, line),
        counter_caption=_opt_str(obj, "counter_caption", rid, path, line),
        mismatched=_str_list(obj, "mismatched", rid, path, line),
        ref_captions=_str_list(obj, "ref_captions", rid, path, line),
        extra=extra,
    )


def _header(obj: dict[str, Any], path: Path, line: int) -> None:
    """Check a header line (``{"schema_version": n, ...}``) against the supported schema."""
    v = obj["schema_version"]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(path, line, f"'schema_version' must be an integer, got {v!r}")
    if v > SCHEMA_VERSION:
        raise _fail(
            path,
            line,
            f"manifest schema_version {v} is newer than this tise_bench supports "
            f"({SCHEMA_VERSION}); upgrade tise_bench",
        )


def load_manifest(path: str | Path) -> list[Record]:
    """Read a JSONL manifest; relative ``reference`` paths resolve against the manifest's folder.

    UTF-8 (a leading byte-order mark is accepted), one JSON object per line, blank lines ignored. Bad
    JSON, bad bytes, non-objects, missing/duplicate ids, empty captions and wrongly typed fields raise
    :class:`DataError` naming ``file:line``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}. Point data.manifest (or data.subsets.<name>) at a JSONL file.")
    records: list[Record] = []
    seen: dict[str, int] = {}
    try:
        fh = path.open("rb")
    except OSError as e:
        raise DataError(f"cannot read manifest {path}: {e.strerror or e}") from None
    with fh:
        for i, raw_bytes in enumerate(fh, start=1):
            try:
                raw = raw_bytes.decode("utf-8-sig" if i == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise _fail(
                    path,
                    i,
                    f"not valid UTF-8 (byte {raw_bytes[e.start : e.start + 1]!r} at column "
                    f"{e.start + 1}); save the manifest as UTF-8",
                ) from None
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                raise _fail(path, i, f"malformed JSON ({e.msg} at column {e.colno}); fix or delete this line") from None
            if isinstance(obj, dict) and "schema_version" in obj and set(obj) <= {"schema_version", "seed", "subset"}:
                _header(obj, path, i)
                continue  # header line
            rec = parse_record(obj, path, i, path.parent)
            if rec.id in seen:
                raise _fail(path, i, f"duplicate id {rec.id!r} (first on line {seen[rec.id]}); ids must be unique")
            seen[rec.id] = i
            records.append(rec)
    if not records:
        raise DataError(f"manifest {path} has no records")
    return records


#: Where manifests are written, for the message of a full or read-only disk (tise_bench.fsutil).
MANIFESTS = Place("manifest folder", "another folder (python -m tise_bench.prepare ... out=<folder>)")


def write_manifest(
    path: str | Path, records: list[Record], *, seed: int | None = None, subset: str | None = None
) -> None:
    """Write a manifest with a header line carrying the schema version (and seed); byte-deterministic. Atomic,
    under a temporary name of its own: concurrent writers of the same manifest never interleave (the last wins)."""
    atomic_write_text(path, manifest_text(records, seed=seed, subset=subset), MANIFESTS)


def manifest_text(records: list[Record], *, seed: int | None = None, subset: str | None = None) -> str:
    """The bytes (as text) :func:`write_manifest` writes."""
    header: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    if seed is not None:
        header["seed"] = seed
    if subset is not None:
        header["subset"] = subset
    lines = [json.dumps(header, sort_keys=True)]
    lines += [json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False) for r in records]
    return "\n".join(lines) + "\n"
