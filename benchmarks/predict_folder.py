"""Scoring a folder of files end to end (``gml predict --reference-dir --coded-dir``, as the
library call ``Listener.predict(refs, coded)``), with worker processes reading the files.

Writes a synthetic corpus first: ``--refs`` references of ``--seconds`` seconds (48 kHz
stereo 16-bit WAV: tones and noise) with ``--coded`` coded versions each (low-passed, with
noise, delayed by 0-60 ms). Then, per configuration (worker count and precision), it makes a
listener (timed: it starts the worker processes) and scores every pair twice, timed: the first
call right after, the next with the workers kept from the first; the time is everything
``predict`` does: reading, resampling, delay estimation, the frontend, the model
and the statistics. Two stages are also timed alone, to show which one limits:

- reading: the worker processes only (decode, resample, delay estimate), no model;
- device: the frontend, the model and the statistics on waveforms already in (pinned) memory.

The audio is synthetic: these are speed figures, not quality figures.

    python benchmarks/predict_folder.py --device cuda --workers 0,4,8,14 --bf16
    python benchmarks/predict_folder.py --device cpu --refs 4 --coded 2 --workers 0,1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine  # noqa: E402

from gml.scoring.feeds import ProcessFeed  # noqa: E402


def write_corpus(root: Path, refs: int, coded: int, seconds: float, seed: int = 0):
    """``refs`` references with ``coded`` coded versions each; returns the path lists."""
    marker = root / f"corpus-{refs}x{coded}-{seconds:g}s-seed{seed}.done"
    rng = np.random.default_rng(seed)
    fs = 48000
    n = int(seconds * fs)
    if marker.exists():  # written before, with the same parameters
        ref_paths = [str(root / "reference" / f"item{r:03d}.wav") for r in range(refs)]
        return (
            [p for p in ref_paths for _ in range(coded)],
            [
                str(root / "coded" / f"item{r:03d}_v{c}.wav")
                for r in range(refs)
                for c in range(coded)
            ],
        )
    t = np.arange(n) / fs
    ref_paths, cod_paths = [], []
    (root / "reference").mkdir(parents=True, exist_ok=True)
    (root / "coded").mkdir(parents=True, exist_ok=True)
    for r in range(refs):
        f0 = rng.uniform(100, 800)
        tones = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
        env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t)
        mono = 0.2 * tones * env + 0.05 * rng.standard_normal(n)
        ref = np.stack([mono, np.roll(mono, 37) + 0.02 * rng.standard_normal(n)], axis=1)
        path = root / "reference" / f"item{r:03d}.wav"
        sf.write(path, (0.9 * ref / np.abs(ref).max()).astype(np.float32), fs, subtype="PCM_16")
        for c in range(coded):
            width = 2 + 6 * c  # moving-average low-pass: stronger for later versions
            kernel = np.ones(width) / width
            cod = np.stack([np.convolve(ref[:, ch], kernel, mode="same") for ch in (0, 1)], 1)
            cod += (0.002 * (c + 1)) * rng.standard_normal(cod.shape)
            delay = int(rng.integers(0, int(0.06 * fs)))
            cod = np.concatenate([np.zeros((delay, 2)), cod])[:n]
            name = root / "coded" / f"item{r:03d}_v{c}.wav"
            sf.write(name, (0.9 * cod / np.abs(cod).max()).astype(np.float32), fs, subtype="PCM_16")
            ref_paths.append(str(path))
            cod_paths.append(str(name))
    marker.touch()
    return ref_paths, cod_paths


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cuda or cpu (default: CUDA when available)")
    p.add_argument("--ckpt", help="a trained checkpoint (default: a paper-size InSE-Net, random)")
    p.add_argument("--preset", default="paper", help="InSENet preset without --ckpt")
    p.add_argument("--refs", type=int, default=40, help="references in the corpus")
    p.add_argument("--coded", type=int, default=8, help="coded versions per reference")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workers", default="0,8", help="worker counts to time, comma-separated")
    p.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    p.add_argument(
        "--batch-size",
        default=None,
        help="model batch sizes to time (comma-separated; "
        "the first for every configuration, the others with the most workers)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    p.add_argument("--dir", help="corpus folder (default: a temporary one)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--profile", help="write a torch profiler table of one call to this file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from gml.backbones import InSENet
    from gml.data.pair_audio import PairAudio, PairFeed, collate_pairs, length_batches
    from gml.listener import Listener, load
    from gml.module import GMLModule

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    root = Path(args.dir or tempfile.mkdtemp(prefix="gml-folder-"))
    t0 = time.perf_counter()
    refs, cods = write_corpus(root, args.refs, args.coded, args.seconds)
    print(
        f"corpus   {len(refs)} pairs of {args.seconds:g} s in {root} "
        f"(written in {time.perf_counter() - t0:.1f} s)"
    )
    audio = len(refs) * args.seconds

    sizes = [int(b) for b in args.batch_size.split(",")] if args.batch_size else [None]

    def make(workers: int, bf16: bool, batch_size: int | None = sizes[0]) -> Listener:
        kw = dict(workers=workers, bf16=bf16, batch_size=batch_size)
        if args.ckpt:
            return load(args.ckpt, device=device, **kw)
        torch.manual_seed(0)
        return Listener(GMLModule(backbone=InSENet(args.preset)), device=device, **kw)

    print(describe_machine(str(device), torch.get_num_threads()))
    print(f"cpu cores {os.cpu_count()}; model {args.ckpt or 'InSENet ' + args.preset}")
    figures: dict[str, dict] = {}
    precisions = [False, True] if args.bf16 else [False]
    frames = {}
    worker_counts = [int(w) for w in args.workers.split(",")]
    most = max(worker_counts)
    configs = [
        (w, bf16, True, sizes[0]) for w in worker_counts for bf16 in (precisions if w else [False])
    ]
    configs += [(most, bf16, True, b) for b in sizes[1:] for bf16 in precisions]
    if device.type == "cuda" and most > 0:  # the delay searched by the workers
        configs.append((most, False, False, sizes[0]))
    # CUDA, cuDNN and the page cache warmed once, by a listener without workers
    make(0, False).predict(refs[: min(len(refs), 16)], cods[: min(len(cods), 16)], progress=False)
    for workers, bf16, delay_on_device, batch_size in configs:
        _sync(device)
        t = time.perf_counter()
        lis = make(workers, bf16, batch_size)  # starts the worker processes
        made = time.perf_counter() - t
        lis.delay_on_device = delay_on_device and lis.delay_on_device
        key = f"workers={workers} {'bf16' if bf16 else 'fp32'}"
        if batch_size != sizes[0]:
            key += f" batch {batch_size}"
        if workers and not lis.delay_on_device:
            key += " delay in workers"
        print(f"listener    {key:32s} made in {made:.2f} s (workers started)", flush=True)
        figures[f"{key} made"] = {"seconds": made}
        # first call: right after the listener is made; next: the workers kept from the first
        for call in ("first call", "next call"):
            _sync(device)
            t = time.perf_counter()
            frame = lis.predict(refs, cods, progress=False)
            _sync(device)
            sec = time.perf_counter() - t
            figures[f"{key} {call}"] = {"seconds": sec, "x_real_time": audio / sec}
            print(
                f"end to end  {key:32s} {call:10s} {sec:7.2f} s  {audio / sec:8.0f}x real time"
                f"  ({1000 * sec / len(refs):.2f} ms a pair)",
                flush=True,
            )
        frames[key] = frame
        if args.profile and workers == most:
            from torch.profiler import ProfilerActivity, profile

            activities = [ProfilerActivity.CPU] + (
                [ProfilerActivity.CUDA] if device.type == "cuda" else []
            )
            with profile(activities=activities) as prof:
                lis.predict(refs, cods, progress=False)
                _sync(device)
            averages = prof.key_averages()
            tables = [
                f"sorted by {key}\n" + averages.table(sort_by=key, row_limit=40)
                for key in ("self_cpu_time_total", "cpu_time_total")
                + (("self_device_time_total",) if device.type == "cuda" else ())
            ]
            Path(args.profile).write_text("\n\n".join(tables))
            print(f"profile of the next call ({key}) in {args.profile}")
            args.profile = None
        lis.close()
        del lis
    base = frames.get(f"workers={worker_counts[0]} fp32")
    for key, frame in frames.items():
        if base is not None and frame is not base:
            d = (frame["mean"] - base["mean"]).abs().max()
            dd = (frame["delay_ms"] - base["delay_ms"]).abs().max()
            print(
                f"|mean - first fp32|  {key:32s} max {d:.4f} points (random model); "
                f"largest delay difference {dd:.3f} ms"
            )

    # stage 1: the workers alone (with the delay searched there, or left to the device),
    # in the listener's batches; first pass: the workers start; second: they are kept
    lis = make(0, False)
    fs = lis.frontend.settings()["sample_rate"]
    on_device = [False, True] if device.type == "cuda" else [False]
    for workers in sorted(set(worker_counts) - {0}):
        lis.workers = workers
        sizes = lis._reading_batches(len(refs))
        variants = [(d, False) for d in on_device] + [(True, True)] * (device.type == "cuda")
        for delay_on_device, pin in variants:  # pin: page-locked as for the GPU copy
            feed = PairFeed(
                fs, lis.frontend.win_length / fs, lis.align, delay_on_device, workers, pin
            )
            what = "decode, resample" + ("" if delay_on_device else ", delay")
            what += ", pinned" if pin else ""
            for call in ("first pass", "next pass"):
                t = time.perf_counter()
                first, n = None, 0
                for batch in feed.batches(refs, cods, *sizes):
                    first = first or time.perf_counter() - t
                    n += len(batch["pairs"])
                sec = time.perf_counter() - t
                figures[f"reading workers={workers} {what} {call}"] = {
                    "seconds": sec,
                    "x_real_time": audio / sec,
                    "first_batch_seconds": first,
                }
                print(
                    f"reading     workers={workers:<3d} {call:10s} {sec:7.2f} s  "
                    f"{audio / sec:8.0f}x real time ({n} pairs in batches of {sizes[1]}; "
                    f"first after {first:.2f} s; {what})",
                    flush=True,
                )
            feed.close()

    # stage 2: the device alone, on waveforms already in (pinned) memory
    keep = min(len(refs), 128)
    dataset = PairAudio(refs, cods, fs, lis.frontend.win_length / fs, lis.align, on_device[-1])
    items = [dataset[i] for i in range(keep)]
    batches = length_batches(refs[:keep], cods[:keep], 320 * 48000 * 4, 64)
    packed = [collate_pairs([items[i] for i in batch]) for batch in batches]
    if device.type == "cuda":
        for batch in packed:
            for kind in ("pcm16", "float"):
                batch[kind] = batch[kind].pin_memory()
    for bf16 in precisions:
        lis = make(0, bf16)
        for _ in (1, 2):  # warm-up, then timed
            _sync(device)
            t = time.perf_counter()
            feed = ProcessFeed(_InMemory(packed), lis.preparer().batch, refs, cods, lis.batch_size)
            lis._score_chunks(feed, keep, 20, False, False)
            _sync(device)
            sec = time.perf_counter() - t
        key = f"device {'bf16' if bf16 else 'fp32'}"
        figures[key] = {"seconds": sec, "x_real_time": keep * args.seconds / sec}
        print(
            f"device only {'bf16' if bf16 else 'fp32':18s} {sec:7.2f} s  "
            f"{keep * args.seconds / sec:8.0f}x real time ({keep} pairs from memory: "
            f"{'delay, ' if on_device[-1] else ''}frontend, model, statistics; "
            f"batch {lis.batch_size})",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


class _InMemory:
    """A reader whose batches are already in memory (for :class:`ProcessFeed`)."""

    num_workers = 1

    def __init__(self, batches: list[dict]):
        self._batches = batches

    def batches(self, *args: object) -> Iterator[dict]:
        return iter(self._batches)


if __name__ == "__main__":
    main()
