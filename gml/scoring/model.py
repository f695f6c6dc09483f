"""The trained network a listener scores with, rebuilt from a checkpoint without Lightning.

:class:`ScoringModel` holds what scoring needs of a :class:`~gml.module.GMLModule` — the
frontend, backbone and head, and the calibrated spread factor — under the same names, so the
weights of a ``gml fit`` checkpoint load into it unchanged (the training-only parts, the
augmentations and the optimizer, are not built).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gml.backbones import infer_out_features
from gml.checkpoint_file import load_model
from gml.errors import GMLError
from gml.features import GammatoneFrontend
from gml.heads import DistributionHead, LogisticHead

__all__ = ["ScoringModel", "check_members", "load_scoring_model"]

#: Parts of a checkpoint's model configuration used only in training.
_TRAINING_ONLY = ("augment", "optimizer")


class ScoringModel(nn.Module):
    """Frontend, backbone and head of a trained listener, for scoring.

    Args:
        backbone: The trained backbone (``[B, 4, 2, bands, T]`` → ``[B, D]``).
        head: The distribution head.
        frontend: The frontend the model was trained with.
        spread_factor: The calibrated factor on the listener spread (1: none).
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        head: DistributionHead | None = None,
        frontend: GammatoneFrontend | None = None,
        spread_factor: float = 1.0,
    ):
        super().__init__()
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
        #: The file the weights came from (:func:`load_scoring_model`).
        self.checkpoint_path: str | None = None
        #: The configuration the checkpoint carries (:func:`load_scoring_model`).
        self.checkpoint_config: dict | None = None

    @property
    def train_target(self) -> str:
        """What the head was trained on: ``"scores"`` (individual) or ``"mean"``."""
        return self.head.target

    def spread_distribution(self, params: Tensor, factor: float | None = None):
        """The head's distribution for raw parameters, its spread multiplied by ``factor``
        (default: :attr:`spread_factor`), as ``GMLModule.spread_distribution``.

        Shape:
            params: ``[B, num_params]`` → distribution with batch shape ``[B]``.
        """
        factor = self.spread_factor if factor is None else float(factor)
        if factor == 1.0:
            return self.head.distribution(params)
        return self.head.spread_distribution(params, factor)

    def forward(self, features: Tensor):
        """Score distribution of each stimulus (the head in float32, as in training).

        Shape:
            features: ``[B, 4, 2, bands, T]`` → distribution with batch shape ``[B]``.
        """
        embedding = self.backbone(features)
        with torch.autocast(device_type=embedding.device.type, enabled=False):
            return self.spread_distribution(self.head.proj(embedding.float()))


def load_scoring_model(ckpt_path: str | os.PathLike, map_location: Any = "cpu") -> ScoringModel:
    """Rebuild the network a ``gml fit`` checkpoint holds, for scoring (no Lightning).

    Args:
        ckpt_path: ``best.ckpt`` / ``last.ckpt``, or the run folder.
        map_location: Device for the weights.

    Returns:
        The model in eval mode, on ``map_location``.

    Raises:
        GMLError: not a gml checkpoint, or its configuration no longer builds a model (the
            message names what failed).
    """
    # the training-only parts have no weights; anything else must fit exactly
    return load_model(ScoringModel, ckpt_path, map_location, drop=_TRAINING_ONLY)


def check_members(members: Sequence[Any], names: Sequence[str] | None = None) -> None:
    """Members of an ensemble must compute the same features (frontend settings) and have
    been trained on the same target, so that one batch serves them all.

    Raises:
        GMLError: naming the first member that differs.
    """
    names = list(names or [f"member {k}" for k in range(len(members))])
    first = members[0]
    for m, name in zip(members[1:], names[1:]):
        if m.frontend.settings() != first.frontend.settings():
            raise GMLError(f"{name}: its frontend settings differ from those of {names[0]}")
        if m.train_target != first.train_target:
            raise GMLError(
                f"{name}: its head trains on {m.train_target!r}, not {first.train_target!r}"
            )
