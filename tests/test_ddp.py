"""Two-process DDP on CPU (gloo): training runs with per-rank sampling, and testing gives the
same metrics and reports as one process (each stimulus scored exactly once)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


def _gml(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    r = subprocess.run(
        [sys.executable, "-m", "gml", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP launcher")
def test_two_process_ddp_test_equals_one_process(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    _gml("test", "--ckpt", run / "best.ckpt", "--data.progress", "false",
         "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu", cwd=tmp_path)  # fmt: skip
    single = json.loads((run / "test-best" / "metrics.json").read_text())["test_sets"]
    single_preds = pd.read_csv(run / "test-best" / "predictions.csv")
    shutil.rmtree(run / "test-best")
    _gml("test", "--ckpt", run / "best.ckpt", "--data.progress", "false",
         "--trainer.enable_progress_bar", "false", *DDP, cwd=tmp_path)  # fmt: skip
    ddp = json.loads((run / "test-best" / "metrics.json").read_text())["test_sets"]
    assert ddp.keys() == single.keys()
    for name, res in single.items():
        for key, value in res.items():
            if value is None:
                assert ddp[name][key] is None
            else:
                assert ddp[name][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    ddp_preds = pd.read_csv(run / "test-best" / "predictions.csv")
    pd.testing.assert_frame_equal(ddp_preds, single_preds, atol=1e-4)


@pytest.mark.slow
def test_two_process_ddp_fit(noise_manifest, tmp_path):
    _gml("fit", "--config", "demo", "--data.manifest", noise_manifest,
         "--model.backbone.init_args.preset", "tiny", "--trainer.max_epochs", "1",
         "--trainer.limit_train_batches", "2", "--data.progress", "false",
         "--trainer.enable_progress_bar", "false", *DDP, cwd=tmp_path)  # fmt: skip
    run = tmp_path / "runs" / "demo" / "version_0"
    assert (run / "best.ckpt").is_file() and (run / "config.yaml").is_file()
