"""CUB-200-2011 captions (Reed et al. 2016, as packaged for AttnGAN/DF-GAN) → realism and rp manifests.

Expected layout under ``cub_root`` (each also accepted under ``cub_root/birds/``):

* ``text_c10/<class>/<image>.txt`` (or ``text/…``): one caption per line, 10 per image;
* ``CUB_200_2011/images/<class>/<image>.jpg``: the images (references);
* ``test/filenames.pickle`` (optional): the test split as a list of ``"<class>/<image>"``; without it
  every caption file is used (and a note says so).

Record ids are ``f"{image}_{k}"`` (k = the caption's line among the image's non-empty lines);
``category`` is the species ("001.Black_footed_Albatross" → "Black footed Albatross"). realism takes
``sizes.realism`` captions, one per image before any image gets a second; rp takes ``sizes.rp`` prompts
the same way, each with ``sizes.rp_distractors`` captions of other images of the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..data.manifest import Record
from ..errors import DataError
from .common import (
    Log,
    Sizes,
    Summary,
    clean_caption,
    draw_distractors,
    load_pickle,
    reference_path,
    round_robin,
    subset_rng,
    unique_ids,
    write_subsets,
)


@dataclass(frozen=True)
class CubImage:
    key: str  # "<class>/<image>"
    captions: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def species(self) -> str:
        cls = self.key.split("/", 1)[0]
        return cls.split(".", 1)[-1].replace("_", " ")


def _first_dir(cands: list[Path]) -> Path | None:
    return next((c for c in cands if c.is_dir()), None)


def find_cub(cub_root: Path) -> tuple[Path, Path, Path | None]:
    """(caption folder, image folder, test-split pickle or None); errors name every place looked in."""
    if not cub_root.is_dir():
        raise DataError(f"cub_root={cub_root} is not a folder; it should hold text_c10/ and CUB_200_2011/images/")
    bases = [cub_root, cub_root / "birds"]
    text_cands = [b / t for b in bases for t in ("text_c10", "text")]
    text = _first_dir(text_cands)
    if text is None:
        raise DataError(
            f"CUB captions not found: looked for {', '.join(map(str, text_cands))}. Unpack the "
            f"birds caption archive (text_c10/<class>/<image>.txt) into cub_root."
        )
    img_cands = [b / "CUB_200_2011" / "images" for b in bases] + [cub_root / "images"]
    images = _first_dir(img_cands) or img_cands[0]
    split = next((p for p in (b / "test" / "filenames.pickle" for b in bases) if p.is_file()), None)
    return text, images, split


def _split_keys(path: Path) -> list[str]:
    obj = load_pickle(path)
    if not isinstance(obj, (list, tuple)):
        raise DataError(f"{path}: expected a list of '<class>/<image>' names, got {type(obj).__name__}")
    keys = [(k.decode() if isinstance(k, bytes) else str(k)).replace("\\", "/") for k in obj]
    return [k[:-4] if k.lower().endswith((".jpg", ".txt")) else k for k in keys]


def load_cub(cub_root: str | Path, summary: Summary) -> tuple[list[CubImage], Path]:
    """The images of the test split (or all) with their captions, sorted by key; and the image folder."""
    text, images, split = find_cub(Path(cub_root))
    if split is not None:
        keys = sorted(set(_split_keys(split)))
    else:
        keys = sorted(p.relative_to(text).with_suffix("").as_posix() for p in text.rglob("*.txt"))
        summary.notes.append(f"no test/filenames.pickle under {cub_root}: using all {len(keys)} caption files")
    out = []
    for key in keys:
        f = text / f"{key}.txt"
        if not f.is_file():
            summary.skip("input", "split image without a caption file")
            continue
        caps = tuple(
            c
            for c in (clean_caption(line) for line in f.read_text(encoding="utf-8", errors="replace").splitlines())
            if c
        )
        if not caps:
            summary.skip("input", "empty caption file")
            continue
        out.append(CubImage(key, caps))
    if not out:
        raise DataError(f"no CUB captions found under {text}" + (f" for the split in {split}" if split else ""))
    return out, images


def prepare_cub(
    cub_root: str | Path,
    out: str | Path,
    seed: int = 0,
    sizes: Sizes | Mapping[str, Any] | None = None,
    log: Log | None = print,
) -> dict[str, Path]:
    """Write ``<out>/realism.jsonl`` and ``<out>/rp.jsonl`` from CUB captions; returns subset → path."""
    sz = Sizes.from_any(sizes)
    out = Path(out)
    summary = Summary()
    imgs, image_dir = load_cub(cub_root, summary)
    used: set[Path] = set()

    def ref(im: CubImage) -> str:
        p = image_dir / f"{im.key}.jpg"
        used.add(p)
        return reference_path(p, out)

    def cid(im: CubImage, k: int) -> str:
        return f"{im.name}_{k}"

    groups = [[(im, k) for k in range(len(im.captions))] for im in imgs]
    realism = [
        Record(
            id=cid(im, k),
            caption=im.captions[k],
            reference=ref(im),
            category=im.species,
            ref_captions=tuple(c for j, c in enumerate(im.captions) if j != k),
        )
        for im, k in sorted(
            round_robin(groups, sz.realism, subset_rng(seed, "realism")), key=lambda t: (t[0].key, t[1])
        )
    ]
    rng = subset_rng(seed, "rp")
    picked = sorted(round_robin(groups, sz.rp, rng), key=lambda t: (t[0].key, t[1]))
    texts = [c for im in imgs for c in im.captions]
    owners = [im.key for im in imgs for _ in im.captions]
    rp = [
        Record(
            id=cid(im, k),
            caption=im.captions[k],
            reference=ref(im),
            category=im.species,
            mismatched=tuple(draw_distractors(rng, texts, owners, im.key, im.captions[k], sz.rp_distractors)),
        )
        for im, k in picked
    ]
    missing = sum(1 for p in used if not p.is_file())
    if missing:
        summary.notes.append(f"{missing} of {len(used)} referenced images are not under {image_dir}")
    return write_subsets(out, {"realism": unique_ids(realism), "rp": unique_ids(rp)}, seed, summary, log)
