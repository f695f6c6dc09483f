"""Beta head: scores / 100 follow a Beta(α, β) distribution, bounded to the MUSHRA scale.

**Parametrisation.** Mean ``μ = m + (1 − 2m)·sigmoid(raw₀)`` (``m = mean_floor``, so ``μ`` stays
strictly inside (0, 1) for any finite raw output) and concentration ``κ = κ_min + unit ·
softplus(raw₁)``; ``α = μκ``, ``β = (1 − μ)κ``. On the 0–100 scale the mean is ``100 μ`` and the
variance ``100² μ(1 − μ)/(κ + 1)``. Small ``κ`` with ``α, β < 1`` is U-shaped: a panel split
between the two ends.

**Exact ends.** A Beta density is 0 or infinite at 0 and 1, so observed scores are squeezed
into the open interval before the density is evaluated (Smithson & Verkuilen 2006):
``s' = (s·(n − 1) + 0.5) / n`` for ``s = score / 100`` and a *virtual sample size* ``n``
(``virtual_n``, default 100: 0 → 0.005 and 100 → 0.995, i.e. half a score point, the same
tolerance as the censored heads; an interior score moves by at most half a point, towards 50).
The squeeze is affine and applies to every score, so the likelihood stays smooth in the score.
It is a device of the likelihood only: ``mean``, ``stddev``, ``cdf`` and ``sample`` are those of
the unsqueezed ``100·Beta(α, β)``.

**Likelihood.** ``log_prob(s) = log Beta(s'; α, β) − log 100``: the ``−log 100`` Jacobian makes
it a log-density per score point, comparable with the logistic and gaussian heads' (up to the
squeeze, which shifts the evaluation point by at most ``50/n`` points). Scores outside 0–100
count as the nearest end.

**CDF.** PyTorch has no incomplete beta function: ``cdf`` calls
:func:`scipy.special.betainc` on CPU, detached (no gradient). It serves the PIT and quantiles
(listener, reports), never training, which only uses ``log_prob``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Beta, Distribution, constraints

from gml.heads.base import DistributionHead, positive_scale


class ScaledBeta(Distribution):
    """``high · Beta(α, β)`` on ``[0, high]``, with a squeezed likelihood (module docstring).

    Args:
        concentration1: ``α > 0``. Shape: any.
        concentration0: ``β > 0`` (broadcastable with ``α``).
        high: Top of the scale (100 for MUSHRA).
        virtual_n: ``n`` of the squeeze ``s' = (s(n − 1) + 0.5)/n``; must exceed 1.
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
    }
    has_rsample = True

    def __init__(
        self,
        concentration1: Tensor | float,
        concentration0: Tensor | float,
        high: float = 100.0,
        virtual_n: float = 100.0,
        validate_args: bool | None = None,
    ):
        if not float(virtual_n) > 1.0:
            raise ValueError(f"virtual_n must exceed 1, got {virtual_n}")
        if not float(high) > 0.0:
            raise ValueError(f"high must be positive, got {high}")
        self.base = Beta(concentration1, concentration0, validate_args=validate_args)
        self.high, self.virtual_n = float(high), float(virtual_n)
        super().__init__(self.base.batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ScaledBeta, _instance)
        batch_shape = torch.Size(batch_shape)
        new.base = self.base.expand(batch_shape)
        new.high, new.virtual_n = self.high, self.virtual_n
        super(ScaledBeta, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(0.0, self.high)

    @property
    def concentration1(self) -> Tensor:
        return self.base.concentration1

    @property
    def concentration0(self) -> Tensor:
        return self.base.concentration0

    @property
    def mean(self) -> Tensor:
        return self.high * self.base.mean

    @property
    def variance(self) -> Tensor:
        return self.high**2 * self.base.variance

    def squeeze(self, value: Tensor) -> Tensor:
        """Scores → points strictly inside (0, 1) where the Beta density is evaluated.

        Shape:
            value: any; returns the same shape.
        """
        like, n = self.base.concentration1, self.virtual_n
        s = torch.as_tensor(value, dtype=like.dtype, device=like.device) / self.high
        return (s.clamp(0, 1) * (n - 1.0) + 0.5) / n

    def log_prob(self, value: Tensor) -> Tensor:
        """Log-density per score point at the squeezed score.

        Shape:
            value: broadcastable with the batch shape (e.g. ``[N, B]`` for ``[B]``).
        """
        return self.base.log_prob(self.squeeze(value)) - math.log(self.high)

    @torch.no_grad()
    def cdf(self, value: Tensor) -> Tensor:
        """``P(score ≤ value)`` by the regularised incomplete beta function (scipy, no
        gradient: used for PIT and quantiles only).

        Shape:
            value: broadcastable with the batch shape.
        """
        import scipy.special  # here, not on top: every head module is imported to score a pair

        like = self.base.concentration1
        value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
        x, a, b = torch.broadcast_tensors(
            (value / self.high).clamp(0, 1), self.concentration1, self.concentration0
        )
        out = scipy.special.betainc(*(t.detach().double().cpu().numpy() for t in (a, b, x)))
        return torch.as_tensor(np.asarray(out), dtype=like.dtype, device=like.device)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Shape: returns ``sample_shape + batch_shape``, scores in ``[0, high]``."""
        return self.high * self.base.rsample(sample_shape)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.high * self.base.sample(sample_shape)

    def entropy(self) -> Tensor:
        return self.base.entropy() + math.log(self.high)


class BetaHead(DistributionHead):
    """Beta-distributed scores on 0–100, parametrised by mean and concentration.

    Raw output 0 gives the mean ``100 μ`` (raw 0 → 50, like the other heads' location), raw
    output 1 the concentration ``κ``. See the module docstring for the squeeze of the ends.

    Args:
        min_concentration: Floor of ``κ`` (below 2 the Beta can be U-shaped: split panels).
        concentration_unit: ``κ`` per unit of softplus output; at raw 0, ``κ ≈ 0.69·unit +
            min_concentration`` (std ≈ 13 points at mean 50 with the defaults).
        mean_floor: ``μ`` stays in ``[mean_floor, 1 − mean_floor]`` (so ``α, β > 0`` for any
            finite raw output, with finite gradients).
        virtual_n: ``n`` of the Smithson–Verkuilen squeeze of exact 0 and 100.
    """

    num_params = 2

    def __init__(
        self,
        min_concentration: float = 0.5,
        concentration_unit: float = 20.0,
        mean_floor: float = 1e-3,
        virtual_n: float = 100.0,
    ):
        super().__init__(score_offset=50.0, score_span=50.0)
        if not 0.0 < mean_floor < 0.5:
            raise ValueError(f"mean_floor must lie in (0, 0.5), got {mean_floor}")
        if not min_concentration > 0.0 or not concentration_unit > 0.0:
            raise ValueError("min_concentration and concentration_unit must be positive")
        self.min_concentration = float(min_concentration)
        self.concentration_unit = float(concentration_unit)
        self.mean_floor = float(mean_floor)
        self.virtual_n = float(virtual_n)

    def distribution(self, params: Tensor) -> ScaledBeta:
        """Shape: params ``[B, 2]`` → batch shape ``[B]``."""
        m = self.mean_floor
        mu = m + (1.0 - 2.0 * m) * torch.sigmoid(params[..., 0])
        kappa = positive_scale(params[..., 1], self.min_concentration, self.concentration_unit)
        return ScaledBeta(mu * kappa, (1.0 - mu) * kappa, high=100.0, virtual_n=self.virtual_n)
