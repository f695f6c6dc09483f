"""The statistics of predicted score distributions, as pure functions: quantiles, the
figures of excerpts' window mixtures computed for many pairs at once, and simulated panels.

Scores outside 0–100: the logistic and gaussian heads have unbounded support, while a MUSHRA
slider stops at 0 and 100. Quantiles reported are those of the score on the slider (the
model's quantiles clipped to 0–100, exact for a rating that saturates at the ends); simulated
listeners' scores are clipped the same way, so simulated panels look like real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, MixtureSameFamily

from gml.features.device import values_on
from gml.heads import EqualMixture
from gml.stats import SCORE_RANGE, ci_halfwidth

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FIGURES",
    "QUANTILES",
    "SCALE",
    "Panels",
    "excerpt_distribution",
    "mixture_figures",
    "quantiles",
    "simulate_panels",
    "slider_interval",
]

#: Probabilities of the reported quantiles (5, 25, 50, 75, 95 %).
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SCALE = SCORE_RANGE
#: Rows of :func:`mixture_figures`, in order.
FIGURES = (
    "mean",
    "std",
    "model_std",
    "p_outside",
    "slider_mean",
    "slider_std",
    *(f"q{round(p * 100):02d}" for p in QUANTILES),
)


def quantiles(dist: Distribution, probs: Sequence[float] = QUANTILES) -> Tensor:
    """Quantiles of a scalar-batch score distribution, by bisection on its CDF (works for
    mixtures, which have no ``icdf``); NaN when the distribution has no spread or no CDF.

    Shape:
        returns ``[len(probs)]`` (float64).
    """
    mean, std = dist.mean.double().reshape(1), dist.stddev.double().reshape(1)
    dtype = dist.mean.dtype
    return bisect_quantiles(lambda x: dist.cdf(x.to(dtype)[:, 0]).unsqueeze(1), mean, std, probs)[
        :, 0
    ]


def bisect_quantiles(
    cdf: Callable[[Tensor], Tensor], mean: Tensor, std: Tensor, probs: Sequence[float]
) -> Tensor:
    """Quantiles of several distributions at once, by bisection on their CDFs between
    ``mean ± (40 std + 1)``; NaN where the mean or spread is not finite or there is no CDF.

    Shape:
        cdf: ``[Q, D]`` values → ``[Q, D]`` probabilities; mean, std: ``[D]``;
        returns ``[Q, D]`` (float64).
    """
    p = torch.as_tensor(probs, dtype=torch.float64).unsqueeze(1).to(mean.device)
    ok = torch.isfinite(mean) & torch.isfinite(std)
    mean, std = torch.where(ok, mean, 0.0), torch.where(ok, std, 1.0)
    lo = (mean - 40 * std - 1).expand(len(probs), -1)
    hi = (mean + 40 * std + 1).expand(len(probs), -1)
    try:
        # 80 std + 2 points shrunk 2^-40: under 1e-8 points for any std below 100
        for _ in range(40):
            mid = (lo + hi) / 2
            below = cdf(mid).double() < p
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    except NotImplementedError:
        return mean.new_full((len(probs), len(mean)), float("nan"), dtype=torch.float64)
    return torch.where(ok, (lo + hi) / 2, float("nan"))


def simulate_panels(
    dist: Distribution, n_listeners: int, n_panels: int, seed: int | None = 0
) -> np.ndarray:
    """Individual scores of simulated listening-test panels, clipped to the 0–100 scale.

    Each simulated listener draws one score independently from ``dist`` (the model has no
    listener identity); a draw outside 0–100 becomes 0 or 100, as on a MUSHRA slider.

    Args:
        dist: A scalar-batch score distribution.
        n_listeners: Listeners per panel.
        n_panels: Number of panels.
        seed: Seed of the draws (``None``: torch's global generator).

    Shape:
        returns ``[n_panels, n_listeners]`` (float64).
    """
    if n_listeners < 1 or n_panels < 1:
        raise ValueError("n_listeners and n_panels must be at least 1")
    devices = [dist.mean.device] if dist.mean.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        draws = dist.sample((n_panels, n_listeners))
    return np.clip(draws.double().cpu().numpy(), *SCALE)


@dataclass
class Panels:
    """Simulated listening-test panels of one pair (see :func:`simulate_panels`).

    Attributes:
        scores: ``[n_panels, n_listeners]`` individual scores on the 0–100 scale.
        means: ``[n_panels]`` each panel's mean score.
        ci95: ``[n_panels]`` each panel's t-based 95 % CI half-width (sample std, ddof 1).
    """

    scores: np.ndarray
    means: np.ndarray = field(init=False)
    ci95: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.scores.shape[1]
        self.means = self.scores.mean(axis=1)
        std = self.scores.std(axis=1, ddof=1) if n > 1 else np.full(len(self.scores), np.nan)
        self.ci95 = ci_halfwidth(std, n)

    def summary(self) -> pd.DataFrame:
        """One row per panel: ``panel, mean, ci95, low, high``; ``low, high`` is the panel's
        CI, ``mean ∓ ci95``, cut at 0 and 100 (as :func:`slider_interval`)."""
        import pandas as pd  # a table only when asked for (start-up of one pair)

        return pd.DataFrame(
            {
                "panel": np.arange(len(self.means)),
                "mean": self.means,
                "ci95": self.ci95,
                "low": np.clip(self.means - self.ci95, *SCALE),
                "high": np.clip(self.means + self.ci95, *SCALE),
            }
        )


def slider_interval(mean: float, std: float, n_listeners: int) -> tuple[float, float]:
    """The 95 % CI a test with ``n_listeners`` listeners would report, from the mean and SD
    of scores as a slider records them (see :attr:`Prediction.ci95_low`): ``mean ±
    t(0.975, N − 1) · std / √N``, cut at 0 and 100 where it reaches beyond them (the mean of
    slider scores cannot; cutting a confidence interval to the values possible keeps its
    coverage). NaN where ``mean`` or ``std`` is."""
    half = ci_halfwidth(std, n_listeners)
    return float(np.clip(mean - half, *SCALE)), float(np.clip(mean + half, *SCALE))


def excerpt_distribution(
    spread_distributions: Sequence[Callable[[Tensor], Distribution]], params: Tensor
) -> Distribution:
    """An excerpt's distribution from its windows' head parameters: per member the
    equal-weight mixture over windows; for an ensemble, the equal mixture of members.

    Args:
        spread_distributions: Per member, raw head parameters → its (calibrated)
            distribution (``GMLModule.spread_distribution``).
        params: The windows' parameters.

    Shape:
        params: ``[W, members, num_params]`` → a distribution with batch shape ``[]``.
    """
    per_member = []
    for k, spread in enumerate(spread_distributions):
        weights = Categorical(logits=torch.zeros(params.shape[0], device=params.device))
        per_member.append(MixtureSameFamily(weights, spread(params[:, k]), validate_args=False))
    return per_member[0] if len(per_member) == 1 else EqualMixture(per_member)


#: Points of the midpoint rule over the scale that gives the slider scores' moments (a step
#: of half a point: the SD is off by well under 0.01 points).
SLIDER_GRID = 200


def _slider_moments(
    comps: list[Distribution],
    per_pair: Callable[[Tensor], Tensor],
    owner: Tensor,
    mean: Tensor,
    std: Tensor,
    grid: int,
) -> tuple[Tensor, Tensor]:
    """Mean and listener SD of the scores as a slider records them: each member's
    distribution clipped to 0–100 (a draw below 0 is a 0, above 100 a 100). For ``Y`` on
    ``[a, b]``, ``E[Y] = a + ∫ P(Y > x) dx`` and ``E[Y²] = a² + ∫ 2x P(Y > x) dx`` over
    ``(a, b)``, by the midpoint rule on ``grid`` points; for an ensemble, the members' means
    and variances are averaged (as for ``std``). Without a CDF, the clamped ``mean`` and
    ``std``.

    Shape:
        comps: per member, the windows' distributions ``[N]``; owner: ``[N]``;
        mean, std: ``[pairs]`` → two ``[pairs]`` (float64).
    """
    lo, hi = SCALE
    step = (hi - lo) / grid
    x = lo + step * (torch.arange(grid, dtype=torch.float64) + 0.5)
    x = x.to(mean.device)[:, None]  # [G, 1]
    try:
        means, variances = [], []
        for c in comps:
            at = x.to(c.mean.dtype).expand(-1, owner.numel())  # [G, N]
            above = 1.0 - per_pair(c.cdf(at))  # [G, pairs]: P(Y > x)
            m = lo + step * above.sum(0)
            second = lo**2 + step * (2.0 * x * above).sum(0)
            means.append(m)
            variances.append((second - m**2).clamp_min(0.0))
    except NotImplementedError:
        return mean.clamp(lo, hi), std
    return torch.stack(means).mean(0), torch.stack(variances).mean(0).sqrt()


def mixture_figures(
    comps: list[Distribution], counts: list[int], slider_grid: int = SLIDER_GRID
) -> Tensor:
    """The figures of many excerpts' distributions at once, each the equal-weight mixture of
    its windows' distributions (for an ensemble, the equal mixture of the members' mixtures,
    as :func:`excerpt_distribution`).

    Segment sums over all windows and one bisection for every pair and quantile give the
    figures of the mixture objects to float rounding, without building them pair by pair
    (whose cost per pair exceeds the model's on a GPU).

    Args:
        comps: Per member, the distributions of every window (pairs' windows consecutive).
        counts: Windows of each pair.
        slider_grid: Points of the integral giving the slider scores' moments.

    Returns:
        The rows of :data:`FIGURES`: the mixture's mean (not clamped), listener SD, the
        members' disagreement (NaN for one model), the probability outside 0–100, the mean
        and SD of scores as a slider records them, and the quantiles of :data:`QUANTILES`
        (not clipped; NaN without a CDF).

    Shape:
        comps: each with batch shape ``[N]``, ``N = sum(counts)`` → ``[len(FIGURES), pairs]``
        (float64, on the components' device).
    """
    device = comps[0].mean.device
    pairs = len(counts)
    count = values_on(device, counts)
    owner = values_on(device, [i for i, c in enumerate(counts) for _ in range(c)])  # [N]
    weight = 1.0 / count[owner].double()  # each window's weight in its pair's mixture

    def per_pair(x: Tensor) -> Tensor:  # [..., N] -> [..., pairs]: window-weighted sums
        out = x.new_zeros(*x.shape[:-1], pairs, dtype=torch.float64)
        return out.index_add_(-1, owner, x.double() * weight)

    mu = torch.stack([c.mean for c in comps])  # [members, N]
    var = torch.stack([c.variance for c in comps])
    member_mean = per_pair(mu)  # [members, pairs]
    # a mixture's variance: mean of the windows' variances + variance of their means
    member_var = per_pair(var) + per_pair((mu.double() - member_mean[:, owner]) ** 2)
    mean = member_mean.mean(0)
    if len(comps) > 1:  # EqualMixture: listener spread and model disagreement
        std = member_var.mean(0).sqrt()
        model_std = member_mean.std(0, unbiased=False)
        total_std = (std**2 + model_std**2).sqrt()
    else:
        std = total_std = member_var[0].sqrt()
        model_std = torch.full_like(mean, float("nan"))

    def cdf(x: Tensor) -> Tensor:  # x [Q, pairs] -> each pair's mixture CDF [Q, pairs]
        at = x.to(mu.dtype)[:, owner]  # [Q, N]: each window at its pair's value
        return sum(per_pair(c.cdf(at)) for c in comps) / len(comps)

    try:
        below = torch.nextafter(torch.tensor(SCALE[0]), torch.tensor(-1.0)).item()
        bounds = mean.new_tensor([below, float(SCALE[1])])[:, None].expand(2, pairs)
        at_bounds = cdf(bounds)
        # below 0 is P(X < 0), not P(X <= 0): a censored head's mass at exactly 0 is inside
        p_out = at_bounds[0] + 1 - at_bounds[1]
    except NotImplementedError:
        p_out = torch.full_like(mean, float("nan"))
    q = bisect_quantiles(cdf, mean, total_std, QUANTILES)  # [Q, pairs]
    slider_mean, slider_std = _slider_moments(comps, per_pair, owner, mean, std, slider_grid)
    rows = [mean, std, model_std, p_out.double(), slider_mean, slider_std]
    return torch.cat([torch.stack(rows), q])
