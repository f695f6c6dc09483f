"""Backbones: any ``nn.Module`` mapping ``[B, 4, 2, bands, T]`` features to ``[B, D]`` fits.

Give it an ``out_features`` attribute (D) or the model infers D with one dry run.
"""

from gml.backbones.insenet import PRESETS, InceptionSE, InSENet, SqueezeExcitation, ViewBranch

__all__ = ["PRESETS", "InSENet", "InceptionSE", "SqueezeExcitation", "ViewBranch"]
