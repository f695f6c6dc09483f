"""Numerical safety: extreme scores and inputs, mixed precision with a float32 head."""

from __future__ import annotations

import lightning as L
import torch

from gml.backbones import InSENet
from gml.heads import CensoredLogisticHead, GaussianHead, LogisticHead
from gml.module import GMLModule


def _batches(scale: float, n: int = 4):
    g = torch.Generator().manual_seed(0)
    for _ in range(n):
        yield {
            "features": torch.rand(4, 4, 2, 32, 24, generator=g) * scale,
            "target": torch.tensor([0.0, 100.0, 0.0, 100.0]),  # the ends of the scale
            "index": torch.arange(4),
        }


def test_extreme_scores_and_inputs_train_without_nan():
    for head in (LogisticHead(), GaussianHead(), CensoredLogisticHead()):
        for scale in (1e-6, 1.0, 1e4):  # silence-like, normal, and huge feature values
            torch.manual_seed(0)
            model = GMLModule(backbone=InSENet("tiny"), head=head)
            opt = torch.optim.Adam(model.parameters(), lr=1e-2)
            for batch in _batches(scale):
                loss = model.head.loss(model(batch["features"]), batch["target"])
                assert torch.isfinite(loss), (type(head).__name__, scale)
                opt.zero_grad()
                loss.backward()
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                assert all(torch.isfinite(g).all() for g in grads)
                opt.step()


def test_bf16_mixed_keeps_the_head_in_float32():
    model = GMLModule(backbone=InSENet("tiny"))
    x = torch.rand(2, 4, 2, 32, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dist = model(x)
        nll = model.head.nll(dist, torch.tensor([0.0, 100.0]))
    assert dist.mean.dtype == torch.float32 and nll.dtype == torch.float32


def test_bf16_mixed_training_through_lightning(tiny_demo, tmp_path):
    from gml.data.datamodule import GMLDataModule

    model = GMLModule(backbone=InSENet("tiny"))
    dm = GMLDataModule(str(tiny_demo), progress=False, frontend=model.frontend)
    trainer = L.Trainer(
        precision="bf16-mixed", max_steps=3, limit_val_batches=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu",
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, dm)
    assert all(torch.isfinite(p).all() for p in model.parameters())
