"""Shared test helpers (importable as ``helpers``; tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

RANDOM_BACKBONES = {"random": True, "seed": 0, "device": "cpu", "clip": {"model": "ViT-B-32"}, "inception": {}}


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
