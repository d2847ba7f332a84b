"""Reference statistics files that say which network made them (issue 9, defect 11).

``python -m tise_bench.refstats <folder of real images> <out.npz> [--random] [--cache-dir DIR]`` extracts
Inception pool3 features of every image in the folder (through the FeatureBank: cached, one decode per image)
and writes ``mu``, ``sigma`` (pytorch-fid's array names) plus ``feature_extractor`` = the Inception backbone's
ident and weights hash. ``data.reference_stats=<out.npz>`` accepts such a file only when a run's Inception is
the same network; files from other tools need ``data.reference_stats_extractor`` (see
:data:`tise_bench.evalset.REFERENCE_EXTRACTORS`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .data.samples import IMAGE_EXTS
from .errors import DataError, TiseError


def reference_statistics(
    images: str | Path,
    out: str | Path,
    *,
    backbones: str = "real",
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    device: str = "auto",
) -> Path:
    """pool3 statistics of every image directly in ``images`` -> ``out`` (with ``feature_extractor``)."""
    from omegaconf import OmegaConf

    from .backbones import build_backbones
    from .evalset import feature_extractor_id, write_reference_stats
    from .features.bank import FeatureBank
    from .metrics.inception import fid_statistics

    folder = Path(images)
    if not folder.is_dir():
        raise DataError(f"reference images folder not found: {folder}; give the folder of real images")
    paths = sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if len(paths) < 2:
        raise DataError(f"{folder} holds {len(paths)} images ({', '.join(IMAGE_EXTS)}); statistics need at least 2")
    if backbones not in ("real", "random"):
        raise DataError(f"backbones={backbones!r}: use 'real' or 'random'")
    conf = Path(__file__).parent / "configs" / "backbones" / f"{backbones}.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(conf))
    assert isinstance(raw, dict), f"{conf} holds a mapping of backbone settings"
    bcfg: dict[str, Any] = {str(k): v for k, v in raw.items()}
    bcfg["device"] = device
    cache = Path(cache_dir or os.environ.get("TISE_CACHE_DIR") or Path.home() / ".cache" / "tise_bench")
    built = build_backbones(bcfg, {"inception"}, cache)
    feats = FeatureBank(built, cache, batch_size=batch_size).images(paths, {"inception": {"pool3"}})
    mu, sigma = fid_statistics(feats.features["inception.pool3"])
    return write_reference_stats(out, mu, sigma, extractor=feature_extractor_id(built["inception"]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tise_bench.refstats", description=__doc__.split("\n\n")[0])
    ap.add_argument("images", help="folder of real images")
    ap.add_argument("out", help="output .npz (mu, sigma, feature_extractor)")
    ap.add_argument("--random", action="store_true", help="random-weights Inception (smoke tests only)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args(argv)
    try:
        out = reference_statistics(
            a.images, a.out, backbones="random" if a.random else "real", cache_dir=a.cache_dir, device=a.device
        )
    except TiseError as e:
        print(f"tise_bench.refstats: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
