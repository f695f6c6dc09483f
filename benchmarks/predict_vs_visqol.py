"""End-to-end scoring speed on real 48 kHz stereo pairs: ``gml.load(...).predict`` against
ViSQOL v3 in audio mode (visqol-python with numba acceleration), same pairs, same machine.

Each tool runs in its own fresh process (so neither's worker threads disturb the other),
scores the first pair once untimed (warm-up: imports, numba compilation, caches), then all
pairs, timed; the tools take turns for ``--rounds`` rounds. gml's time is everything
``predict`` does: decoding, resampling, delay estimation, gammatone features, the model and
the distribution's statistics.

    pip install "visqol-python[accel]"
    python benchmarks/predict_vs_visqol.py --threads 2 \\
        --pairs ../shared/data/visqol-conformance/pairs.csv --preset paper,paper-fast

``--preset`` takes a comma-separated list: each preset is one more tool in the turns. Besides
the wall-clock time it prints the process's CPU time (all threads; less disturbed by the other
guests of a shared VM than the wall clock, but it counts threads spinning while they wait).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine  # noqa: E402


def _pairs(path: str) -> tuple[list[str], list[str]]:
    frame = pd.read_csv(path)
    root = os.path.dirname(os.path.abspath(path))
    refs = [os.path.join(root, r) for r in frame["reference"]]
    cods = [os.path.join(root, c) for c in frame["coded"]]
    return refs, cods


def child_gml(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from gml.backbones import InSENet
    from gml.listener import Listener, load
    from gml.module import GMLModule

    if args.ckpt:
        listener = load(args.ckpt, device="cpu")
    else:
        torch.manual_seed(0)
        listener = Listener(GMLModule(backbone=InSENet(args.preset)), device="cpu")
    refs, cods = _pairs(args.pairs)
    listener.predict(refs[0], cods[0])
    t0, c0 = time.perf_counter(), time.process_time()
    frame = listener.predict(refs, cods, progress=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu": cpu,
        "audio": float(frame["duration"].sum()),
        "n": len(frame),
    }


def child_visqol(args: argparse.Namespace) -> dict:
    from visqol import VisqolApi

    api = VisqolApi()
    api.create(mode="audio")
    refs, cods = _pairs(args.pairs)
    api.measure(refs[0], cods[0])
    t0, c0 = time.perf_counter(), time.process_time()
    for r, c in zip(refs, cods):
        api.measure(r, c)
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "n": len(refs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--pairs",
        default=os.path.join("..", "shared", "data", "visqol-conformance", "pairs.csv"),
        help="CSV with reference, coded columns (paths relative to it)",
    )
    p.add_argument("--ckpt", help="a trained checkpoint (default: untrained --preset)")
    p.add_argument("--preset", default="paper", help="InSENet preset(s), comma-separated")
    p.add_argument("--threads", type=int, default=2, help="torch threads of gml")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-visqol", action="store_true", help="time gml only")
    p.add_argument("--child", choices=("gml", "visqol"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        run = child_gml if args.child == "gml" else child_visqol
        print(json.dumps(run(args)))
        return
    if not os.path.isfile(args.pairs):
        sys.exit(f"{args.pairs}: not found (give --pairs)")
    presets = [""] if args.ckpt else args.preset.split(",")
    gml_tools = ["gml" + (f" {p}" if len(presets) > 1 else "") for p in presets]
    tools = gml_tools + ([] if args.no_visqol else ["visqol"])
    preset_of = dict(zip(gml_tools, presets))
    times: dict[str, list[float]] = {t: [] for t in tools}
    cpu: dict[str, list[float]] = {t: [] for t in tools}
    audio = 0.0
    for _ in range(args.rounds):
        for tool in tools:
            child = "visqol" if tool == "visqol" else "gml"
            cmd = [sys.executable, __file__, "--child", child, "--pairs", args.pairs]
            cmd += ["--threads", str(args.threads)]
            if args.ckpt:
                cmd += ["--ckpt", args.ckpt]
            elif child == "gml":
                cmd += ["--preset", preset_of[tool]]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"{tool} failed:\n{r.stderr[-2000:]}")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            times[tool].append(res["seconds"])
            cpu[tool].append(res["cpu"])
            audio = res.get("audio", audio)
    print(describe_machine())
    model = args.ckpt or f"untrained InSENet({args.preset}) (weights do not change time)"
    print(f"pairs    {args.pairs}: {audio:.1f} s of audio; gml model {model}")
    med = {t: statistics.median(v) for t, v in times.items()}
    for tool in tools:
        rounds = ", ".join(f"{s:.2f}" for s in times[tool])
        print(
            f"{tool:14s} {med[tool]:6.2f} s (rounds: {rounds}) = {audio / med[tool]:6.1f}x real "
            f"time; CPU time {statistics.median(cpu[tool]):.2f} s (all threads)"
        )
    if "visqol" in med:
        for tool in gml_tools:
            print(f"{tool} is {med['visqol'] / med[tool]:.1f}x faster than visqol-python")


if __name__ == "__main__":
    main()
