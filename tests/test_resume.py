"""A fit killed mid-epoch resumes from its last.ckpt to the same result as an uninterrupted run."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from gml.augment import ChannelSwap
from gml.backbones import InSENet
from gml.checkpoint import ResumePoint
from gml.data.datamodule import GMLDataModule
from gml.module import GMLModule


class _Kill(L.Callback):
    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.at_step:
            raise RuntimeError("killed")


def _fit(manifest, folder, ckpt_path=None, kill_at=None):
    L.seed_everything(0)
    model = GMLModule(backbone=InSENet("tiny"), augment=[ChannelSwap(p=0.5)])  # random per batch
    dm = GMLDataModule(str(manifest), batch_size=8, progress=False, frontend=model.frontend)
    callbacks = [ResumePoint(folder, every_n_steps=3, every_minutes=None)]
    if kill_at is not None:
        callbacks.append(_Kill(kill_at))
    trainer = L.Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", callbacks=callbacks,
        num_sanity_val_steps=0, default_root_dir=folder,
    )  # fmt: skip
    trainer.fit(model, dm, ckpt_path=ckpt_path)
    return model, trainer


def test_resume_mid_epoch_equals_an_uninterrupted_run(noise_manifest, tmp_path):
    whole, t_whole = _fit(noise_manifest, tmp_path / "a")
    steps_per_epoch = t_whole.num_training_batches
    kill = steps_per_epoch + 2  # the second epoch, after the save at a multiple of 3
    kill += (3 - kill % 3) % 3 + 1
    assert kill % steps_per_epoch != 0
    with pytest.raises(RuntimeError, match="killed"):
        _fit(noise_manifest, tmp_path / "b", kill_at=kill)
    last = tmp_path / "b" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == kill - 1
    resumed, t_res = _fit(noise_manifest, tmp_path / "b", ckpt_path=last)
    assert t_res.global_step == t_whole.global_step
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_without_skipping_and_generators_the_resumed_run_would_differ(
    noise_manifest, tmp_path, monkeypatch
):
    """The equality above is not automatic: Lightning alone replays the epoch differently."""
    whole, t_whole = _fit(noise_manifest, tmp_path / "a")
    kill = t_whole.num_training_batches + 2
    kill += (3 - kill % 3) % 3 + 1
    with pytest.raises(RuntimeError, match="killed"):
        _fit(noise_manifest, tmp_path / "b", kill_at=kill)
    monkeypatch.setattr(ResumePoint, "on_fit_start", lambda self, trainer, pl_module: None)
    resumed, _ = _fit(noise_manifest, tmp_path / "b", ckpt_path=tmp_path / "b" / "last.ckpt")
    differs = any(
        not torch.allclose(a, b)
        for a, b in zip(whole.state_dict().values(), resumed.state_dict().values())
    )
    assert differs


def test_gml_fit_resume_continues_in_its_own_run_folder(tiny_demo, tmp_path, monkeypatch, capsys):
    from gml.cli import main

    monkeypatch.chdir(tmp_path)
    base = ["--data.progress", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.accelerator", "cpu", "--trainer.limit_train_batches", "2"]  # fmt: skip
    main(["fit", "--config", "demo", "--data.manifest", str(tiny_demo),
          "--model.backbone.init_args.preset", "tiny", "--trainer.max_epochs", "1", *base])  # fmt: skip
    run = tmp_path / "runs" / "demo" / "version_0"
    first = torch.load(run / "last.ckpt", weights_only=False)["global_step"]
    main(["fit", "--resume", str(run), "--trainer.max_epochs", "2", *base])
    assert not (tmp_path / "runs" / "demo" / "version_1").exists()
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 2 * first
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert sum(line.startswith("0,") for line in metrics) and sum(
        line.startswith("1,") for line in metrics
    )  # both epochs' rows in the one metrics.csv
    assert f"gml: run folder {run}" in capsys.readouterr().out


def test_resume_needs_a_run_folder(tmp_path, capsys):
    from gml.cli import main

    with pytest.raises(SystemExit):
        main(["fit", "--resume", str(tmp_path)])
    assert "not a resumable run folder (no config.yaml or last.ckpt)" in capsys.readouterr().err
