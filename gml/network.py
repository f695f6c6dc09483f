"""The network of a listener — frontend settings, backbone, distribution head and the calibrated
spread factor — as one piece that both the training module (:class:`gml.module.GMLModule`,
Lightning) and the scoring model (:class:`gml.scoring.model.ScoringModel`, no Lightning) are
made of, under the same attribute names, so the weights of one load into the other."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gml.backbones import infer_out_features
from gml.features import GammatoneFrontend
from gml.heads import DistributionHead, LogisticHead

__all__ = ["ListenerNetwork"]


class ListenerNetwork:
    """Mixed into an ``nn.Module`` (placed before it among the bases, so that its
    :meth:`forward` is the one used): the parts of a listener and the forward pass through
    them. Not a module by itself, so that a Lightning module and a plain one can both use it.
    """

    frontend: GammatoneFrontend
    backbone: nn.Module
    head: DistributionHead
    spread_factor: float

    def set_up_network(
        self,
        backbone: nn.Module | None,
        head: DistributionHead | None,
        frontend: GammatoneFrontend | None,
        spread_factor: float,
    ) -> None:
        """Hold the parts (defaults: ViSQOL-v3 frontend, paper-size InSE-Net for its bands,
        logistic head) and build the head for the backbone's feature width. Called by the
        module's ``__init__`` after ``nn.Module.__init__``.

        Raises:
            ValueError: a spread factor that is not positive.
        """
        if not spread_factor > 0:
            raise ValueError(f"spread_factor must be positive, got {spread_factor}")
        self.spread_factor = float(spread_factor)
        self.frontend = frontend if frontend is not None else GammatoneFrontend()
        if backbone is None:
            from gml.backbones import InSENet

            backbone = InSENet("paper", num_bands=self.frontend.num_bands)
        self.backbone = backbone
        self.head = head if head is not None else LogisticHead()
        self.head.build(infer_out_features(backbone, self.frontend.num_bands))
        #: The file the weights came from (set when loaded from a checkpoint).
        self.checkpoint_path: str | None = None
        #: The configuration the checkpoint carries (set when loaded from a checkpoint).
        self.checkpoint_config: dict | None = None

    @property
    def train_target(self) -> str:
        """What the head trains on: ``"scores"`` (individual) or ``"mean"``."""
        return self.head.target

    def forward(self, features: Tensor):
        """Score distribution of each stimulus.

        The head (projection, distribution, and so the NLL) runs in float32 even under mixed
        precision (``trainer.precision: bf16-mixed``): scales, logs and softplus tails lose too
        much in bfloat16.

        Shape:
            features: ``[B, 4, 2, bands, T]`` → distribution with batch shape ``[B]``.
        """
        embedding = self.backbone(features)
        with torch.autocast(device_type=embedding.device.type, enabled=False):
            return self.spread_distribution(self.head.proj(embedding.float()))

    def spread_distribution(self, params: Tensor, factor: float | None = None):
        """The head's distribution for raw parameters, its spread multiplied by ``factor``
        (default: this model's calibrated :attr:`spread_factor`).

        Shape:
            params: ``[B, num_params]`` → distribution with batch shape ``[B]``.
        """
        factor = self.spread_factor if factor is None else float(factor)
        if factor == 1.0:
            return self.head.distribution(params)
        return self.head.spread_distribution(params, factor)
