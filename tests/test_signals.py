"""Real signals to a real ``gml fit``: SIGTERM and SIGINT write last.ckpt, print one line, exit
143 / 130, and ``gml fit --resume`` continues; Lightning's tips and notes stay hidden."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

LIMIT_S = 600  # a guard against a hung process, not a measurement


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "gml", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _rows(run: Path) -> list[dict]:
    try:
        with open(run / "metrics.csv", newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _signal_after_step(proc: subprocess.Popen, after_step: int, signum: int) -> tuple[Path, str]:
    """Wait for the run folder line and a logged training step beyond ``after_step``, send
    ``signum``, and return the run folder and everything the process printed."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("gml: run folder "):
            run = Path(line.split("gml: run folder ", 1)[1].strip())
            break
    else:
        raise AssertionError("no run folder line:\n" + "".join(lines))
    deadline = time.monotonic() + LIMIT_S
    while not any(r["train/loss"] and int(r["step"]) > after_step for r in _rows(run)):
        assert proc.poll() is None, "".join(lines) + proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=LIMIT_S)
    return run, "".join(lines) + out


def _interrupted_at(out: str, run: Path) -> tuple[int, int]:
    found = re.findall(
        rf"^gml: interrupted at epoch (\d+) step (\d+); resume with: gml fit --resume {re.escape(str(run))}$",
        out,
        re.M,
    )
    assert len(found) == 1, out
    return int(found[0][0]), int(found[0][1])


@pytest.mark.slow
def test_sigterm_then_sigint_then_resume_to_the_end(tiny_demo, tmp_path):
    fit = ["fit", "--config", "demo", "--data.manifest", str(tiny_demo),
           "--model.backbone.init_args.preset", "tiny", "--trainer.max_epochs", "1000",
           "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
           "--data.progress", "false", "--trainer.log_every_n_steps", "1",
           "--trainer.limit_val_batches", "1"]  # fmt: skip
    proc = _start(fit, tmp_path)
    run, out = _signal_after_step(proc, -1, signal.SIGTERM)
    assert proc.returncode == 143, out
    epoch, step = _interrupted_at(out, run)
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == step >= 1
    assert {p.name for p in run.glob("*.ckpt")} <= {"best.ckpt", "last.ckpt"}

    proc = _start(["fit", "--resume", str(run)], tmp_path)
    _, out = _signal_after_step(proc, step, signal.SIGINT)
    assert proc.returncode == 130, out
    epoch2, step2 = _interrupted_at(out, run)
    assert (
        step2 > step and torch.load(run / "last.ckpt", weights_only=False)["global_step"] == step2
    )

    proc = _start(["fit", "--resume", str(run), "--trainer.max_epochs", str(epoch2 + 1)], tmp_path)
    out, _ = proc.communicate(timeout=LIMIT_S)
    assert proc.returncode == 0, out
    assert "gml: finished" in out
    for noise in ("litlogger", "weights_only", "GPU available", "Traceback", "Received SIG"):
        assert noise not in out, out
    rows = _rows(run)
    train = [int(r["step"]) for r in rows if r["train/loss"]]
    assert train == list(range(len(train)))  # every step once: none lost, none repeated
    assert [int(r["epoch"]) for r in rows if r["val/loss"]] == list(range(epoch2 + 1))


def test_a_signal_before_training_stops_at_once_and_says_there_is_nothing_to_resume(
    noise_manifest, tmp_path, monkeypatch, capsys
):
    import pytest

    from gml.cli import main
    from gml.data.datamodule import GMLDataModule

    def interrupted_setup(self, stage=None):  # Ctrl-C while the features are computed
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(GMLDataModule, "setup", interrupted_setup)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", "demo", "--data.manifest", str(noise_manifest),
              "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])  # fmt: skip
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert "gml: interrupted before the first checkpoint; nothing to resume" in err
    assert signal.getsignal(signal.SIGINT) == before  # the command's handlers are gone
