"""CPU time of the gammatone frontend (the 8 views' spectrograms of one file) per 10 s of
48 kHz stereo audio, for several CPU block sizes (``GammatoneFrontend.cpu_block_frames``),
measured side by side in one run.

Prints machine, torch, threads, and per block size the milliseconds per 10 s (median and
best of the interleaved rounds) and the speed in × real time. In ``gml predict`` on CPU the
frontend runs in the prefetching thread beside the model, so its single-thread time is the
CPU it takes from the model (``--threads 1``, the default).

    python benchmarks/frontend.py --threads 1 --blocks 32,64,128,256
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine, interleaved  # noqa: E402

from gml.features import GammatoneFrontend  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0, help="length of the stereo signal")
    p.add_argument("--blocks", default="64,128", help="cpu_block_frames values, comma-separated")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(2, int(args.seconds * 48000))
    blocks = [int(b) for b in args.blocks.split(",")]
    frontends = {}
    for b in blocks:
        fe = GammatoneFrontend()
        fe.cpu_block_frames = b
        frontends[f"block {b}"] = fe
    with torch.inference_mode():
        outs = {k: fe.spectrogram(audio) for k, fe in frontends.items()}
        first = next(iter(outs.values()))
        worst = max(float((o - first).abs().max()) for o in outs.values())
        times = interleaved(
            {k: (lambda fe=fe: fe.spectrogram(audio)) for k, fe in frontends.items()},
            rounds=args.rounds,
        )
    print(describe_machine("cpu", args.threads))
    print(
        f"signal   {args.seconds:g} s of stereo 48 kHz noise -> {list(first.shape)} "
        f"(largest difference between block sizes: {worst:.2g} dB)"
    )
    per10 = 10.0 / args.seconds
    for name, t in times.items():
        ms, best = 1000 * t["median"] * per10, 1000 * t["min"] * per10
        print(
            f"{name:10s} {ms:7.1f} ms per 10 s (best {best:.1f}) = "
            f"{args.seconds / t['median']:6.0f}x real time"
        )


if __name__ == "__main__":
    main()
