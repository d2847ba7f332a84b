"""The embedded offline demo eval set (SPEC §6: ``data=demo``), rendered by the package itself, no downloads.

``prepare_demo(root)`` draws procedural scenes of iconic COCO objects (see :mod:`.demo_draw`), writes the
five subset manifests (realism, rp, pa, ca, soa), reference images and one image folder per demo model with
a known degradation (``DEMO_MODELS``) into ``root/<demo_folder_name(...)>``: one folder per configuration
(renderer version, prompts, size, seed), so a sweep over ``data.seed`` never scores one seed's images against
another's captions. Output is byte-deterministic for a configuration, idempotent (a stamp file
``<folder>/DEMO_VERSION`` short-circuits re-rendering) and safe under concurrent callers (render into a private
sibling folder, then rename it into place atomically; a folder in place is never moved or replaced).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ..errors import DataError
from .demo_draw import BACKGROUNDS, INTERIOR, layout_counting, layout_positional, render
from .manifest import Record, write_manifest

DEMO_VERSION = "1"
STAMP = "DEMO_VERSION"
SUBSETS = ("realism", "rp", "pa", "ca", "soa")
DEMO_MODELS: dict[str, str] = {
    "faithful": "the same scenes re-rendered with another jitter seed; two samples per prompt (<id>_0, <id>_1)",
    "blurred": "faithful sample 0 with a strong Gaussian blur (hurts realism/FID, keeps layout)",
    "noisy": "faithful sample 0 with heavy additive Gaussian noise (hurts realism and detection)",
    "shuffled": "realistic images of the wrong prompt (a seeded derangement): caption mismatch",
    "collapsed": "mode collapse: every prompt gets one of only two images",
}
#: class -> (plural, home background, counting-scene place phrase)
CLASSES: dict[str, tuple[str, str, str]] = {
    "stop sign": ("stop signs", "street", "by the road"),
    "clock": ("clocks", "wall", "on a wall"),
    "sports ball": ("sports balls", "park", "on the grass"),
    "kite": ("kites", "sky", "in the sky"),
    "traffic light": ("traffic lights", "street", "on a street"),
    "pizza": ("pizzas", "table", "on a table"),
    "tv": ("tvs", "wall", "in a room"),
    "cup": ("cups", "table", "on a table"),
}
#: positional word -> (phrase used in captions, opposite word)
POSITIONAL: dict[str, tuple[str, str]] = {
    "left": ("to the left of", "right"),
    "right": ("to the right of", "left"),
    "above": ("above", "below"),
    "below": ("below", "above"),
    "on top of": ("on top of", "under"),
    "under": ("under", "on top of"),
    "near": ("near", "far"),
    "far": ("far from", "near"),
    "in front of": ("in front of", "behind"),
    "behind": ("behind", "in front of"),
    "inside": ("inside", "outside"),
    "outside": ("outside", "inside"),
}
COUNT_WORDS: dict[str, int] = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}
_REF_STREAM, _FAITHFUL_STREAM, _NOISE_STREAM, _PLAN_STREAM = 1, 100, 7, 0


@dataclass(frozen=True)
class DemoPaths:
    """Where a prepared demo lives: manifests per subset, reference images, and one folder per model."""

    root: Path
    manifests: dict[str, Path]
    reference_dir: Path
    models_dir: Path
    model_names: list[str]


@dataclass(frozen=True)
class Scene:
    """What one prompt shows: background, objects, and the relation (positional) or count (counting)."""

    record: Record
    background: str
    objects: tuple[str, ...]
    word: str | None = None
    count: int = 0


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _positional_scene(rid: str, a: str, word: str, b: str) -> Scene:
    phrase, opposite = POSITIONAL[word]
    cap = f"{_article(a)} {a} {phrase} {_article(b)} {b}"
    refs = (f"a photo of {cap}", f"a picture showing {cap}", f"{_article(b)} {b} with {_article(a)} {a} {phrase} it")
    rec = Record(
        id=rid,
        caption=cap,
        reference=f"../reference/{rid}.png",
        category=a,
        labels=(a, b),
        positional_word=word,
        counter_caption=f"{_article(a)} {a} {POSITIONAL[opposite][0]} {_article(b)} {b}",
        ref_captions=refs,
    )
    return Scene(rec, CLASSES[b][1], (a, b), word=word)


def _counting_scene(rid: str, cls: str, n: int, word: str) -> Scene:
    plural, bg, place = CLASSES[cls]
    noun = cls if n == 1 else plural
    cap = f"{word} {noun} {place}"
    refs = (f"a photo of {cap}", f"there {'is' if n == 1 else 'are'} {word} {noun} {place}", f"an image of {cap}")
    rec = Record(
        id=rid,
        caption=cap,
        reference=f"../reference/{rid}.png",
        category=cls,
        labels=(cls,),
        counts={cls: n},
        ref_captions=refs,
    )
    return Scene(rec, bg, (cls,), count=n)


def plan_scenes(n_prompts: int, seed: int) -> list[Scene]:
    """The demo's prompts: even indices positional, odd counting; classes/words drawn from ``seed``."""
    rng = np.random.default_rng([seed, _PLAN_STREAM])
    classes, words = list(CLASSES), list(POSITIONAL)
    word_order = [words[k] for k in rng.permutation(len(words))]
    combos = [(c, n) for c in classes for n in (1, 2, 3, 4)]
    combo_order = [combos[k] for k in rng.permutation(len(combos))]
    scenes: list[Scene] = []
    seen: set[str] = set()
    for i in range(n_prompts):
        rid = f"demo_{i:04d}"
        for _ in range(50):  # prefer unique captions (RP is ambiguous otherwise)
            if i % 2 == 0:
                word = word_order[(i // 2) % len(words)]
                pool = list(INTERIOR) if word in ("inside", "outside") else classes
                b = pool[int(rng.integers(len(pool)))]
                others = [c for c in classes if c != b]
                a = others[int(rng.integers(len(others)))]
                sc = _positional_scene(rid, a, word, b)
            else:
                cls, n = (
                    combo_order[(i // 2) % len(combos)]
                    if i // 2 < len(combos)
                    else (classes[int(rng.integers(len(classes)))], int(rng.integers(1, 5)))
                )
                sc = _counting_scene(
                    rid,
                    cls,
                    n,
                    ("a", "one")[int(rng.integers(2))] if n == 1 else [w for w, v in COUNT_WORDS.items() if v == n][0],
                )
            if sc.record.caption not in seen:
                break
        seen.add(sc.record.caption)
        scenes.append(sc)
    return scenes


def render_scene(scene: Scene, seed: int, stream: int, index: int, size: int) -> Image.Image:
    """Render one scene with jitter drawn from (seed, stream, index): positions, sizes, colours, background."""
    rng = np.random.default_rng([seed, stream, index])
    if scene.word is not None:
        placed = layout_positional(scene.objects[0], scene.word, scene.objects[1], rng, size)
    else:
        placed = layout_counting(scene.objects[0], scene.count, scene.background, rng, size)
    return render(scene.background, placed, rng, size)


def _png(img: Image.Image) -> bytes:
    """PNG bytes with no metadata (no text chunks, no timestamps): byte-deterministic."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _derangement(n: int, rng: np.random.Generator) -> list[int]:
    """Sattolo's algorithm: a uniformly random cyclic permutation, hence no fixed points (n >= 2)."""
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        k = int(rng.integers(i))
        perm[i], perm[k] = perm[k], perm[i]
    return perm


def _render_all(out: Path, n_prompts: int, size: int, seed: int) -> None:
    """Write manifests, reference images and model folders for one configuration into ``out``."""
    scenes = plan_scenes(n_prompts, seed)
    ids = [s.record.id for s in scenes]
    records = [s.record for s in scenes]
    subsets = {
        "realism": records,
        "rp": records,
        "soa": records,
        "pa": [s.record for s in scenes if s.word is not None],
        "ca": [s.record for s in scenes if s.word is None],
    }
    for name in SUBSETS:
        write_manifest(out / "manifests" / f"{name}.jsonl", subsets[name], seed=seed, subset=name)
    ref, models = out / "reference", out / "models"
    for d in [ref] + [models / m for m in DEMO_MODELS]:
        d.mkdir(parents=True, exist_ok=True)
    radius = max(size / 32.0, 1.0)
    faithful0: list[bytes] = []
    for i, sc in enumerate(scenes):
        (ref / f"{ids[i]}.png").write_bytes(_png(render_scene(sc, seed, _REF_STREAM, i, size)))
        for k in range(2):
            img = render_scene(sc, seed, _FAITHFUL_STREAM + k, i, size)
            data = _png(img)
            (models / "faithful" / f"{ids[i]}_{k}.png").write_bytes(data)
            if k == 0:
                faithful0.append(data)
                (models / "blurred" / f"{ids[i]}.png").write_bytes(_png(img.filter(ImageFilter.GaussianBlur(radius))))
                noise = np.random.default_rng([seed, _NOISE_STREAM, i]).normal(0.0, 60.0, (size, size, 3))
                noisy = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).round().astype(np.uint8)
                (models / "noisy" / f"{ids[i]}.png").write_bytes(_png(Image.fromarray(noisy, "RGB")))
    rng = np.random.default_rng([seed, _NOISE_STREAM + 1])
    for i, j in enumerate(_derangement(n_prompts, rng)):
        (models / "shuffled" / f"{ids[i]}.png").write_bytes(faithful0[j])
    modes = rng.choice(n_prompts, size=2, replace=False)
    for i, m in enumerate(rng.permutation(n_prompts) % 2):
        (models / "collapsed" / f"{ids[i]}.png").write_bytes(faithful0[int(modes[m])])


def demo_folder_name(n_prompts: int, image_size: int, seed: int) -> str:
    """The folder of one demo configuration under the demo root: everything that changes its bytes is in the name
    (the renderer's :data:`DEMO_VERSION` -- bump it whenever the output changes -- prompt count, size, seed), so two
    configurations never share a folder and neither is ever moved or replaced for the other."""
    return f"v{DEMO_VERSION}-n{n_prompts}-px{image_size}-seed{seed}"


def _stamp_text(n_prompts: int, size: int, seed: int) -> str:
    return f"demo {DEMO_VERSION} n_prompts={n_prompts} image_size={size} seed={seed}\n"


def _stamp_ok(folder: Path, stamp: str) -> bool:
    try:
        return (folder / STAMP).read_text(encoding="utf-8") == stamp
    except OSError:
        return False


def _occupied(folder: Path) -> bool:
    """True when something other than an empty folder is at ``folder`` (a rename onto an empty one is atomic)."""
    if not folder.is_dir() or folder.is_symlink():
        return folder.exists() or folder.is_symlink()
    return any(folder.iterdir())


def _not_this_demo(folder: Path, stamp: str) -> DataError:
    try:
        found = f"its {STAMP} says {(folder / STAMP).read_text(encoding='utf-8').strip()!r}"
    except OSError:
        found = f"it has no {STAMP} file, so it is not a tise_bench demo folder"
    return DataError(
        f"{folder} exists but does not hold the demo expected there ({stamp.strip()!r}): {found}.\n"
        f"  tise_bench never moves or deletes it (a running evaluation may be reading it). fix: remove it when no "
        f"run uses it, or set data.root to another folder."
    )


def _clean_stale_tmp(folder: Path) -> None:
    """Remove ``<folder>.tmp-<pid>-*`` folders left by processes that no longer exist (a crash mid-render)."""
    for p in folder.parent.glob(f"{folder.name}.tmp-*"):
        m = re.match(re.escape(folder.name) + r"\.tmp-(\d+)-", p.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _install(tmp: Path, folder: Path, stamp: str) -> None:
    """Atomically rename the finished ``tmp`` to ``folder``. If another process installed the same configuration
    first, keep theirs (identical bytes) and drop ours; an existing folder is never moved aside or replaced."""
    try:
        os.rename(tmp, folder)  # atomic; fails onto a non-empty folder, succeeds onto an empty one
        return
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    if not _stamp_ok(folder, stamp):
        raise _not_this_demo(folder, stamp)


def prepare_demo(root: str | Path, *, n_prompts: int = 40, image_size: int = 128, seed: int = 0) -> DemoPaths:
    """Render the demo eval set into ``root/<demo_folder_name(...)>`` (or reuse it when its stamp matches) and
    return its paths.

    Layout of that folder: ``manifests/<subset>.jsonl`` (realism, rp, pa, ca, soa), ``reference/<id>.png`` and
    ``models/<name>/`` for each of ``DEMO_MODELS``. Each configuration (version, prompts, size, seed) has its own
    folder, so concurrent runs with different configurations never touch each other's files. Raises
    :class:`DataError` for bad arguments, when ``root`` is a file, or when the configuration's folder holds
    something else (it is left alone).
    """
    if n_prompts < 2:
        raise DataError(f"demo n_prompts must be >= 2 (got {n_prompts}): the shuffled model needs a derangement")
    if image_size < 16:
        raise DataError(f"demo image_size must be >= 16 pixels (got {image_size})")
    if seed < 0:
        raise DataError(f"demo seed must be >= 0 (got {seed}); set data.seed to a non-negative integer")
    base = Path(root).expanduser().absolute()
    folder = base / demo_folder_name(n_prompts, image_size, seed)
    paths = DemoPaths(
        root=folder,
        manifests={s: folder / "manifests" / f"{s}.jsonl" for s in SUBSETS},
        reference_dir=folder / "reference",
        models_dir=folder / "models",
        model_names=list(DEMO_MODELS),
    )
    stamp = _stamp_text(n_prompts, image_size, seed)
    if _stamp_ok(folder, stamp):
        return paths
    if base.exists() and not base.is_dir():
        raise DataError(f"the demo root {base} is not a folder; set data.root to a folder (the demo is written inside)")
    if _occupied(folder):
        raise _not_this_demo(folder, stamp)
    base.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f"{folder.name}.tmp-{os.getpid()}-", dir=base))
    tmp.chmod(0o755)  # mkdtemp makes it private; the demo is meant to be shared/readable
    try:
        _render_all(tmp, n_prompts, image_size, seed)
        (tmp / STAMP).write_text(stamp, encoding="utf-8")  # last: a stamped folder is complete
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _install(tmp, folder, stamp)
    return paths


__all__ = [
    "DEMO_MODELS",
    "DEMO_VERSION",
    "DemoPaths",
    "demo_folder_name",
    "prepare_demo",
    "plan_scenes",
    "render_scene",
    "POSITIONAL",
    "COUNT_WORDS",
    "CLASSES",
    "SUBSETS",
    "BACKGROUNDS",
]
