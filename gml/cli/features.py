"""``gml features``: precompute into the cache the gammatone features that training and
testing on a manifest will read (the work is the data module's own set-up and
:class:`gml.data.cache.FeatureCache`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    """Entry point of ``gml features``."""
    p = argparse.ArgumentParser(
        prog="gml features",
        description="Compute into the feature cache (keyed by file content and frontend "
        "settings) every feature that 'gml fit', 'gml cv' and 'gml test' will read for a "
        "manifest: each stimulus's codec delay is estimated and the features of a delayed "
        "signal are taken after its removal, as in training. Uses all cores.",
    )
    p.add_argument("--manifest", required=True, help="manifest CSV, or builtin:demo")
    p.add_argument(
        "--ckpt",
        help="use this checkpoint's frontend settings and data.align (default: ViSQOL v3, aligned)",
    )
    p.add_argument("--cache-dir", help="cache folder (default $GML_CACHE_DIR or ~/.cache/gml)")
    p.add_argument("--workers", type=int, help="files at once (default: the number of cores)")
    p.add_argument("--device", help="where the frontend runs (default: CUDA when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    import torch

    from gml.data.cache import FeatureCache
    from gml.data.datamodule import GMLDataModule

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = {"manifest": args.manifest, "progress": not args.no_progress}
    if args.cache_dir is not None:
        data["cache_dir"] = args.cache_dir
    if args.ckpt:
        from gml.checkpoint import build_datamodule, load_module

        frontend = load_module(args.ckpt).frontend.to(device)
        dm = build_datamodule(args.ckpt, frontend=frontend, **data)
    else:
        from gml.features import GammatoneFrontend

        dm = GMLDataModule(frontend=GammatoneFrontend().to(device), **data)
    computed, read = FeatureCache.computed, FeatureCache.read
    workers, FeatureCache.default_workers = FeatureCache.default_workers, args.workers
    t0 = time.perf_counter()
    try:
        dm.setup()  # what training and testing read: delays, then the aligned features
    finally:
        FeatureCache.default_workers = workers
    table = dm.stimuli
    files = set(table["reference"]) | set(table["coded"])
    delayed = int((table["delay_samples"] != 0).sum())
    cache_dir = None if dm.cache_dir is None else Path(dm.cache_dir) / "features"
    cache = FeatureCache(dm.frontend, cache_dir, workers=args.workers)
    print(
        f"gml: {len(files)} audio files, {len(table)} stimuli ({delayed} with a codec delay, "
        f"their features taken after its removal): {FeatureCache.computed - computed} "
        f"features computed, {FeatureCache.read - read} already cached, "
        f"{time.perf_counter() - t0:.1f} s ({cache.workers} workers, {device}) → {cache.dir}"
    )
