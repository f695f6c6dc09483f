"""Backbones: any ``nn.Module`` mapping ``[B, 4, 2, bands, T]`` features to ``[B, D]`` fits.

Give it an ``out_features`` attribute (D) or the model infers D with one dry run.
"""

import torch
from torch import nn

from gml.backbones.insenet import PRESETS, InceptionSE, InSENet, SqueezeExcitation, ViewBranch

__all__ = [
    "PRESETS",
    "InSENet",
    "InceptionSE",
    "SqueezeExcitation",
    "ViewBranch",
    "infer_out_features",
]


def infer_out_features(backbone: nn.Module, num_bands: int = 32) -> int:
    """The backbone's feature width: its ``out_features`` attribute, else one dry run."""
    width = getattr(backbone, "out_features", None)
    if isinstance(width, int):
        return width
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        y = backbone(torch.zeros(1, 4, 2, num_bands, 16))
    backbone.train(was_training)
    if y.dim() != 2:
        raise ValueError(f"backbone must return [B, D] features, returned shape {list(y.shape)}")
    return int(y.shape[1])
