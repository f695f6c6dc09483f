"""Start-up: seconds from starting a fresh Python process to the score of one 10 s pair,
interpreter start included (``import gml``, ``gml.load``, one ``predict``), as a user who
scores one pair from a script meets it; and the same through ``gml predict``.

Two figures for the script: *to result*, when the score is printed (read by this process
from the child's output as it comes), and *to exit*, when the process has ended (Python's
shutdown after a torch import takes a few tenths of a second more). ``gml predict`` is timed
to its exit.

Without ``--ckpt`` an untrained checkpoint of ``--preset`` is written to a temporary folder
(weights do not change the time). Each round runs in its own process; prints the machine,
the torch threads of the scoring process, the median of ``--rounds`` and each phase.

    python benchmarks/startup.py --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine  # noqa: E402

# runs in the fresh process: phases measured from the interpreter's own start
_CHILD = """
import json, sys, time
t_import = time.perf_counter()
import gml
import torch
torch.set_num_threads(int(sys.argv[4]))
t_load = time.perf_counter()
lis = gml.load(sys.argv[1], device="cpu")
t_predict = time.perf_counter()
pred = lis.predict(sys.argv[2], sys.argv[3])
t_end = time.perf_counter()
print(json.dumps({
    "import": t_load - t_import, "load": t_predict - t_load, "predict": t_end - t_predict,
    "threads": torch.get_num_threads(), "mean": pred.mean,
    "lightning": any(m.split(".")[0] == "lightning" for m in sys.modules),
}), flush=True)
"""


def write_checkpoint(path: str, preset: str) -> None:
    """An untrained gml checkpoint of InSENet(``preset``): weights and the configuration a
    ``gml fit`` checkpoint carries (enough for ``gml.load``)."""
    import torch
    import yaml

    from gml.backbones import InSENet
    from gml.checkpoint_file import CONFIG_KEY
    from gml.scoring.model import ScoringModel

    torch.manual_seed(0)
    model = ScoringModel(backbone=InSENet(preset))
    config = {
        "model": {
            "backbone": {"class_path": "gml.backbones.InSENet", "init_args": {"preset": preset}}
        },
        "data": {"align": True},
    }
    torch.save({"state_dict": model.state_dict(), CONFIG_KEY: yaml.safe_dump(config)}, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", help="a trained checkpoint (default: untrained --preset)")
    p.add_argument("--preset", default="paper", help="InSENet preset of the untrained model")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the scoring process")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the pair")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-cli", action="store_true", help="leave out the `gml predict` timing")
    args = p.parse_args()
    from long_file_rss import write_noise_tone

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        ref, cod = os.path.join(tmp, "ref.wav"), os.path.join(tmp, "cod.wav")
        write_noise_tone(ref, args.seconds / 60, 48000, seed=0)
        write_noise_tone(cod, args.seconds / 60, 48000, seed=1)
        ckpt = args.ckpt or os.path.join(tmp, "untrained.ckpt")
        if not args.ckpt:
            write_checkpoint(ckpt, args.preset)
        total, ended, phases, cli = [], [], [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, ckpt, ref, cod, str(args.threads)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            line = child.stdout.readline()  # the result, as soon as it is printed
            total.append(time.perf_counter() - t0)
            _, err = child.communicate()
            ended.append(time.perf_counter() - t0)
            if child.returncode != 0:
                sys.exit(f"scoring failed:\n{err[-2000:]}")
            phases.append(json.loads(line))
            if not args.no_cli:
                cmd = [sys.executable, "-c", "from gml.cli import main; main()", "predict"]
                cmd += ["--ckpt", ckpt]
                cmd += ["--reference", ref, "--coded", cod, "--no-progress"]
                t0 = time.perf_counter()
                r = subprocess.run(cmd, capture_output=True, text=True, env=env)
                cli.append(time.perf_counter() - t0)
                if r.returncode != 0:
                    sys.exit(f"gml predict failed:\n{r.stderr[-2000:]}")
    print(describe_machine())
    model = args.ckpt or f"untrained InSENet({args.preset!r})"
    print(f"pair     {args.seconds:g} s stereo 48 kHz; model {model}")
    print(f"threads  {phases[0]['threads']} (torch, scoring process)")
    print(f"lightning imported: {any(p['lightning'] for p in phases)}")
    rounds = ", ".join(f"{s:.2f}" for s in total)
    print(f"python   start to result {statistics.median(total):.2f} s (rounds: {rounds})")
    rounds = ", ".join(f"{s:.2f}" for s in ended)
    print(f"         start to exit   {statistics.median(ended):.2f} s (rounds: {rounds})")
    for phase in ("import", "load", "predict"):
        print(f"         {phase:8s} {statistics.median(p[phase] for p in phases):.2f} s")
    if cli:
        rounds = ", ".join(f"{s:.2f}" for s in cli)
        print(f"gml predict start to exit {statistics.median(cli):.2f} s (rounds: {rounds})")


if __name__ == "__main__":
    main()
