"""Inference time of the paper-size InSE-Net + head per 10 s pair, and what each CPU
optimisation buys, measured side by side in one run.

Variants (all on the same random features, ``[B, 4, 2, 32, 497]``):

- ``as trained``: the module as it trains (channels-last on CPU, batch norm as a separate
  pass);
- ``+ folded batch norm``: :func:`gml.inference.fold_batchnorm`;
- ``+ CPU trunk``: what :class:`gml.Listener` runs: the folded network through
  :func:`gml.inference.cpu_trunk` (separable 3×3 max-pool, squeeze-excitation scaling after
  the 2×2 pooling, the stem and first block one image at a time, four images at a time);
  ``..., first block by pair`` with the first block taking a pair's four images at once;
- the same at batch 2, 4, 8, and at batch 8 without chunks (``unchunked``) to show why they
  exist;
- ``bf16 autocast`` of the folded model, and ``--compile``: ``torch.compile`` of it;
- ``--also paper-fast`` (or any preset): that preset folded, batch 1, with its own FLOPs (e.g.
  the paper's widths with the stem striding 2 in time).

Prints machine, torch, threads, the FLOPs per pair (``torch.utils.flop_counter``), milliseconds
per pair (median and best of the interleaved rounds), achieved GFLOP/s, that as a fraction
of a large fp32 / bf16 matrix product on the same threads (the practical ceiling), and the
minor page faults per pair (memory mapped afresh during the call; see :mod:`common`).

    python benchmarks/model_forward.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine, interleaved, sgemm_peak  # noqa: E402

from gml.backbones import InSENet  # noqa: E402
from gml.backbones.insenet_cpu import CpuViewBranch  # noqa: E402
from gml.heads import LogisticHead  # noqa: E402
from gml.inference import cpu_trunk, fold_batchnorm  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument("--also", action="append", default=[], help="also time this preset, folded")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    frames = 1 + (round(args.seconds * 48000) - 3840) // 960
    net = InSENet(args.preset).eval()
    head = LogisticHead()
    head.build(net.out_features)
    head.eval()
    x1 = torch.rand(1, 4, 2, 32, frames) * 60

    from torch.utils.flop_counter import FlopCounterMode

    def count_flops(model) -> int:
        with FlopCounterMode(display=False) as fc, torch.inference_mode():
            head.proj(model(x1))
        return fc.get_total_flops()

    flops = count_flops(net)

    folded = fold_batchnorm(net)
    trunk = cpu_trunk(folded)
    by_pair = cpu_trunk(folded)
    unchunked = cpu_trunk(folded)
    for m in by_pair.modules():
        if isinstance(m, CpuViewBranch):
            m.first_chunk = 4
    for m in unchunked.modules():
        if isinstance(m, CpuViewBranch):
            m.chunk = m.first_chunk = 1 << 30

    def run(model, batch, bf16=False):
        xb = x1.expand(batch, -1, -1, -1, -1).contiguous()

        def fn():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return head.proj(model(xb))

        return fn, batch

    variants = {
        "as trained, batch 1": run(net, 1),
        "+ folded batch norm, batch 1": run(folded, 1),
        "+ CPU trunk, first block by pair": run(by_pair, 1),
        "+ CPU trunk, batch 1": run(trunk, 1),
        "+ CPU trunk, batch 2": run(trunk, 2),
        "+ CPU trunk, batch 4": run(trunk, 4),
        "+ CPU trunk, batch 8": run(trunk, 8),
        "+ CPU trunk, batch 8 unchunked": run(unchunked, 8),
        "+ CPU trunk, bf16 autocast, batch 1": run(trunk, 1, bf16=True),
    }
    variant_flops = {k: flops for k in variants}
    for preset in args.also:
        other = InSENet(preset).eval()
        if other.out_features != net.out_features:
            p.error(
                f"--also {preset}: {other.out_features} features, the head takes {net.out_features}"
            )
        name = f"{preset}, CPU trunk, batch 1"
        variants[name] = run(cpu_trunk(fold_batchnorm(other)), 1)
        variant_flops[name] = count_flops(other)
        print(f"{preset}: {variant_flops[name] / 1e9:.2f} GFLOP per pair", flush=True)
    compile_s = None
    if args.compile:
        compiled = torch.compile(folded)
        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled(x1)
        compile_s = time.perf_counter() - t0
        variants["+ folded, torch.compile, batch 1"] = run(compiled, 1)
        variant_flops["+ folded, torch.compile, batch 1"] = flops

    with torch.inference_mode():
        ref = head.proj(net(x1))
        diff = (head.proj(folded(x1)) - ref).abs().max().item()
        fns = {k: f for k, (f, _) in variants.items()}
        res = interleaved(fns, rounds=args.rounds)
    peak32 = sgemm_peak()
    peak16 = sgemm_peak(dtype=torch.bfloat16)

    print(describe_machine())
    print(
        f"model    InSENet({args.preset!r}) + logistic head (untrained weights: same cost), "
        f"{args.seconds:g} s pair = {frames} frames; {flops / 1e9:.2f} GFLOP per pair"
    )
    print(f"ceiling  2048^3 matrix product: fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s")
    print(f"folded vs as-trained output: max abs difference {diff:.1e}")
    if compile_s is not None:
        print(f"torch.compile: first call (compilation) {compile_s:.1f} s")
    print(
        f"{'variant':36s} {'ms/pair':>8s} {'best':>7s} {'GFLOP/s':>8s} {'of peak':>8s} "
        f"{'faults/pair':>11s}"
    )
    for name, (_, batch) in variants.items():
        med, best = res[name]["median"] / batch, res[name]["min"] / batch
        rate = variant_flops[name] / med / 1e9
        peak = peak16 if "bf16" in name else peak32
        faults = res[name]["faults"] / batch
        print(
            f"{name:36s} {1e3 * med:8.1f} {1e3 * best:7.1f} {rate:8.1f} {rate / peak:8.0%} "
            f"{faults:11.0f}"
        )


if __name__ == "__main__":
    main()
