"""Benchmark the single-pass feature bank on the embedded demo: first run vs cached re-run.

    python scripts/bench_cache.py [--n-prompts 40] [--image-size 128] [--backbones random]

Prints wall time of a first run (empty cache), of a re-run (everything cached: no decode, no forward),
their ratio, and the decode / forward counts that prove one decode per image and zero forwards on the
re-run. Uses a temporary cache and results dir; nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-prompts", type=int, default=40)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--backbones", default="random", choices=["random", "real"])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    from hydra import compose, initialize_config_module

    from tise_bench.backbones import _BUILT
    from tise_bench import imagefile as decode
    from tise_bench.runner import run

    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
            cfg = compose(
                "config",
                overrides=[
                    f"backbones={args.backbones}",
                    f"backbones.device={args.device}",
                    f"paths.cache_dir={tmp}/cache",
                    f"paths.results_dir={tmp}/results",
                    f"data.n_prompts={args.n_prompts}",
                    f"data.image_size={args.image_size}",
                    "progress=false",
                    "print_table=false",
                ],
            )
        timings, counts = [], []
        for label in ("first run", "cached re-run"):
            decode.DECODE_COUNT = 0
            before = {k[0]: b.n_forward_images for k, b in _BUILT.items()}
            t = time.perf_counter()
            results = run(cfg)
            timings.append(time.perf_counter() - t)
            fwd = {k[0]: b.n_forward_images - before.get(k[0], 0) for k, b in _BUILT.items()}
            counts.append((decode.DECODE_COUNT, fwd))
            n_img = sum(int(r.provenance["counts"]["images"]) for r in results)
            print(
                f"{label:>14}: {timings[-1]:7.2f} s  decodes={decode.DECODE_COUNT}  forwards={fwd}  "
                f"({len(results)} models, {n_img} generated images)"
            )
        print(f"cached re-run / first run = {timings[1] / timings[0]:.3f}")


if __name__ == "__main__":
    main()
