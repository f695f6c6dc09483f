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

from torch import nn

from gml.checkpoint_file import load_model
from gml.errors import GMLError
from gml.features import GammatoneFrontend
from gml.heads import DistributionHead
from gml.network import ListenerNetwork

__all__ = ["ScoringModel", "check_members", "load_scoring_model"]

#: Parts of a checkpoint's model configuration used only in training.
_TRAINING_ONLY = ("augment", "optimizer")


class ScoringModel(ListenerNetwork, nn.Module):
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
        self.set_up_network(backbone, head, frontend, spread_factor)


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
