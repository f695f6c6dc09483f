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


class EqualMixture(Distribution):
    """Equal-weight mixture of distributions of the same batch shape (of any families): the
    predictive distribution of an ensemble of listeners.

    Besides the mixture's own ``mean`` / ``stddev`` it separates the two kinds of spread:
    :attr:`listener_stddev`, the root mean of the components' variances (how much listeners
    disagree: what a listening test's CI depends on), and :attr:`model_stddev`, the standard
    deviation of the components' means (how much the models disagree). The mixture's variance
    is the sum of the two squares.

    Args:
        components: The members' distributions, each with the same batch shape.
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, components: list[Distribution], validate_args=None):
        if not components:
            raise ValueError("EqualMixture needs at least one component")
        shape = components[0].batch_shape
        if any(c.batch_shape != shape for c in components):
            raise ValueError("EqualMixture components must share one batch shape")
        self.components = list(components)
        super().__init__(shape, validate_args=False)

    def _stack(self, values: list[Tensor]) -> Tensor:
        return torch.stack(values)  # [K, *batch]

    @property
    def mean(self) -> Tensor:
        return self._stack([c.mean for c in self.components]).mean(0)

    @property
    def listener_stddev(self) -> Tensor:
        """Root mean of the components' variances (the spread of listeners)."""
        return self._stack([c.variance for c in self.components]).mean(0).sqrt()

    @property
    def model_stddev(self) -> Tensor:
        """Standard deviation of the components' means (the disagreement of models)."""
        return self._stack([c.mean for c in self.components]).std(0, unbiased=False)

    @property
    def variance(self) -> Tensor:
        return self.listener_stddev.pow(2) + self.model_stddev.pow(2)

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    def log_prob(self, value: Tensor) -> Tensor:
        lp = self._stack([c.log_prob(value) for c in self.components])
        return torch.logsumexp(lp, dim=0) - math.log(len(self.components))

    def cdf(self, value: Tensor) -> Tensor:
        return self._stack([c.cdf(value) for c in self.components]).mean(0)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        with torch.no_grad():
            draws = self._stack([c.sample(sample_shape) for c in self.components])
            pick = torch.randint(len(self.components), draws.shape[1:], device=draws.device)
            return draws.gather(0, pick.unsqueeze(0)).squeeze(0)


class SpreadScaled(Distribution):
    """``X' = μ + c·(X − μ)``: a distribution scaled by ``c`` around its mean.

    How :meth:`DistributionHead.spread_distribution` applies a calibrated spread factor
    (:mod:`gml.calibration`) to heads that have no exact scaled form (location-scale heads
    scale their scale parameter instead).

    Args:
        base: Any distribution with ``mean``, ``stddev``, ``log_prob``, ``cdf``, ``sample``.
        factor: ``c > 0``.
    """

    arg_constraints: dict = {}
    support = constraints.real

    def __init__(self, base: Distribution, factor: float):
        self.base = base
        self.factor = float(factor)
        super().__init__(base.batch_shape, validate_args=False)

    @property
    def mean(self) -> Tensor:
        return self.base.mean

    @property
    def stddev(self) -> Tensor:
        return self.base.stddev * self.factor

    @property
    def variance(self) -> Tensor:
        return self.base.variance * self.factor**2

    def _unscale(self, value: Tensor) -> Tensor:
        mu = self.base.mean
        return mu + (value - mu) / self.factor

    def log_prob(self, value: Tensor) -> Tensor:
        return self.base.log_prob(self._unscale(value)) - math.log(self.factor)

    def cdf(self, value: Tensor) -> Tensor:
        return self.base.cdf(self._unscale(value))

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        mu = self.base.mean
        return mu + self.factor * (self.base.sample(sample_shape) - mu)
