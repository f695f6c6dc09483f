"""Gaussian head (paper eq. 2, with the typo fixed: log(σ√(2π)), not log(√(2πσ)))."""

from __future__ import annotations

from torch.distributions import Normal

from gml.heads.location_scale import LocationScaleHead


class GaussianHead(LocationScaleHead):
    """Normal distribution of scores: mean μ, standard deviation σ.

    Args: see :class:`~gml.heads.location_scale.LocationScaleHead`; the scale is ``σ``.
    """

    distribution_class = Normal

    def __init__(
        self,
        min_scale: float = 0.05,
        scale_unit: float = 15.0,
        score_offset: float = 50.0,
        score_span: float = 50.0,
    ):
        super().__init__(min_scale, scale_unit, score_offset, score_span)
