"""Shared test helpers (importable as ``helpers``; tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

RANDOM_BACKBONES = {"random": True, "seed": 0, "device": "cpu", "clip": {"model": "ViT-B-32"}, "inception": {}}


def cached_keys(cache: Path) -> dict[str, set[str]]:
    """Every key in a feature cache's shards on disk, per namespace folder (crop namespaces included)."""
    out: dict[str, set[str]] = {}
    for shard in (cache / "features").rglob("*.npz"):
        with np.load(shard) as z:
            out.setdefault(shard.parent.name, set()).update(z["keys"].tolist())
    return out


def structured_images(folder: Path, n: int, seed: int, size: int = 64, prefix: str = "") -> list[Path]:
    """Seeded images with large coloured shapes (random-weight Inception features do not collapse on them)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = np.empty((size, size, 3), np.uint8)
        a[:] = rng.integers(0, 256, 3)
        for _ in range(3):
            y, x = rng.integers(0, size - 8, 2)
            h, w = rng.integers(8, size // 2, 2)
            a[y : y + h, x : x + w] = rng.integers(0, 256, 3)
        p = folder / f"{prefix}{i:04d}.png"
        Image.fromarray(a).save(p)
        out.append(p)
    return out


def tiny_demo_config(cache: Path, results: Path, *extra: str):
    """The demo eval set at test size (6 prompts, 48 px images) with random CPU backbones, composed as the CLI
    composes it; ``extra`` are more overrides."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        return compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                f"paths.cache_dir={cache}",
                f"paths.results_dir={results}",
                "data.n_prompts=6",
                "data.image_size=48",
                "progress=false",
                "print_table=false",
                *extra,
            ],
        )


def custom_run_config(root: Path, manifest: Path, *extra: str):
    """``model=folder`` (images in ``root/gen``) on ``data=custom`` (``manifest``) with random CPU backbones, cache
    ``root/cache`` and results ``root/res``, no progress bar, table or bootstrap, composed as the CLI composes it;
    ``extra`` are more overrides."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        return compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                "model=folder",
                "model.name=m",
                f"model.samples_dir={root / 'gen'}",
                "data=custom",
                "data.name=tiny",
                f"data.manifest={manifest}",
                f"paths.cache_dir={root / 'cache'}",
                f"paths.results_dir={root / 'res'}",
                "progress=false",
                "print_table=false",
                "bootstrap.replicates=0",
                "bootstrap.replicates_features=0",
                *extra,
            ],
        )


def cache_with_session_weights(session_cache: Path, cache: Path) -> Path:
    """A new feature cache holding the session's random-weights files (no backbone is re-initialised)."""
    import shutil

    for sub in ("weights", "weights-hashes"):
        if (session_cache / sub).is_dir():
            shutil.copytree(session_cache / sub, cache / sub)
    return cache


#: A tiny open_clip CLIP (ViT + text transformer, 224 px, two layers per tower), registered under this name by
#: :func:`tiny_clip_model`: for backbones whose random variant is a real (slow) architecture, e.g.
#: ``backbones.segmenter.clip_model``.
TINY_CLIP_NAME = "tise-tiny-test-clip"
TINY_CLIP_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 16, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}


def tiny_clip_model() -> str:
    """Register :data:`TINY_CLIP_CFG` with open_clip (idempotent) and return its name."""
    from open_clip import factory

    factory._MODEL_CONFIGS.setdefault(TINY_CLIP_NAME, TINY_CLIP_CFG)
    return TINY_CLIP_NAME
