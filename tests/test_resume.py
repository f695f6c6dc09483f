"""A fit killed or interrupted anywhere resumes from its one last.ckpt to the same weights and
the same metrics.csv as an uninterrupted run."""

from __future__ import annotations

import os
import signal

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from gml.augment import ChannelSwap, MixUp
from gml.backbones import InSENet
from gml.checkpoint import ResumePoint
from gml.data.datamodule import GMLDataModule
from gml.errors import Interrupted
from gml.module import GMLModule


class _Kill(L.Callback):
    """Stands for a kill at a training step: a crash (nothing more is saved; rows already
    logged stay in metrics.csv) or a real signal to this process."""

    def __init__(self, at_step: int, signum: int | None = None):
        self.at_step, self.signum = at_step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.at_step:
            if self.signum is None:
                raise RuntimeError("killed")
            os.kill(os.getpid(), self.signum)


class _ScriptedVal(L.Callback):
    """Logs a validation figure that improves only in the first epoch."""

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            pl_module.log("val/scripted", float(trainer.current_epoch))


class _LastAtEpochStart(L.Callback):
    """Records the epoch and step of last.ckpt when each epoch starts."""

    def __init__(self, folder):
        self.folder, self.seen = folder, []

    def on_train_epoch_start(self, trainer, pl_module):
        last = self.folder / "last.ckpt"
        if last.is_file():
            ckpt = torch.load(last, weights_only=False)
            self.seen.append((trainer.current_epoch, ckpt["epoch"], ckpt["global_step"]))


def _fit(manifest, folder, ckpt_path=None, kill=None, every_n_steps=3, epochs=2, extra=()):
    L.seed_everything(0)
    # random per batch (the noise test is mono: ChannelSwap alone would change nothing)
    model = GMLModule(backbone=InSENet("tiny"), augment=[ChannelSwap(p=0.5), MixUp(0.7)])
    dm = GMLDataModule(str(manifest), batch_size=8, progress=False, frontend=model.frontend)
    callbacks = [ResumePoint(folder, every_n_steps=every_n_steps, every_minutes=None), *extra]
    if kill is not None:
        callbacks.append(kill)
    trainer = L.Trainer(
        max_epochs=epochs, logger=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", callbacks=callbacks,
        num_sanity_val_steps=0, default_root_dir=folder,
    )  # fmt: skip
    trainer.fit(model, dm, ckpt_path=ckpt_path)
    return model, trainer


def _assert_same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, msg=name)


def test_resume_mid_epoch_equals_an_uninterrupted_run(noise_manifest, tmp_path):
    whole, t_whole = _fit(noise_manifest, tmp_path / "a")
    steps_per_epoch = t_whole.num_training_batches
    kill = steps_per_epoch + 2  # the second epoch, after the save at a multiple of 3
    kill += (3 - kill % 3) % 3 + 1
    assert kill % steps_per_epoch != 0
    with pytest.raises(RuntimeError, match="killed"):
        _fit(noise_manifest, tmp_path / "b", kill=_Kill(kill))
    last = tmp_path / "b" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == kill - 1
    resumed, t_res = _fit(noise_manifest, tmp_path / "b", ckpt_path=last)
    assert t_res.global_step == t_whole.global_step
    _assert_same_weights(whole, resumed)


def test_resume_from_an_epoch_end_equals_an_uninterrupted_run(noise_manifest, tmp_path):
    """Only epoch-end checkpoints: the generators are restored there too."""
    whole, t_whole = _fit(noise_manifest, tmp_path / "a", every_n_steps=None, epochs=3)
    kill = t_whole.num_training_batches + 2  # in the second epoch: last.ckpt is the first's end
    with pytest.raises(RuntimeError, match="killed"):
        _fit(noise_manifest, tmp_path / "b", kill=_Kill(kill), every_n_steps=None, epochs=3)
    last = tmp_path / "b" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == t_whole.num_training_batches
    resumed, _ = _fit(noise_manifest, tmp_path / "b", ckpt_path=last, every_n_steps=None, epochs=3)
    _assert_same_weights(whole, resumed)


def test_without_skipping_and_generators_the_resumed_run_would_differ(
    noise_manifest, tmp_path, monkeypatch
):
    """The equality above is not automatic: Lightning alone replays the epoch differently."""
    whole, t_whole = _fit(noise_manifest, tmp_path / "a")
    kill = t_whole.num_training_batches + 2
    kill += (3 - kill % 3) % 3 + 1
    with pytest.raises(RuntimeError, match="killed"):
        _fit(noise_manifest, tmp_path / "b", kill=_Kill(kill))
    monkeypatch.setattr(ResumePoint, "on_fit_start", lambda self, trainer, pl_module: None)
    monkeypatch.setattr(ResumePoint, "on_train_start", lambda self, trainer, pl_module: None)
    resumed, _ = _fit(noise_manifest, tmp_path / "b", ckpt_path=tmp_path / "b" / "last.ckpt")
    differs = any(
        not torch.allclose(a, b)
        for a, b in zip(whole.state_dict().values(), resumed.state_dict().values())
    )
    assert differs


