"""Mixture head: K logistic or gaussian components with learned weights, for split panels.

Some stimuli split a panel (part of the listeners hear an artefact, part do not): a single
location-scale distribution then sits between the groups, where no listener is. A mixture of
``K`` components can put its mass on each group.

**Raw outputs** (``num_params = 3K``, in blocks): ``[0, K)`` component locations
(:meth:`~gml.heads.DistributionHead.location`), ``[K, 2K)`` scales (floored softplus),
``[2K, 3K)`` weight logits (softmax). The projection's location biases start spread over
``±spread`` (raw units, so scores ``50 ± 50·spread``), so the components start apart rather
than identical.

**Distribution.** :class:`LocationScaleMixture`, a :class:`torch.distributions.MixtureSameFamily`
with batch shape ``[B]`` and a component dim ``K``: mean, variance (law of total variance), exact
``log_prob`` (log-sum-exp) and ``cdf``; no ``icdf`` (quantiles by bisection on ``cdf``). It can
itself be the component distribution of another ``MixtureSameFamily`` (the listener's mixture
over analysis windows): ``MixtureSameFamily`` pads the value by one dim, and this mixture pads
it once more for its own component dim; ``expand`` is supported.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.distributions import Categorical, MixtureSameFamily, Normal

from gml.heads.base import DistributionHead, positive_scale
from gml.heads.distributions import Logistic

Family = Literal["logistic", "gaussian"]
_FAMILIES = {"logistic": Logistic, "gaussian": Normal}
_SCALE_UNIT = {"logistic": 10.0, "gaussian": 15.0}  # as LogisticHead / GaussianHead


class LocationScaleMixture(MixtureSameFamily):
    """Mixture of ``K`` logistic or normal components per batch element.

    Args:
        logits: Unnormalised log-weights. Shape: ``[*B, K]``.
        loc: Component locations in score points. Shape: ``[*B, K]``.
        scale: Component scales (``a`` for logistic, ``σ`` for gaussian). Shape: ``[*B, K]``.
        family: ``"logistic"`` or ``"gaussian"``.

    The batch shape is ``[*B]``.
    """

    def __init__(
        self,
        logits: Tensor,
        loc: Tensor,
        scale: Tensor,
        family: Family = "logistic",
        validate_args: bool | None = None,
    ):
        if family not in _FAMILIES:
            raise ValueError(f"family must be one of {sorted(_FAMILIES)}, got {family!r}")
        self.family = family
        super().__init__(
            Categorical(logits=logits, validate_args=validate_args),
            _FAMILIES[family](loc, scale, validate_args=validate_args),
            validate_args=validate_args,
        )

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LocationScaleMixture, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.family = self.family
        return new

    @property
    def weights(self) -> Tensor:
        """Component weights. Shape: ``[*B, K]``."""
        return self.mixture_distribution.probs

    @property
    def loc(self) -> Tensor:
        """Component locations. Shape: ``[*B, K]``."""
        return self.component_distribution.loc

    @property
    def scale(self) -> Tensor:
        """Component scales. Shape: ``[*B, K]``."""
        return self.component_distribution.scale


class MixtureHead(DistributionHead):
    """``K`` location-scale components with softmax weights (module docstring).

    Args:
        components: ``K``, the number of components (``num_params = 3K``).
        base: Component family, ``"logistic"`` or ``"gaussian"``.
        min_scale: Floor of each component's scale in score points.
        scale_unit: Scale per unit of softplus output (default: that of the matching
            single-component head, 10 for logistic, 15 for gaussian).
        spread: Initial raw location biases of the components, evenly over ``±spread``.
        score_offset: See :class:`~gml.heads.DistributionHead`.
        score_span: See :class:`~gml.heads.DistributionHead`.
    """

    def __init__(
        self,
        components: int = 2,
        base: Family = "logistic",
        min_scale: float = 0.05,
        scale_unit: float | None = None,
        spread: float = 0.4,
        score_offset: float = 50.0,
        score_span: float = 50.0,
    ):
        super().__init__(score_offset=score_offset, score_span=score_span)
        if int(components) < 1:
            raise ValueError(f"components must be at least 1, got {components}")
        if base not in _FAMILIES:
            raise ValueError(f"base must be one of {sorted(_FAMILIES)}, got {base!r}")
        self.components = int(components)
        self.base = base
        self.min_scale = float(min_scale)
        self.scale_unit = float(_SCALE_UNIT[base] if scale_unit is None else scale_unit)
        self.spread = float(spread)
        # an instance attribute, set before build() sizes the projection with it
        self.num_params = 3 * self.components

    def build(self, in_features: int) -> None:
        """Create the projection; spread the components' initial locations."""
        super().build(in_features)
        assert self.proj is not None
        with torch.no_grad():
            k = self.components
            start = torch.linspace(-self.spread, self.spread, k) if k > 1 else torch.zeros(1)
            self.proj.bias[:k].copy_(start)

    def distribution(self, params: Tensor) -> LocationScaleMixture:
        """Shape: params ``[B, 3K]`` → batch shape ``[B]`` (component dim ``K``)."""
        k = self.components
        loc = self.location(params[..., :k])
        scale = positive_scale(params[..., k : 2 * k], self.min_scale, self.scale_unit)
        return LocationScaleMixture(params[..., 2 * k :], loc, scale, family=self.base)
