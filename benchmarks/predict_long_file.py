"""Peak memory and time of ``Listener.predict`` on one long stereo pair (end to end: decoding,
resampling, streamed frontend, windowed model, mixture statistics).

Writes a ``--minutes`` reference and a noisier coded version (16-bit WAV at ``--rate``) to a
temporary folder, then scores the pair in a fresh process with a listener built from
``--ckpt`` or, without one, an untrained model of ``--preset`` (weights do not change time
or memory). Prints machine, torch version, threads, device, seconds, real time factor and the
peak RSS above the interpreter's baseline after imports and model construction.

    python benchmarks/predict_long_file.py --minutes 10 --preset paper --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine, peak_rss_mib  # noqa: E402
from long_file_rss import write_noise_tone  # noqa: E402


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    from gml.backbones import InSENet
    from gml.listener import Listener, load
    from gml.module import GMLModule

    if args.ckpt:
        listener = load(args.ckpt, device=args.device, batch_size=args.batch_size)
    else:
        torch.manual_seed(0)
        module = GMLModule(backbone=InSENet(args.preset))
        listener = Listener(module, device=args.device, batch_size=args.batch_size)
    baseline = peak_rss_mib()
    t0 = time.perf_counter()
    pred = listener.predict(args.ref, args.cod, progress=False)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "baseline_mib": baseline,
                "peak_mib": peak_rss_mib(),
                "windows": pred.windows,
                "duration": pred.duration,
                "mean": pred.mean,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=48000)
    p.add_argument("--ckpt", help="a trained checkpoint (default: untrained --preset)")
    p.add_argument("--preset", default="paper", help="InSENet preset without --ckpt")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ref", help=argparse.SUPPRESS)
    p.add_argument("--cod", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        ref, cod = os.path.join(tmp, "ref.wav"), os.path.join(tmp, "cod.wav")
        write_noise_tone(ref, args.minutes, args.rate, seed=0)
        # the coded file: the same tones with more noise
        with (
            sf.SoundFile(ref) as src,
            sf.SoundFile(cod, "w", args.rate, 2, subtype="PCM_16") as dst,
        ):
            rng = np.random.default_rng(1)
            for block in src.blocks(10 * args.rate, dtype="float32"):
                dst.write(block + 0.05 * rng.standard_normal(block.shape).astype(np.float32))
        cmd = [sys.executable, __file__, "--child", "--ref", ref, "--cod", cod]
        for k in ("rate", "preset", "batch_size", "threads", "device"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
        if args.ckpt:
            cmd += ["--ckpt", args.ckpt]
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res = json.loads(r.stdout.strip().splitlines()[-1])
    print(describe_machine(args.device, threads=args.threads))
    model = args.ckpt or f"untrained InSENet({args.preset!r})"
    print(f"input     {args.minutes:g} min stereo {args.rate} Hz pair; model {model}")
    print(f"windows   {res['windows']} (batch {args.batch_size})")
    print(f"time      {res['seconds']:.1f} s ({res['duration'] / res['seconds']:.1f}x real time)")
    print(
        f"peak RSS  {res['peak_mib']:.0f} MiB (baseline after imports and model "
        f"{res['baseline_mib']:.0f} MiB: +{res['peak_mib'] - res['baseline_mib']:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
