"""Options shared by the commands that load a trained listener (predict, compare)."""

from __future__ import annotations

import argparse

from gml.errors import GMLError


def add_listener_arguments(p: argparse.ArgumentParser) -> None:
    """``--ckpt`` (repeatable: an ensemble), ``--device``, ``--batch-size``,
    ``--window-seconds``, ``--bf16``, ``--workers``, ``--no-progress``."""
    p.add_argument(
        "--ckpt",
        required=True,
        action="append",
        help="checkpoint (best.ckpt) or run folder; repeat it to use several models as one "
        "ensemble listener",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    p.add_argument(
        "--batch-size", type=int, help="windows per forward pass (default: 8 on CPU, 16 on GPU)"
    )
    p.add_argument(
        "--window-seconds",
        type=float,
        default=20.0,
        help="excerpts up to this long are scored whole, longer ones in windows of this "
        "length with 50%% overlap (default 20)",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="run the network in bfloat16 (GPUs; slower on CPUs without bf16 units)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="processes that read the files of a list while the model runs (default: on a "
        "GPU one per CPU core but two, at most 12; on CPU 0, a reading thread instead)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_listener(args: argparse.Namespace):
    """The :class:`gml.listener.Listener` that the options of :func:`add_listener_arguments`
    describe."""
    from gml.listener import load

    models = args.ckpt[0] if len(args.ckpt) == 1 else args.ckpt
    if not args.window_seconds > 0:
        raise GMLError(f"--window-seconds {args.window_seconds}; expected a positive number")
    if args.workers is not None and args.workers < 0:
        raise GMLError(f"--workers {args.workers}; expected 0 or more")
    return load(
        models,
        device=args.device,
        batch_size=args.batch_size,
        window_seconds=args.window_seconds,
        bf16=args.bf16,
        workers=args.workers,
    )
