"""``gml features``: precompute the gammatone features of a manifest's audio into the cache
(the work is :class:`gml.data.cache.FeatureCache`)."""

from __future__ import annotations

import argparse
import time


def main(argv: list[str]) -> None:
    """Entry point of ``gml features``."""
    p = argparse.ArgumentParser(
        prog="gml features",
        description="Compute the gammatone features of every audio file of a manifest into the "
        "feature cache (keyed by file content and frontend settings), using all cores.",
    )
    p.add_argument("--manifest", required=True, help="manifest CSV, or builtin:demo")
    p.add_argument("--ckpt", help="use this checkpoint's frontend settings (default: ViSQOL v3)")
    p.add_argument("--cache-dir", help="cache folder (default $GML_CACHE_DIR or ~/.cache/gml)")
    p.add_argument("--workers", type=int, help="files at once (default: the number of cores)")
    p.add_argument("--device", help="where the frontend runs (default: CUDA when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    import torch

    from gml.data.cache import FeatureCache
    from gml.data.datamodule import GMLDataModule
    from gml.data.manifest import Manifest
    from gml.features import GammatoneFrontend

    frontend = GammatoneFrontend()
    if args.ckpt:
        from gml.checkpoint import load_module

        frontend = load_module(args.ckpt).frontend
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    frontend = frontend.to(device)
    dm = GMLDataModule(args.manifest, cache_dir=args.cache_dir, progress=not args.no_progress)
    manifest = Manifest.read(dm.manifest_path())
    files = manifest.audio_files()
    cache_dir = None if args.cache_dir is None else f"{args.cache_dir}/features"
    cache = FeatureCache(frontend, cache_dir, progress=not args.no_progress, workers=args.workers)
    before = sum(1 for _ in cache.dir.glob("*.npy")) if cache.dir.is_dir() else 0
    t0 = time.perf_counter()
    cache.get_many(files)
    after = sum(1 for _ in cache.dir.glob("*.npy"))
    print(
        f"gml: {len(files)} audio files, {after - before} computed, "
        f"{len(files) - (after - before)} already cached, {time.perf_counter() - t0:.1f} s "
        f"({cache.workers} workers, {device}) → {cache.dir}"
    )
