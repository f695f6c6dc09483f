"""The distribution-head contract: features in, a distribution of MUSHRA scores out."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from gml.heads.distributions import SpreadScaled
from gml.stats import ci_halfwidth

Target = Literal["scores", "mean"]


class DistributionHead(nn.Module):
    """Base class of every head. Subclass it in your own file and select it by ``class_path``.

    A head owns the last linear layer (``in_features → num_params``) and turns its raw outputs
    into a :class:`torch.distributions.Distribution` in MUSHRA units (0–100) with at least
    ``mean``, ``stddev``, ``log_prob``, ``sample`` and, where closed form, ``cdf``. The loss is
    defined once, here: the mean negative log-likelihood of the individual scores.

    Subclasses set ``num_params`` and implement :meth:`distribution`. A head whose loss is not a
    likelihood (the non-GML baseline) overrides :meth:`loss` and sets ``target = "mean"`` so the
    data module hands it per-stimulus mean scores instead of individual ones.

    The linear layer is created by :meth:`build` once the backbone's feature width is known
    (``GMLModule`` calls it), so a head's YAML needs no width.

    Args:
        score_offset: Raw location 0 maps to this score; the middle of the MUSHRA scale by default.
        score_span: Raw location ±1 maps to ``score_offset ± score_span``: keeps raw outputs O(1).
    """

    num_params: ClassVar[int] = 2
    target: ClassVar[Target] = "scores"

    def __init__(self, score_offset: float = 50.0, score_span: float = 50.0):
        super().__init__()
        self.score_offset = float(score_offset)
        self.score_span = float(score_span)
        self.proj: nn.Linear | None = None

    def build(self, in_features: int) -> None:
        """Create the projection from backbone features to distribution parameters."""
        self.proj = nn.Linear(in_features, self.num_params)

    def location(self, raw: Tensor) -> Tensor:
        """Map a raw network output to a score location (affine, so gradients stay O(1))."""
        return self.score_offset + self.score_span * raw

    def distribution(self, params: Tensor) -> Distribution:
        """Turn raw parameters into a distribution.

        Shape:
            params: ``[B, num_params]``; the distribution's batch shape is ``[B]``.
        """
        raise NotImplementedError  # abstract: each head defines its distribution

    def spread_distribution(self, params: Tensor, factor: float) -> Distribution:
        """The distribution for raw parameters with its spread multiplied by ``factor`` (a
        calibrated spread), scaled around its mean by :class:`SpreadScaled`. Location-scale heads
        override it with the exact form (the scale parameter times ``factor``).

        Shape:
            params: ``[B, num_params]`` → distribution with batch shape ``[B]``.
        """
        return SpreadScaled(self.distribution(params), factor)

    def forward(self, features: Tensor) -> Distribution:
        """Predict the score distribution of each stimulus.

        Shape:
            features: ``[B, D]`` → distribution with batch shape ``[B]``.
        """
        if self.proj is None:
            raise RuntimeError(f"{type(self).__name__}.build(in_features) was not called")
        return self.distribution(self.proj(features))

    def nll(self, dist: Distribution, scores: Tensor, mask: Tensor | None = None) -> Tensor:
        """Per-stimulus mean negative log-likelihood of its listeners' scores.

        Shape:
            scores: ``[B]`` (one score each) or ``[B, N]`` (N scores each, padded);
            mask: ``[B, N]`` bool, True for real scores; returns ``[B]``.
        """
        if scores.dim() == 1:
            return -dist.log_prob(scores)
        # log_prob broadcasts over leading sample dims: put the listener dim first.
        lp = dist.log_prob(scores.transpose(0, 1)).transpose(0, 1)
        if mask is None:
            return -lp.mean(dim=1)
        lp = torch.where(mask, lp, torch.zeros_like(lp))
        return -lp.sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def loss(self, dist: Distribution, targets: Tensor, mask: Tensor | None = None) -> Tensor:
        """Training loss: mean NLL of individual scores (paper eq. 2 / 3), one number."""
        return self.nll(dist, targets, mask).mean()

    @staticmethod
    def ci95(dist: Distribution, n_listeners: Tensor | int) -> Tensor:
        """t-based 95 % CI half-width a test with ``n_listeners`` would give, from ``stddev``.

        Shape:
            n_listeners: scalar or ``[B]``; returns ``[B]``.
        """
        return ci_halfwidth(dist.stddev, n_listeners)


def positive_scale(raw: Tensor, min_scale: float, unit: float) -> Tensor:
    """Softplus with a floor: strictly positive and finite for any finite ``raw``.

    ``unit`` sets the scale at ``raw = 0`` to ``min_scale + unit·log 2`` (a sensible start in
    MUSHRA points rather than a scale of ~1).
    """
    return min_scale + unit * torch.nn.functional.softplus(raw)
