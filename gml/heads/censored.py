"""Censored heads: a latent location-scale score clipped to the ends of the MUSHRA scale.

A MUSHRA slider stops at 0 and 100, and real panels pile up there (the hidden reference gets
100 from most listeners, anchors sit near 0). These heads model a listener's score as
``Y = clip(X, low, high)`` with a latent logistic or normal ``X``: the predictive distribution
has point masses ``P(Y = low) = F(low)`` and ``P(Y = high) = 1 − F(high)`` and the latent
density in between.

**Likelihood.** A score within ``tol`` of an end (``s <= low + tol`` or ``s >= high − tol``;
also one beyond the end, as a slider records it) enters as censored, ``log F(low)`` or
``log(1 − F(high))``; an interior score enters with the log density. This is a mixed
discrete/continuous likelihood: the end terms are log-probabilities, the interior ones
log-densities per score point, so its NLL is **not directly comparable** with a pure density's
NLL (logistic or gaussian head) on the same data; compare such heads by NLL only on interior
scores, or by other metrics. The interior density is not renormalised for the tolerance bands
(a latent value in ``(low, low + tol]`` has no score of its own), which leaves the likelihood
deficient by ``F(low + tol) − F(low) + F(high) − F(high − tol)``: negligible unless the scale
is comparable with ``tol``.

**Support.** ``support`` is the closed interval ``[low, high]``: samples lie there and take the
end values exactly (a share ``F(low)`` is exactly ``low``). ``cdf`` is right-continuous, so it
jumps at the ends: 0 below ``low``, ``F(low)`` at ``low`` (the mass of the end itself), 1 at
and above ``high``. A probability *outside* the scale is therefore
``cdf(low − 0) + 1 − cdf(high) = 0``; evaluating ``cdf(low)`` gives the mass *at* ``low``.
``log_prob`` never raises for values outside the support (they count as the nearest end).

**Moments.** With ``Z`` the standard latent, ``α = (low − μ)/σ``, ``β = (high − μ)/σ``,
``W = clip(Z, α, β)`` and ``Y = μ + σ W``, put ``G(x) = E[(x − Z)⁺] = ∫_{−∞}^x F_Z`` and
``H(x) = E[((x − Z)⁺)²] = 2 ∫_{−∞}^x G``. Writing ``W = Z + (α − Z)⁺ − (Z − β)⁺`` gives, for
``α < 0 < β`` (with ``x = α``, ``y = −β``, both negative)::

    E[W]   = G(x) − G(y)
    Var[W] = V − H(x) − H(y) + 2x G(x) + 2y G(y) − (G(x) − G(y))²      (V = Var Z)

and, when the latent location lies at or above ``high`` (``β ≤ 0``)::

    E[Y]   = high − σ (G(β) − G(α))
    Var[W] = H(β) − H(α) − 2(β − α) G(α) − (G(β) − G(α))²

(at or below ``low``: the same with ``(α, β) → (−β, −α)`` by symmetry, ``E[Y] = low +
σ (G(−α) − G(−β))``). These forms only evaluate ``G`` and ``H`` at non-positive arguments, where
they are small, so nothing cancels catastrophically (all in float64). Normal: ``G(x) = xΦ(x) +
φ(x)``, ``H(x) = (x² + 1)Φ(x) + xφ(x)``, ``V = 1``. Logistic: ``G(x) = softplus(x)``,
``H(x) = −2 Li₂(−eˣ) = 2 Li₂(σ(x)) + softplus(x)²`` (Landen's identity; the dilogarithm
series in ``σ(x) ≤ ½`` converges geometrically), ``V = π²/3``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all
from torch.nn.functional import softplus

from gml.heads.location_scale import LocationScaleHead

_DILOG_TERMS = 48  # Li₂ series for y ≤ ½: 2⁻⁴⁸/48² ≈ 1e-18, below float64 resolution
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _dilog_half(y: Tensor) -> Tensor:
    """Dilogarithm ``Li₂(y) = Σ yᵏ/k²`` for ``0 ≤ y ≤ ½``.

    Shape:
        y: any; returns the same shape.
    """
    k = torch.arange(1, _DILOG_TERMS + 1, dtype=y.dtype, device=y.device)
    return (y.unsqueeze(-1).pow(k) / k.pow(2)).sum(-1)


def _nonpos(x: Tensor) -> Tensor:
    # G and H are only evaluated at arguments <= 0 (see the module docstring); clamping keeps
    # the branches torch.where discards finite, so their gradients stay finite too.
    return x.clamp(max=0.0)


class CensoredLocationScale(Distribution):
    """``clip(loc + scale·Z, low, high)`` for a standard latent ``Z`` defined by a subclass.

    See the module docstring for the likelihood, ``support`` and the moment formulas.

    Args:
        loc: Latent location ``μ`` in score points. Shape: any.
        scale: Latent scale ``σ > 0`` (broadcastable with ``loc``).
        low: Lower end of the scale.
        high: Upper end of the scale.
        tol: Scores within ``tol`` of an end count as censored at that end.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True
    #: Variance of the standard latent ``Z``.
    latent_variance: ClassVar[float]

    def __init__(
        self,
        loc: Tensor | float,
        scale: Tensor | float,
        low: float = 0.0,
        high: float = 100.0,
        tol: float = 0.5,
        validate_args: bool | None = None,
    ):
        low, high, tol = float(low), float(high), float(tol)
        if not low < high:
            raise ValueError(f"low must be below high, got {low} and {high}")
        if not 0.0 <= tol < (high - low) / 2:
            raise ValueError(f"tol must lie in [0, (high - low) / 2), got {tol}")
        self.loc, self.scale = broadcast_all(loc, scale)
        self.low, self.high, self.tol = low, high, tol
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        new.low, new.high, new.tol = self.low, self.high, self.tol
        super(CensoredLocationScale, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    # -- the standard latent: abstract hooks that each family (subclass) defines ----------

    @staticmethod
    def _log_pdf(z: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _log_cdf(z: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _log_sf(z: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _cdf(z: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _icdf(u: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _standard_sample(shape: torch.Size, like: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _g(x: Tensor) -> Tensor:
        """``G(x) = E[(x − Z)⁺]`` for ``x ≤ 0``."""
        raise NotImplementedError

    @staticmethod
    def _h(x: Tensor) -> Tensor:
        """``H(x) = E[((x − Z)⁺)²]`` for ``x ≤ 0``."""
        raise NotImplementedError

    # -- moments --------------------------------------------------------------------------

    def _bounds64(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``μ, σ, α, β`` in float64 (the moment formulas subtract terms of size ``α²``)."""
        mu, sigma = self.loc.double(), self.scale.double()
        return mu, sigma, (self.low - mu) / sigma, (self.high - mu) / sigma

    @property
    def mean(self) -> Tensor:
        mu, sigma, a, b = self._bounds64()
        g = self._g
        inside = mu + sigma * (g(_nonpos(a)) - g(_nonpos(-b)))
        at_top = self.high - sigma * (g(_nonpos(b)) - g(_nonpos(a)))
        at_bottom = self.low + sigma * (g(_nonpos(-a)) - g(_nonpos(-b)))
        m = torch.where(b <= 0, at_top, torch.where(a >= 0, at_bottom, inside))
        return m.to(self.loc.dtype)

    @property
    def variance(self) -> Tensor:
        _, sigma, a, b = self._bounds64()
        g, h = self._g, self._h
        x, y = _nonpos(a), _nonpos(-b)
        inside = (
            self.latent_variance - h(x) - h(y) + 2 * x * g(x) + 2 * y * g(y) - (g(x) - g(y)).pow(2)
        )

        def one_side(lo: Tensor, hi: Tensor) -> Tensor:  # lo < hi <= 0
            lo, hi = _nonpos(lo), _nonpos(hi)
            return h(hi) - h(lo) - 2 * (hi - lo) * g(lo) - (g(hi) - g(lo)).pow(2)

        var = torch.where(b <= 0, one_side(a, b), torch.where(a >= 0, one_side(-b, -a), inside))
        return (sigma.pow(2) * var.clamp(min=0.0)).to(self.loc.dtype)

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    @property
    def mass_low(self) -> Tensor:
        """``P(Y = low)``. Shape: batch shape."""
        return self._cdf((self.low - self.loc) / self.scale)

    @property
    def mass_high(self) -> Tensor:
        """``P(Y = high)``. Shape: batch shape."""
        return self._log_sf((self.high - self.loc) / self.scale).exp()

    # -- likelihood, cdf, sampling -------------------------------------------------------

    def log_prob(self, value: Tensor) -> Tensor:
        """Mixed log-likelihood: log-mass at the ends, log-density per point inside.

        Shape:
            value: broadcastable with the batch shape (e.g. ``[N, B]`` for ``[B]``).
        """
        value = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        lower = self._log_cdf((self.low - self.loc) / self.scale)
        upper = self._log_sf((self.high - self.loc) / self.scale)
        inner = self._log_pdf((value - self.loc) / self.scale) - self.scale.log()
        at_low = value <= self.low + self.tol
        at_high = value >= self.high - self.tol
        return torch.where(at_low, lower, torch.where(at_high, upper, inner))

    def cdf(self, value: Tensor) -> Tensor:
        """``P(Y ≤ value)``: 0 below ``low``, the latent cdf on ``[low, high)``, 1 from ``high``.

        Shape:
            value: broadcastable with the batch shape.
        """
        value = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        inner = self._cdf((value - self.loc) / self.scale)
        return torch.where(
            value < self.low,
            torch.zeros_like(inner),
            torch.where(value >= self.high, torch.ones_like(inner), inner),
        )

    def icdf(self, value: Tensor) -> Tensor:
        """Generalised inverse of :meth:`cdf`: the latent quantile clipped to the scale."""
        value = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        return (self.loc + self.scale * self._icdf(value)).clamp(self.low, self.high)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Latent draws clipped to the scale: a share ``mass_low`` is exactly ``low``.

        Shape:
            returns ``sample_shape + batch_shape``.
        """
        z = self._standard_sample(self._extended_shape(sample_shape), self.loc)
        return (self.loc + self.scale * z).clamp(self.low, self.high)


class CensoredLogistic(CensoredLocationScale):
    """Logistic latent (location ``μ``, scale ``a``) clipped to ``[low, high]``.

    Log-cdf and log-survival are ``−softplus(−z)`` and ``−softplus(z)``: finite for any
    finite ``z``. Args: see :class:`CensoredLocationScale`.
    """

    latent_variance = math.pi**2 / 3.0

    @staticmethod
    def _log_pdf(z: Tensor) -> Tensor:
        return -z - 2.0 * softplus(-z)

    @staticmethod
    def _log_cdf(z: Tensor) -> Tensor:
        return -softplus(-z)

    @staticmethod
    def _log_sf(z: Tensor) -> Tensor:
        return -softplus(z)

    @staticmethod
    def _cdf(z: Tensor) -> Tensor:
        return torch.sigmoid(z)

    @staticmethod
    def _icdf(u: Tensor) -> Tensor:
        return torch.logit(u)

    @staticmethod
    def _standard_sample(shape: torch.Size, like: Tensor) -> Tensor:
        finfo = torch.finfo(like.dtype)
        u = torch.rand(shape, dtype=like.dtype, device=like.device)
        return torch.logit(u.clamp(min=finfo.tiny, max=1.0 - finfo.eps))

    @staticmethod
    def _g(x: Tensor) -> Tensor:
        return softplus(x)

    @staticmethod
    def _h(x: Tensor) -> Tensor:
        return 2.0 * _dilog_half(torch.sigmoid(x)) + softplus(x).pow(2)


class CensoredNormal(CensoredLocationScale):
    """Normal latent (mean ``μ``, standard deviation ``σ``) clipped to ``[low, high]``.

    Log-cdf and log-survival use :func:`torch.special.log_ndtr` (finite far in the tails).
    Args: see :class:`CensoredLocationScale`.
    """

    latent_variance = 1.0

    @staticmethod
    def _log_pdf(z: Tensor) -> Tensor:
        return -0.5 * z.pow(2) - _LOG_SQRT_2PI

    @staticmethod
    def _log_cdf(z: Tensor) -> Tensor:
        return torch.special.log_ndtr(z)

    @staticmethod
    def _log_sf(z: Tensor) -> Tensor:
        return torch.special.log_ndtr(-z)

    @staticmethod
    def _cdf(z: Tensor) -> Tensor:
        return torch.special.ndtr(z)

    @staticmethod
    def _icdf(u: Tensor) -> Tensor:
        return torch.special.ndtri(u)

    @staticmethod
    def _standard_sample(shape: torch.Size, like: Tensor) -> Tensor:
        return torch.randn(shape, dtype=like.dtype, device=like.device)

    @staticmethod
    def _g(x: Tensor) -> Tensor:
        return x * torch.special.ndtr(x) + torch.exp(-0.5 * x.pow(2) - _LOG_SQRT_2PI)

    @staticmethod
    def _h(x: Tensor) -> Tensor:
        pdf = torch.exp(-0.5 * x.pow(2) - _LOG_SQRT_2PI)
        return (x.pow(2) + 1.0) * torch.special.ndtr(x) + x * pdf


class CensoredHead(LocationScaleHead):
    """A location-scale head whose latent score is censored to ``[low, high]``.

    Raw output 0 is the latent location (:meth:`DistributionHead.location`), raw output 1 the
    latent scale (floored softplus). Subclasses set ``distribution_class``.

    Args:
        min_scale: Floor of the latent scale in score points (keeps every term finite).
        scale_unit: Latent scale per unit of softplus output.
        low: Lower end of the scale.
        high: Upper end of the scale.
        tol: Scores within ``tol`` points of an end count as at the end (censored); 0.5 by
            default, so a score typed as 99.5 counts as 100.
        score_offset: See :class:`~gml.heads.DistributionHead`.
        score_span: See :class:`~gml.heads.DistributionHead`.
    """

    def __init__(
        self,
        min_scale: float,
        scale_unit: float,
        low: float = 0.0,
        high: float = 100.0,
        tol: float = 0.5,
        score_offset: float = 50.0,
        score_span: float = 50.0,
    ):
        super().__init__(min_scale, scale_unit, score_offset, score_span)
        self.low, self.high, self.tol = float(low), float(high), float(tol)

    def make_distribution(self, loc: Tensor, scale: Tensor) -> CensoredLocationScale:
        """The censored distribution of a latent location and scale (its spread calibration
        scales the latent scale, see :meth:`LocationScaleHead.spread_distribution`).

        Shape: loc, scale ``[B]`` → batch shape ``[B]``.
        """
        return self.distribution_class(loc, scale, low=self.low, high=self.high, tol=self.tol)


class CensoredLogisticHead(CensoredHead):
    """Censored logistic scores (latent location ``μ``, scale ``a``). Args: see
    :class:`CensoredHead`."""

    distribution_class = CensoredLogistic

    def __init__(
        self,
        min_scale: float = 0.05,
        scale_unit: float = 10.0,
        low: float = 0.0,
        high: float = 100.0,
        tol: float = 0.5,
        score_offset: float = 50.0,
        score_span: float = 50.0,
    ):
        super().__init__(min_scale, scale_unit, low, high, tol, score_offset, score_span)


class CensoredGaussianHead(CensoredHead):
    """Censored normal scores (latent mean ``μ``, standard deviation ``σ``). Args: see
    :class:`CensoredHead`."""

    distribution_class = CensoredNormal

    def __init__(
        self,
        min_scale: float = 0.05,
        scale_unit: float = 15.0,
        low: float = 0.0,
        high: float = 100.0,
        tol: float = 0.5,
        score_offset: float = 50.0,
        score_span: float = 50.0,
    ):
        super().__init__(min_scale, scale_unit, low, high, tol, score_offset, score_span)
