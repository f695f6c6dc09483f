"""Gaussian head (paper eq. 2, with the typo fixed: log(σ√(2π)), not log(√(2πσ)))."""

from __future__ import annotations

from torch import Tensor
from torch.distributions import Normal

from gml.heads.base import DistributionHead, positive_scale


class GaussianHead(DistributionHead):
    """Normal distribution of scores: mean μ, standard deviation σ.

    Args:
        min_scale: Floor of σ in MUSHRA points.
        scale_unit: σ (in points) per unit of softplus output.
        score_offset: See :class:`DistributionHead`.
        score_span: See :class:`DistributionHead`.
    """

    num_params = 2

    def __init__(
        self,
        min_scale: float = 0.05,
        scale_unit: float = 15.0,
        score_offset: float = 50.0,
        score_span: float = 50.0,
    ):
        super().__init__(score_offset=score_offset, score_span=score_span)
        self.min_scale = float(min_scale)
        self.scale_unit = float(scale_unit)

    def distribution(self, params: Tensor) -> Normal:
        """Shape: params ``[B, 2]`` → batch shape ``[B]``."""
        loc = self.location(params[..., 0])
        scale = positive_scale(params[..., 1], self.min_scale, self.scale_unit)
        return Normal(loc, scale)
