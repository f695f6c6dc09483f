"""Distributions that PyTorch lacks, in the style of :mod:`torch.distributions`."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

_PI_OVER_SQRT3 = math.pi / math.sqrt(3.0)


class Logistic(Distribution):
    r"""Logistic distribution with location ``loc`` (μ) and scale ``scale`` (a).

    Density ``p(s) = sech²((s − μ) / 2a) / (4a)``, so the negative log-likelihood is
    ``log(4a) + 2 log cosh((s − μ) / 2a)``: the paper's eq. (3), whose printed
    ``+ 2 log sech`` has the sign flipped (``log sech = −log cosh``).

    Args:
        loc: Location (the mean). Shape: any.
        scale: Scale ``a > 0`` (not the standard deviation: that is ``π a / √3``). Shape:
            broadcastable with ``loc``.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Tensor | float, scale: Tensor | float, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Logistic, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        super(Logistic, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def stddev(self) -> Tensor:
        return self.scale * _PI_OVER_SQRT3

    @property
    def variance(self) -> Tensor:
        return self.stddev.pow(2)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        # -z - 2 softplus(-z) is the stable form of -2 log(2 cosh(z/2)); both tails stay finite.
        return -z - 2.0 * torch.nn.functional.softplus(-z) - self.scale.log()

    def cdf(self, value: Tensor) -> Tensor:
        return torch.sigmoid((value - self.loc) / self.scale)

    def icdf(self, value: Tensor) -> Tensor:
        return self.loc + self.scale * torch.logit(value)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        finfo = torch.finfo(self.loc.dtype)
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
        u = u.clamp(min=finfo.tiny, max=1.0 - finfo.eps)
        return self.icdf(u)

    def entropy(self) -> Tensor:
        return self.scale.log() + 2.0


class PointMass(Distribution):
    """A prediction of the mean only (the non-GML baseline): no spread, no density.

    ``stddev``, ``log_prob`` and ``cdf`` are NaN so that reports print "n/a" instead of
    inventing a spread; ``sample`` returns the mean.

    Args:
        loc: The predicted mean. Shape: any.
    """

    arg_constraints = {"loc": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Tensor, validate_args=None):
        self.loc = loc
        super().__init__(loc.shape, validate_args=False)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def stddev(self) -> Tensor:
        return torch.full_like(self.loc, float("nan"))

    @property
    def variance(self) -> Tensor:
        return self.stddev

    def log_prob(self, value: Tensor) -> Tensor:
        return torch.full_like(value - self.loc, float("nan"))

    def cdf(self, value: Tensor) -> Tensor:
        return torch.full_like(value - self.loc, float("nan"))

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self.loc.expand(self._extended_shape(sample_shape))
