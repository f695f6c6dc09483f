"""Atomic outputs: a failed or killed writer never leaves a partial or stale file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from gml.atomic import atomic_write, atomic_write_text


def test_a_failing_writer_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old")

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["metrics.json"]


_KILLED = """
import sys, time
from gml.atomic import atomic_write
def slow(f):
    f.write(b"partial")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], slow)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_writer_leaves_the_old_file_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "predictions.csv"
    atomic_write_text(target, "old")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert target.read_text() == "old" and len(leftovers) == 1
    time.sleep(0.05)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["predictions.csv"]
