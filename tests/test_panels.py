"""Training on whole panels (data.train_on: panels): the same likelihood as per-rating
triplets, the network run once per stimulus, and mixing augmentations that pair listeners."""

from __future__ import annotations

import pytest
import torch

from gml.augment import CutMix, MixUp
from gml.augment.mix import _mix_target
from gml.backbones import InSENet
from gml.data.datamodule import GMLDataModule
from gml.module import GMLModule

from .conftest import fit_tiny


def _dm(manifest, model, train_on):
    dm = GMLDataModule(
        str(manifest), batch_size=4, progress=False, frontend=model.frontend, train_on=train_on
    )
    dm.setup("fit")
    return dm


def test_panel_batches_hold_whole_stimuli(noise_manifest):
    model = GMLModule(backbone=InSENet("tiny"))
    ratings, panels = _dm(noise_manifest, model, "ratings"), _dm(noise_manifest, model, "panels")
    n_train = int((panels.partition == "train").sum())
    assert len(panels.train_dataloader().dataset) == n_train
    assert len(ratings.train_dataloader().dataset) == sum(
        len(panels._stimuli.scores[i]) for i in panels._index("train")
    )
    batch = next(iter(panels.train_dataloader()))
    assert batch["target"].shape == batch["mask"].shape == (4, batch["mask"].shape[1])
    for k, i in enumerate(batch["index"].tolist()):
        real = batch["target"][k][batch["mask"][k]]
        assert sorted(real.tolist()) == sorted(panels._stimuli.scores[i].tolist())
    with pytest.raises(Exception, match="train_on"):
        GMLDataModule(str(noise_manifest), train_on="listeners")


def test_panel_loss_equals_the_loss_of_every_rating_as_a_triplet(noise_manifest):
    torch.manual_seed(0)
    model = GMLModule(backbone=InSENet("tiny")).eval()
    dm = _dm(noise_manifest, model, "panels")
    batch = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        dist = model(batch["features"])
        loss, n = model.panel_loss(dist, batch["target"], batch["mask"])
        # the same ratings as triplets: each stimulus's features once per listener
        rows, scores = batch["mask"].nonzero(as_tuple=True)
        triplet = model.head.loss(model(batch["features"][rows]), batch["target"][rows, scores])
    assert n == int(batch["mask"].sum())
    torch.testing.assert_close(loss, triplet)
    # stimuli with more listeners weigh more: not the mean of per-stimulus means
    per_stimulus = model.head.nll(dist, batch["target"], batch["mask"]).mean()
    if batch["mask"].sum(1).unique().numel() > 1:
        assert not torch.allclose(loss, per_stimulus)


def test_mixing_panels_pairs_each_listener_with_a_real_score_of_the_partner():
    torch.manual_seed(0)
    y = torch.tensor([[10.0, 20.0, 30.0], [70.0, 80.0, 0.0], [50.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    perm = torch.tensor([1, 2, 0])
    lam = torch.zeros(3)  # all partner
    for _ in range(20):
        mixed = _mix_target(y, lam, perm, mask)
        for a in range(3):
            partner = set(y[perm[a]][mask[perm[a]]].tolist())
            assert set(mixed[a].tolist()) <= partner  # padding (0) is never drawn
    half = _mix_target(y, torch.full((3,), 0.5), perm, mask)
    assert half[2, 0] in (0.5 * 50 + 0.5 * 10, 0.5 * 50 + 0.5 * 20, 0.5 * 50 + 0.5 * 30)
    # through the augmentations, on a panel batch
    x = torch.randn(3, 4, 2, 8, 10)
    for aug in (MixUp(alpha=0.7), CutMix(alpha=0.7)):
        out = aug({"features": x, "target": y, "mask": mask})
        assert out["target"].shape == y.shape and torch.isfinite(out["target"]).all()


def test_fit_on_panels_through_the_cli(noise_manifest, tmp_path):
    run = fit_tiny(
        noise_manifest, tmp_path, "--data.train_on", "panels",
        "--model.augment+=gml.augment.CutMix", "--trainer.limit_train_batches", "2",
        "--data.batch_size", "2",
    )  # fmt: skip
    assert torch.load(run / "last.ckpt", weights_only=False)["global_step"] == 2
    assert "train_on: panels" in (run / "config.yaml").read_text()
