"""Batch augmentations: L/R swap, MixUp, CutMix (boxes, λ, labels), training-only application
inside GMLModule, and composition from a YAML list."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from gml.augment import BatchAugment, ChannelSwap, CutMix, MixUp

torch.set_num_threads(1)

B, F, T = 6, 32, 10


def _batch(b: int = B, f: int = F, t: int = T, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "features": torch.rand(b, 4, 2, f, t, generator=g),
        "target": torch.rand(b, generator=g) * 100,
        "index": torch.arange(b),
    }


def _id_batch(b: int = B, f: int = F, t: int = T) -> dict:
    """Example ``i``, view ``v``, ref/coded ``c`` is filled with ``100·i + 10·v + c + 1``."""
    ids = 100 * torch.arange(b).view(b, 1, 1, 1, 1)
    views = 10 * torch.arange(4).view(1, 4, 1, 1, 1)
    rc = torch.arange(2).view(1, 1, 2, 1, 1)
    feats = (ids + views + rc + 1).float().expand(b, 4, 2, f, t).contiguous()
    return {"features": feats, "target": 10.0 * torch.arange(b) + 3.0, "index": torch.arange(b)}


def _clone(batch: dict) -> dict:
    return {k: v.clone() for k, v in batch.items()}


def _assert_unchanged(batch: dict, ref: dict) -> None:
    assert batch.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(batch[k], ref[k], rtol=0, atol=0)


# -- ChannelSwap ------------------------------------------------------------------------------


def test_channel_swap_p1_swaps_left_right_only():
    batch = _batch()
    orig = _clone(batch)
    out = ChannelSwap(p=1.0)(batch)
    x, y = out["features"], orig["features"]
    assert torch.equal(x[:, 0], y[:, 1]) and torch.equal(x[:, 1], y[:, 0])  # ref and coded
    assert torch.equal(x[:, 2:], y[:, 2:])  # M and S untouched
    assert torch.equal(out["target"], orig["target"])
    assert torch.equal(out["index"], orig["index"])
    _assert_unchanged(batch, orig)  # no in-place change
    assert out is not batch


def test_channel_swap_p0_is_identity_and_p_is_per_example():
    batch = _batch()
    _assert_unchanged(ChannelSwap(p=0.0)(batch), batch)
    torch.manual_seed(0)
    big = _batch(b=400, f=2, t=3)
    out = ChannelSwap(p=0.5)(big)
    swapped = (out["features"][:, 0] != big["features"][:, 0]).flatten(1).any(1)
    same = torch.equal(out["features"][~swapped], big["features"][~swapped])
    assert same and 0.35 < swapped.float().mean() < 0.65
    with pytest.raises(ValueError):
        ChannelSwap(p=1.5)


# -- MixUp ------------------------------------------------------------------------------------


def test_mixup_blends_features_and_target():
    torch.manual_seed(1)
    batch = _batch()
    orig = _clone(batch)
    aug = MixUp(alpha=0.7)
    out = aug(batch)
    lam, perm = aug.last_lam, aug.last_perm
    assert lam.shape == (B,) and sorted(perm.tolist()) == list(range(B))
    assert ((lam >= 0) & (lam <= 1)).all()
    x = orig["features"]
    lx = lam.view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(out["features"], lx * x + (1 - lx) * x[perm])
    y = orig["target"]
    torch.testing.assert_close(out["target"], lam * y + (1 - lam) * y[perm])
    assert torch.equal(out["index"], orig["index"])
    _assert_unchanged(batch, orig)


def test_mixup_p0_leaves_batch_and_is_seedable():
    batch = _batch()
    out = MixUp(p=0.0)(batch)
    _assert_unchanged(out, batch)
    a, b = MixUp(), MixUp()
    torch.manual_seed(5)
    ya = a(batch)["target"]
    torch.manual_seed(5)
    yb = b(batch)["target"]
    assert torch.equal(ya, yb) and torch.equal(a.last_perm, b.last_perm)


# -- CutMix -----------------------------------------------------------------------------------


def test_cutmix_pastes_partner_box_identically():
    torch.manual_seed(3)
    batch = _id_batch()
    orig = _clone(batch)
    aug = CutMix(alpha=0.7)
    out = aug(batch)
    _assert_unchanged(batch, orig)
    lam, perm, boxes = aug.last_lam, aug.last_perm, aug.last_boxes
    assert boxes.shape == (B, 4) and boxes.dtype == torch.long
    x, z = orig["features"], out["features"]
    n_pasted = 0
    for i in range(B):
        f0, f1, t0, t1 = boxes[i].tolist()
        assert 0 <= f0 <= f1 <= F and 0 <= t0 <= t1 <= T
        inside = torch.zeros(F, T, dtype=torch.bool)
        inside[f0:f1, t0:t1] = True
        j = int(perm[i])
        # Inside the box: the partner's values, per view and ref/coded; outside: the example's.
        assert torch.equal(z[i][..., inside], x[j][..., inside])
        assert torch.equal(z[i][..., ~inside], x[i][..., ~inside])
        # The pasted region (where values differ from the example's own) is one and the same
        # box for all four views and both reference and coded.
        if j != i:
            changed = z[i] != x[i]  # [4, 2, F, T]
            assert torch.equal(changed, inside.expand_as(changed))
            kept = 1 - changed[0, 0].float().mean()
            assert lam[i].item() == pytest.approx(kept.item(), abs=1e-6)
            n_pasted += int(inside.any())
        assert lam[i].item() == pytest.approx(1 - (f1 - f0) * (t1 - t0) / (F * T), abs=1e-6)
    assert n_pasted > 0  # the seed gives at least one real paste
    y = orig["target"]
    torch.testing.assert_close(out["target"], lam * y + (1 - lam) * y[perm])
    assert torch.equal(out["index"], orig["index"])


def test_cutmix_lambda_distribution():
    torch.manual_seed(7)
    aug = CutMix(alpha=0.7)
    batch = _batch(b=4096, f=F, t=64)
    drawn, corrected = [], []
    for _ in range(3):
        aug(batch)
        drawn.append(aug.last_lam_drawn)
        corrected.append(aug.last_lam)
    drawn, corrected = torch.cat(drawn), torch.cat(corrected)
    # The Beta(0.7, 0.7) draws: mean 1/2, U-shaped (P(λ<0.1) = P(λ>0.9) ≈ 0.19).
    assert drawn.mean().item() == pytest.approx(0.5, abs=0.02)
    assert (drawn < 0.1).float().mean() > 0.1 and (drawn > 0.9).float().mean() > 0.1
    assert drawn.std().item() == pytest.approx((1 / (4 * 2.4)) ** 0.5, abs=0.02)
    # Correction to the pasted area: border clipping and rounding only shrink the box, so
    # λ never decreases, and is biased upwards (mean ≈ 0.69 for α = 0.7).
    assert (corrected >= drawn - 1e-6).all() and (corrected <= 1).all()
    assert 0.6 < corrected.mean().item() < 0.78
    assert (corrected > 0.9).float().mean() > 0.1 and (corrected < 0.5).float().mean() > 0.1


def test_cutmix_p0_and_validation():
    batch = _id_batch()
    aug = CutMix(p=0.0)
    _assert_unchanged(aug(batch), batch)
    assert torch.equal(aug.last_lam, torch.ones(B))
    assert (aug.last_boxes[:, 0] == aug.last_boxes[:, 1]).all()
    with pytest.raises(ValueError):
        CutMix(alpha=0.0)
    with pytest.raises(ValueError):
        MixUp(p=-0.1)


# -- only training batches are augmented ------------------------------------------------------


class _Spy(BatchAugment):
    """Records calls and the trainer stage it was called in."""

    def __init__(self, inner: BatchAugment):
        self.inner = inner
        self.module = None
        self.stages: list[str] = []

    def __call__(self, batch):
        self.stages.append(self.module.trainer.state.stage.value)
        assert self.module.trainer.training
        assert "scores" not in batch  # a training batch, never a val/test one
        return self.inner(batch)


def _eval_batch(b: int, seed: int) -> dict:
    batch = _batch(b=b, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    batch["scores"] = torch.rand(b, 3, generator=g) * 100
    batch["mask"] = torch.ones(b, 3, dtype=torch.bool)
    batch["mask"][0, 2] = False
    batch["target"] = batch["scores"][:, :2].mean(1)
    # whole-stimulus batches carry their subjective statistics (computed by the data module)
    from gml.stats import stimulus_stats

    stats = stimulus_stats(batch["scores"], batch["mask"])
    batch["subj_mean"], batch["subj_ci"], batch["n_listeners"] = stats.mean, stats.ci95, stats.n
    return batch


class _TinyData(L.LightningDataModule):
    def __init__(self):
        super().__init__()
        self.test_sets = ["tiny"]

    @staticmethod
    def _loader(batches: list[dict]) -> DataLoader:
        return DataLoader(batches, batch_size=None)

    def train_dataloader(self):
        return self._loader([_batch(b=4, seed=s) for s in range(2)])

    def val_dataloader(self):
        return self._loader([_eval_batch(4, 10)])

    def test_dataloader(self):
        return self._loader([_eval_batch(4, 20)])


def _module(augment):
    from gml.backbones import InSENet
    from gml.module import GMLModule

    torch.manual_seed(0)
    return GMLModule(backbone=InSENet("tiny"), augment=augment)


def test_module_augments_training_batches_only_mocked_trainer():
    module = _module([CutMix(), ChannelSwap(p=1.0)])
    batch = _id_batch(b=4)
    orig = _clone(batch)
    for stage in ("validating", "testing", "sanity_checking", "predicting"):
        module.trainer = SimpleNamespace(training=False, **{stage: True})
        _assert_unchanged(module.on_after_batch_transfer(batch, 0), orig)
    module.trainer = SimpleNamespace(training=True)
    out = module.on_after_batch_transfer(batch, 0)
    assert not torch.equal(out["features"], orig["features"])  # p=1 swap always changes it
    _assert_unchanged(batch, orig)


def test_module_augments_training_batches_only_real_trainer():
    spy = _Spy(CutMix())
    module = _module([spy, ChannelSwap(p=1.0)])
    spy.module = module
    kw = dict(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer = L.Trainer(max_steps=2, limit_val_batches=1, num_sanity_val_steps=1, **kw)
    dm = _TinyData()
    trainer.fit(module, datamodule=dm)
    assert spy.stages == ["train", "train"]
    trainer.validate(module, datamodule=dm, verbose=False)
    trainer.test(module, datamodule=dm, verbose=False)
    assert spy.stages == ["train", "train"]


# -- YAML composition -------------------------------------------------------------------------


def test_augment_list_from_yaml_config():
    from jsonargparse import ArgumentParser

    from gml.module import GMLModule

    parser = ArgumentParser()
    parser.add_class_arguments(GMLModule, "model")
    cfg = parser.parse_object(
        {
            "model": {
                "backbone": {
                    "class_path": "gml.backbones.InSENet",
                    "init_args": {"preset": "tiny"},
                },
                "augment": [
                    {"class_path": "gml.augment.CutMix", "init_args": {"alpha": 0.7}},
                    {"class_path": "gml.augment.ChannelSwap"},
                ],
            }
        }
    )
    module = parser.instantiate_classes(cfg).model
    assert isinstance(module, GMLModule)
    assert [type(a) for a in module.augment] == [CutMix, ChannelSwap]
    assert module.augment[0].alpha == 0.7 and module.augment[1].p == 0.5