def test_last_ckpt_is_written_at_every_epoch_end_also_without_improvement(noise_manifest, tmp_path):
    folder = tmp_path / "run"
    best = ModelCheckpoint(folder, "best", monitor="val/scripted", mode="min")
    spy = _LastAtEpochStart(folder)
    _, trainer = _fit(
        noise_manifest, folder, every_n_steps=None, epochs=3, extra=[_ScriptedVal(), best, spy]
    )
    n = trainer.num_training_batches
    # epochs 1 and 2 did not improve val/scripted; last.ckpt was still each epoch's end
    assert spy.seen == [(1, 0, n), (2, 1, 2 * n)]
    assert torch.load(folder / "last.ckpt", weights_only=False)["global_step"] == 3 * n
    assert torch.load(folder / "best.ckpt", weights_only=False)["global_step"] == n
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_a_signal_writes_last_ckpt_after_the_batch_and_raises_interrupted(noise_manifest, tmp_path):
    folder = tmp_path / "run"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught:
        _fit(noise_manifest, folder, kill=_Kill(4, signal.SIGTERM), every_n_steps=None)
    err = caught.value
    assert (err.code, err.epoch, err.step, err.folder) == (143, 0, 4, folder)
    assert torch.load(folder / "last.ckpt", weights_only=False)["global_step"] == 4
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_a_second_signal_stops_at_once_from_the_last_checkpoint(noise_manifest, tmp_path):
    class Twice(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 4:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)

    folder = tmp_path / "run"
    with pytest.raises(Interrupted) as caught:
        _fit(noise_manifest, folder, kill=Twice(), every_n_steps=3)
    assert (caught.value.code, caught.value.step) == (130, 3)
    assert torch.load(folder / "last.ckpt", weights_only=False)["global_step"] == 3


# -- through the command line: metrics.csv and weights after two interruptions --------------


def _cli_fit(tiny_demo, root, monkeypatch, kill=None, resume=None):
    """gml fit (or gml fit --resume) of a tiny demo model; ``kill`` is added as a callback."""
    from gml.cli import main
    from gml.cli.lightning import GMLCLI

    if kill is not None:
        before_fit = GMLCLI.before_fit

        def with_kill(self):
            before_fit(self)
            self.trainer.callbacks.append(kill)

        monkeypatch.setattr(GMLCLI, "before_fit", with_kill)
    base = ["--data.progress", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.accelerator", "cpu", "--last_checkpoint.every_n_steps", "2"]  # fmt: skip
    try:
        if resume is not None:
            main(["fit", "--resume", str(resume), *base])
        else:
            main(["fit", "--config", "demo", "--data.manifest", str(tiny_demo),
                  "--model.backbone.init_args.preset", "tiny", "--trainer.max_epochs", "3",
                  "--trainer.limit_train_batches", "6", "--trainer.limit_val_batches", "2",
                  "--trainer.log_every_n_steps", "1",
                  "--trainer.logger.init_args.save_dir", str(root / "runs"), *base])  # fmt: skip
    finally:
        monkeypatch.undo()
    return None if root is None else root / "runs" / "demo" / "version_0"


@pytest.mark.slow
def test_interrupted_twice_ends_as_an_uninterrupted_run(tiny_demo, tmp_path, monkeypatch, capsys):
    whole = _cli_fit(tiny_demo, tmp_path / "a", monkeypatch)
    # a crash in epoch 1 (after epoch 0's validation rows) two steps after a mid-epoch
    # checkpoint: the row of the step between them must not come back twice
    run = tmp_path / "b" / "runs" / "demo" / "version_0"
    with pytest.raises(RuntimeError, match="killed"):
        _cli_fit(tiny_demo, tmp_path / "b", monkeypatch, kill=_Kill(10))
    lines = (run / "metrics.csv").read_text().splitlines()
    assert "val/loss" in lines[0] and lines[-1].startswith("1,8,")  # the row of step 9
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 8
    # resumed, then Ctrl-C in epoch 2: last.ckpt after that batch, one line, exit 130
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        _cli_fit(tiny_demo, None, monkeypatch, kill=_Kill(15, signal.SIGINT), resume=run)
    assert exit_.value.code == 130
    err = capsys.readouterr().err
    assert f"gml: interrupted at epoch 2 step 15; resume with: gml fit --resume {run}" in err
    _cli_fit(tiny_demo, None, monkeypatch, resume=run)
    assert (run / "metrics.csv").read_bytes() == (whole / "metrics.csv").read_bytes()
    for name in ("last.ckpt", "best.ckpt"):
        a = torch.load(whole / name, weights_only=False)
        b = torch.load(run / name, weights_only=False)
        assert a["global_step"] == b["global_step"] == 18
        for key, value in a["state_dict"].items():
            torch.testing.assert_close(value, b["state_dict"][key], msg=key)
    assert sorted(p.name for p in run.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]


def test_gml_fit_resume_continues_in_its_own_run_folder(tiny_demo, tmp_path, monkeypatch, capsys):
    from gml.cli import main

    monkeypatch.chdir(tmp_path)
    base = ["--data.progress", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.accelerator", "cpu", "--trainer.limit_train_batches", "2"]  # fmt: skip
    main(["fit", "--config", "demo", "--data.manifest", str(tiny_demo),
          "--model.backbone.init_args.preset", "tiny", "--trainer.max_epochs", "1", *base])  # fmt: skip
    run = tmp_path / "runs" / "demo" / "version_0"
    first = torch.load(run / "last.ckpt", weights_only=False)["global_step"]
    before = (run / "metrics.csv").read_bytes()
    main(["fit", "--resume", str(run), "--trainer.max_epochs", "2", *base])
    assert not (tmp_path / "runs" / "demo" / "version_1").exists()
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 2 * first
    after = (run / "metrics.csv").read_bytes()
    assert after.startswith(before)  # the earlier rows, byte for byte, then epoch 1's
    metrics = after.decode().splitlines()
    assert sum(line.startswith("0,") for line in metrics) and sum(
        line.startswith("1,") for line in metrics
    )  # both epochs' rows in the one metrics.csv
    assert f"gml: run folder {run}" in capsys.readouterr().out


def test_resume_needs_a_run_folder(tmp_path, capsys):
    from gml.cli import main

    with pytest.raises(SystemExit):
        main(["fit", "--resume", str(tmp_path)])
    assert "not a resumable run folder (no config.yaml or last.ckpt)" in capsys.readouterr().err
