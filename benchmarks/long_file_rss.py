"""Time and peak memory of the gammatone spectrogram of a long file: streamed vs whole-file.

Writes ``--minutes`` of stereo noise + tone (16-bit WAV at ``--rate``) to a temporary directory,
then computes its spectrogram twice, each in a fresh subprocess so that the peaks do not mix:
``streamed_spectrogram`` (blocks of ``--block-seconds``) and ``load_audio`` + ``spectrogram``
on the whole file. For each it prints the seconds, the real-time factor (processing seconds per
second of audio; lower is faster), the baseline RSS after imports and the peak RSS of the
process, and finally the largest difference between the two spectrograms.

    python benchmarks/long_file_rss.py --minutes 10 --rate 44100 --threads 1
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

from gml.features import (  # noqa: E402
    GammatoneFrontend,
    audio_info,
    load_audio,
    streamed_spectrogram,
)


def write_noise_tone(path: str, minutes: float, rate: int, seed: int = 0) -> None:
    """Stereo noise + 440/660 Hz tones, written in 10 s chunks (the writer stays small)."""
    rng = np.random.default_rng(seed)
    total = round(minutes * 60 * rate)
    chunk = 10 * rate
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as f:
        for start in range(0, total, chunk):
            t = np.arange(start, min(start + chunk, total)) / rate
            tones = 0.2 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1)
            f.write((tones + 0.05 * rng.standard_normal(tones.shape)).astype(np.float32))


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    torch.set_num_threads(args.threads)
    frontend = GammatoneFrontend()
    info = audio_info(args.path)
    baseline = peak_rss_mib()  # imports, torch, the frontend's buffers
    t0 = time.perf_counter()
    if args.child == "streamed":
        spec, _ = streamed_spectrogram(args.path, frontend, block_seconds=args.block_seconds)
    else:
        rate = frontend.settings()["sample_rate"]
        spec = frontend.spectrogram(torch.from_numpy(load_audio(args.path, rate)))
    seconds = time.perf_counter() - t0
    peak = peak_rss_mib()
    torch.save(spec, args.out)
    result = {
        "seconds": seconds,
        "audio_seconds": info.duration,
        "frames": spec.shape[-1],
        "baseline_mib": baseline,
        "peak_mib": peak,
    }
    print(json.dumps(result))


def run_child(args: argparse.Namespace, mode: str, path: str, out: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--path", path]
    cmd += ["--out", out, "--threads", str(args.threads)]
    cmd += ["--block-seconds", str(args.block_seconds)]
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the test file")
    parser.add_argument("--rate", type=int, default=48000, help="sample rate of the test file")
    parser.add_argument("--block-seconds", type=float, default=60.0, help="streamed block")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--skip-whole", action="store_true", help="only the streamed path")
    parser.add_argument("--child", choices=["streamed", "whole"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    print(describe_machine(threads=args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "long.wav")
        t0 = time.perf_counter()
        write_noise_tone(path, args.minutes, args.rate)
        size = os.path.getsize(path) / 2**20
        print(
            f"file: {args.minutes:g} min stereo {args.rate} Hz PCM_16 WAV, {size:.0f} MiB "
            f"(written in {time.perf_counter() - t0:.1f} s)"
        )
        modes = ["streamed"] if args.skip_whole else ["streamed", "whole"]
        specs = {}
        for mode in modes:
            out = os.path.join(tmp, f"{mode}.pt")
            r = run_child(args, mode, path, out)
            label = f"streamed ({args.block_seconds:g} s blocks)" if mode == "streamed" else mode
            rtf = r["seconds"] / r["audio_seconds"]
            print(
                f"{label}: {r['seconds']:.1f} s, real-time factor {rtf:.4f} "
                f"({1 / rtf:.0f}x real time), T = {r['frames']}, "
                f"baseline RSS {r['baseline_mib']:.0f} MiB, peak RSS {r['peak_mib']:.0f} MiB "
                f"(+{r['peak_mib'] - r['baseline_mib']:.0f} MiB)",
                flush=True,
            )
            specs[mode] = torch.load(out)
        if len(specs) == 2:
            diff = (specs["streamed"] - specs["whole"]).abs().max().item()
            print(f"max |streamed - whole|: {diff:.3g} dB")


if __name__ == "__main__":
    main()
