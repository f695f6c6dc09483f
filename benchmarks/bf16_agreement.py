"""How far bfloat16 inference moves a trained listener's predictions, and what it costs.

Scores the same pairs with ``gml.load(ckpt)`` in float32 and with ``bf16=True`` (the backbone
under bfloat16 autocast, the head in float32), prints the largest and the mean absolute
differences of the predicted mean and listener standard deviation, and the seconds of each
(interleaved rounds). Pairs come from a CSV (``reference, coded`` columns, paths relative to
it) or from a manifest (its distinct stimuli).

    python benchmarks/bf16_agreement.py --ckpt RUN/best.ckpt \\
        --manifest ~/.cache/gml/demo-v2-m16x15-s8x10-3s-seed0/manifest.csv
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine, interleaved  # noqa: E402


def _pairs(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    path = args.pairs or args.manifest
    frame = pd.read_csv(path)
    if args.manifest:
        frame = frame.drop_duplicates(["reference", "coded"])
    root = os.path.dirname(os.path.abspath(path))
    if args.limit:
        frame = frame.head(args.limit)
    refs = [os.path.join(root, r) for r in frame["reference"]]
    cods = [os.path.join(root, c) for c in frame["coded"]]
    return refs, cods


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="a trained checkpoint or run folder")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--pairs", help="CSV with reference, coded columns")
    g.add_argument("--manifest", help="a manifest: its distinct reference/coded pairs")
    p.add_argument("--limit", type=int, help="score only the first N pairs")
    p.add_argument("--device", default=None, help="cpu, cuda (default: CUDA when available)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import gml

    refs, cods = _pairs(args)
    fp32 = gml.load(args.ckpt, device=args.device)
    bf16 = gml.load(args.ckpt, device=args.device, bf16=True)
    a = fp32.predict(refs, cods, progress=False)
    b = bf16.predict(refs, cods, progress=False)
    times = interleaved(
        {
            "float32": lambda: fp32.predict(refs, cods, progress=False),
            "bf16": lambda: bf16.predict(refs, cods, progress=False),
        },
        rounds=args.rounds,
        warmup=0,
        device=str(fp32.device),
    )
    print(describe_machine(str(fp32.device)))
    print(f"model    {args.ckpt}; {len(refs)} pairs from {args.pairs or args.manifest}")
    for col in ("mean", "std"):
        d = (a[col] - b[col]).abs()
        print(f"|{col} fp32 - bf16|  max {d.max():.3f}  mean {d.mean():.3f}  (points)")
    for name, t in times.items():
        print(f"{name:8s} {t['median']:.2f} s for the {len(refs)} pairs (best {t['min']:.2f})")


if __name__ == "__main__":
    main()
