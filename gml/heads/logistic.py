"""Logistic head: the paper's default GML distribution (eq. 3)."""

from __future__ import annotations

from gml.heads.distributions import Logistic
from gml.heads.location_scale import LocationScaleHead


class LogisticHead(LocationScaleHead):
    """Logistic distribution of scores: mean μ, scale a, std = π a / √3.

    Args: see :class:`~gml.heads.location_scale.LocationScaleHead`; the scale is ``a``.
    """

    distribution_class = Logistic

    def __init__(
        self,
        min_scale: float = 0.05,
        scale_unit: float = 10.0,
        score_offset: float = 50.0,
        score_span: float = 50.0,
    ):
        super().__init__(min_scale, scale_unit, score_offset, score_span)
