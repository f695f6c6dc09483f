"""The non-GML baseline head: a mean score only, trained with smooth-L1 on mean scores."""

from __future__ import annotations

import torch
from torch import Tensor

from gml.heads.base import DistributionHead
from gml.heads.distributions import PointMass


class PointHead(DistributionHead):
    """One output, the predicted mean; loss = smooth-L1 against per-stimulus mean scores.

    This is the paper's non-GML baseline (section IV-D). It has no spread: ``stddev``,
    ``log_prob`` and CIs are NaN and reports print "n/a" for them.

    Args:
        beta: Smooth-L1 transition point in MUSHRA points (PyTorch's ``beta``; the paper's
            eq. 4 uses 1).
        score_offset: See :class:`DistributionHead`.
        score_span: See :class:`DistributionHead`.
    """

    num_params = 1
    target = "mean"

    def __init__(self, beta: float = 1.0, score_offset: float = 50.0, score_span: float = 50.0):
        super().__init__(score_offset=score_offset, score_span=score_span)
        self.beta = float(beta)

    def distribution(self, params: Tensor) -> PointMass:
        """Shape: params ``[B, 1]`` → batch shape ``[B]``."""
        return PointMass(self.location(params[..., 0]))

    def loss(self, dist: PointMass, targets: Tensor, mask: Tensor | None = None) -> Tensor:
        """Smooth-L1 between predicted and target mean scores (``targets`` ``[B]``)."""
        return torch.nn.functional.smooth_l1_loss(dist.mean, targets, beta=self.beta)
