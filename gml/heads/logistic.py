"""Logistic head: the paper's default GML distribution (eq. 3)."""

from __future__ import annotations

from torch import Tensor

from gml.heads.base import DistributionHead, positive_scale
from gml.heads.distributions import Logistic


class LogisticHead(DistributionHead):
    """Logistic distribution of scores: mean μ, scale a, std = π a / √3.

    Args:
        min_scale: Floor of the scale a in MUSHRA points (keeps the NLL finite).
        scale_unit: Scale (in points) per unit of softplus output; a ≈ 0.69·scale_unit at start.
        score_offset: See :class:`DistributionHead`.
        score_span: See :class:`DistributionHead`.
    """

    num_params = 2

    def __init__(
        self,
        min_scale: float = 0.05,
        scale_unit: float = 10.0,
        score_offset: float = 50.0,
        score_span: float = 50.0,
    ):
        super().__init__(score_offset=score_offset, score_span=score_span)
        self.min_scale = float(min_scale)
        self.scale_unit = float(scale_unit)

    def distribution(self, params: Tensor) -> Logistic:
        """Shape: params ``[B, 2]`` → batch shape ``[B]``."""
        loc = self.location(params[..., 0])
        scale = positive_scale(params[..., 1], self.min_scale, self.scale_unit)
        return Logistic(loc, scale)
