"""Several trained models acting as one listener.

The ensemble's predictive distribution is the equal-weight mixture of its members'
(:class:`~gml.heads.EqualMixture`). Reports separate the **listener spread** (root mean of the
members' variances: how much listeners disagree, what a listening test's CI depends on) from
the **model disagreement** (standard deviation of the members' means). CIs for N listeners use
the listener spread; the NLL, the PIT and prediction intervals (quantiles) use the whole
mixture, both kinds of uncertainty.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import lightning as L
from torch import Tensor, nn

from gml.errors import GMLError
from gml.heads import EqualMixture
from gml.module import GMLModule
from gml.scoring.model import check_members

__all__ = ["EnsembleModule", "check_members", "load_members"]


def load_members(ckpts: Sequence[str | os.PathLike], map_location="cpu") -> list[GMLModule]:
    """Load and check several checkpoints (files or run folders)."""
    from gml.checkpoint import load_module

    members = [load_module(c, map_location) for c in ckpts]
    check_members(members, [str(c) for c in ckpts])
    return members


class EnsembleModule(GMLModule):
    """A :class:`GMLModule` whose distribution is the mixture of its members' (for testing an
    ensemble with ``trainer.test`` / :func:`gml.evaluate`; not for training).

    Args:
        members: Trained modules with the same frontend settings and head target.
    """

    def __init__(self, members: Sequence[GMLModule]):
        L.LightningModule.__init__(self)
        check_members(members)
        self.members = nn.ModuleList(members)
        self.frontend = members[0].frontend
        self.head = members[0].head  # its loss (the NLL) is written against any distribution
        self.augment = []
        self.optimizer_factory = None
        self.checkpoint_path = None
        self.checkpoint_config = members[0].checkpoint_config
        self.member_paths = [m.checkpoint_path for m in members]

    def forward(self, features: Tensor) -> EqualMixture:
        """Shape: features ``[B, 4, 2, bands, T]`` → mixture with batch shape ``[B]``."""
        return EqualMixture([m(features) for m in self.members])

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        raise GMLError("an ensemble is built from trained members; train each member instead")
