"""Validating and testing on CPU with the inference network: a Lightning callback that gives
the model the CPU trunk of its backbone (:func:`gml.inference.cpu_trunk`, batch norm folded)
for each validation or test epoch, so that ``gml fit``'s validation and ``gml test`` on CPU
are as fast as scoring with a listener, and gives the trained backbone back after.
"""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from gml.inference import cpu_trunk, fold_batchnorm

__all__ = ["CpuInferenceTrunk"]


class CpuInferenceTrunk(Callback):
    """On CPU, validation and test epochs run with inference copies of the model's backbones
    (those of an ensemble's members too): batch norm folded and InSE-Net's CPU trunk, made
    from the weights as they are at the epoch's start. The same predictions to float
    rounding; the trained backbones are back in place before anything is saved (checkpoints
    are written after the epoch ends)."""

    def __init__(self) -> None:
        self._kept: list[tuple[nn.Module, nn.Module]] = []

    def _swap(self, pl_module: LightningModule) -> None:
        if pl_module.device.type != "cpu" or self._kept:
            return
        for owner in pl_module.modules():
            backbone = getattr(owner, "backbone", None)
            if isinstance(backbone, nn.Module) and not backbone.training:
                self._kept.append((owner, backbone))
        for owner, backbone in self._kept:
            owner.backbone = cpu_trunk(fold_batchnorm(backbone), in_place=True)

    def _restore(self) -> None:
        for owner, backbone in self._kept:
            owner.backbone = backbone
        self._kept.clear()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap(pl_module)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap(pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, err: BaseException
    ) -> None:
        self._restore()
