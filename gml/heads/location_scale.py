"""Shared machinery of two-parameter (location, scale) heads."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor
from torch.distributions import Distribution

from gml.heads.base import DistributionHead, positive_scale


class LocationScaleHead(DistributionHead):
    """A head whose distribution is ``distribution_class(loc, scale)``.

    Raw output 0 is the location (see :meth:`DistributionHead.location`), raw output 1 the
    scale through a floored softplus (strictly positive, finite for finite inputs).

    Args:
        min_scale: Floor of the scale parameter in MUSHRA points (keeps the NLL finite).
        scale_unit: Scale (in points) per unit of softplus output; ≈ 0.69·scale_unit at start.
        score_offset: See :class:`DistributionHead`.
        score_span: See :class:`DistributionHead`.
    """

    num_params = 2
    distribution_class: ClassVar[type[Distribution]]

    def __init__(
        self,
        min_scale: float,
        scale_unit: float,
        score_offset: float = 50.0,
        score_span: float = 50.0,
    ):
        super().__init__(score_offset=score_offset, score_span=score_span)
        self.min_scale = float(min_scale)
        self.scale_unit = float(scale_unit)

    def distribution(self, params: Tensor) -> Distribution:
        """Shape: params ``[B, 2]`` → batch shape ``[B]``."""
        return self.spread_distribution(params, 1.0)

    def spread_distribution(self, params: Tensor, factor: float) -> Distribution:
        """The distribution with its scale multiplied by ``factor`` (post-hoc spread
        calibration, see :mod:`gml.calibration`): exact for a location-scale family.

        Shape: params ``[B, 2]`` → batch shape ``[B]``.
        """
        loc = self.location(params[..., 0])
        scale = positive_scale(params[..., 1], self.min_scale, self.scale_unit)
        return self.make_distribution(loc, scale * factor)

    def make_distribution(self, loc: Tensor, scale: Tensor) -> Distribution:
        """The distribution for a location and scale (a subclass adds its own settings)."""
        return self.distribution_class(loc, scale)
