"""Seconds per training step of InSENet + LogisticHead on CPU (or any device).

One step = forward, logistic NLL, backward and an Adam update, on random features of the shape
the gammatone frontend gives for ``--seconds`` of 48 kHz stereo (``[B, 4, 2, 32, T]``). Prints
the thread count, the parameter count, the median seconds per step (after one untimed warm-up
step) and the peak resident memory of the process.

    python benchmarks/backbone_step.py --preset paper --batch 8 --seconds 10 --steps 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine, peak_rss_mib  # noqa: E402

from gml.backbones import PRESETS, InSENet  # noqa: E402
from gml.features import GammatoneFrontend  # noqa: E402
from gml.heads import LogisticHead  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--separate-views", action="store_true", help="one branch per view")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length at 48 kHz")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    frontend = GammatoneFrontend()
    frames = frontend.num_frames(round(args.seconds * frontend.settings()["sample_rate"]))
    bands = frontend.settings()["num_bands"]
    net = InSENet(args.preset, shared_views=not args.separate_views, num_bands=bands)
    head = LogisticHead()
    head.build(net.out_features)
    model = torch.nn.ModuleDict({"backbone": net, "head": head}).to(device).train()
    params = sum(p.numel() for p in model.parameters())
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)

    x = torch.rand(args.batch, 4, 2, bands, frames, device=device) * 60.0  # dB above the floor
    scores = torch.rand(args.batch, device=device) * 100.0

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        optim.zero_grad(set_to_none=True)
        dist = head(net(x))
        loss = head.loss(dist, scores)
        loss.backward()
        optim.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    print(describe_machine(str(device)))
    views = "separate" if args.separate_views else "shared"
    layout = "NCHW" if device.type != "cpu" else "channels-last"
    print(
        f"model: InSENet({args.preset!r}, {views} views) + LogisticHead: {params:,} parameters,"
        f" {layout}"
    )
    print(f"input: [{args.batch}, 4, 2, {bands}, {frames}] ({args.seconds:g} s at 48 kHz)")
    warm = step()
    print(f"warm-up step: {warm:.2f} s", flush=True)
    times = []
    for i in range(args.steps):
        times.append(step())
        print(f"step {i + 1}: {times[-1]:.2f} s", flush=True)
    if times:
        print(f"seconds/step (median of {len(times)}): {statistics.median(times):.2f}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
