"""torchmetrics metrics for one test set and the collection the trainer clones per test set.

Every metric's ``update`` takes keyword arguments from one fixed vocabulary (:data:`UPDATE_KWARGS`)
and declares only those it uses, so a whole collection is updated with all of them at once::

    metrics = {name: metric_collection().clone(prefix=f"{name}/") for name in test_sets}
    metrics["demo-music"].update(
        pred_mean=..., pred_std=..., pred_ci=..., subj_mean=..., subj_ci=..., n_listeners=..., nll=...
    )
    metrics["demo-music"].compute()  # {"demo-music/mean_pearson": tensor(...), ...}

(``MetricCollection.update`` passes each metric only the keyword arguments named in its ``update``
signature.) All inputs are ``[B]`` float tensors over a batch of stimuli, except ``nll`` which has
one entry per individual listener score (any shape). Every metric is correct when updated over
several batches and under DDP (only sum / cat / torchmetrics-Pearson states).

NaN conventions: stimuli whose ``subj_ci`` or ``pred_ci`` is not finite (fewer than 2 listeners,
or a point predictor with no spread) are left out of the CI metrics, and :class:`ExcludedFromCI`
counts the ``N < 2`` ones. Correlations with fewer than 2 points or zero variance are NaN, quietly.
A non-finite ``pred_mean`` / ``subj_mean`` or ``nll`` is a failure, not missing data: the metric
that sees it returns NaN.

Float states use the metric's ``dtype`` (float32 unless ``set_dtype`` is called); inputs are cast
to it so that states keep one dtype across batches and ranks.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef
from torchmetrics.utilities import dim_zero_cat

from gml.metrics.functional import ci_squared_error, outlier_counts

__all__ = [
    "CIPearson",
    "CIRMSE",
    "CISpearman",
    "ExcludedFromCI",
    "METRIC_KEYS",
    "MeanNLL",
    "MeanPearson",
    "MeanSpearman",
    "OutlierRatio",
    "TABLE_COLUMNS",
    "UPDATE_KWARGS",
    "metric_collection",
]

#: Keyword arguments a collection ``update`` may receive; each metric uses a subset.
UPDATE_KWARGS: tuple[str, ...] = (
    "pred_mean",
    "pred_std",
    "pred_ci",
    "subj_mean",
    "subj_ci",
    "n_listeners",
    "nll",
)

#: Report columns: ``(key in metric_collection(), header, higher_is_better)``.
TABLE_COLUMNS: list[tuple[str, str, bool | None]] = [
    ("mean_pearson", "Rp mean", True),
    ("mean_spearman", "Rs mean", True),
    ("outlier_ratio", "OR", False),
    ("ci_pearson", "Rp CI", True),
    ("ci_spearman", "Rs CI", True),
    ("ci_rmse", "RMSE CI", False),
    ("nll", "NLL", False),
]

_PEARSON_ZERO_VAR = r".*variance of predictions or target is close to zero.*"
_SPEARMAN_BUFFER = r".*will save all targets and predictions in the buffer.*"


def _pairs(metric: Metric, preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Flatten, cast to the metric dtype and split off non-finite pairs.

    Returns ``(preds, target, n_nonfinite)`` where the first two hold the finite pairs only.
    """
    preds = preds.reshape(-1).to(metric.dtype)
    target = target.reshape(-1).to(metric.dtype)
    if preds.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(preds.shape)} vs {tuple(target.shape)}")
    finite = torch.isfinite(preds) & torch.isfinite(target)
    n_nonfinite = (~finite).sum()
    if n_nonfinite > 0:
        preds, target = preds[finite], target[finite]
    return preds, target, n_nonfinite


def _rankdata(x: Tensor) -> Tensor:
    """1-based ranks with ties given their average rank (``scipy.stats.rankdata`` "average").

    Shape:
        x: ``[n]``; returns ``[n]`` float64 (float32 on devices without float64).
    """
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    dtype = torch.float32 if x.device.type == "mps" else torch.float64
    ends = counts.cumsum(0).to(dtype)
    return (ends - (counts.to(dtype) - 1) / 2)[inverse]


def _pearson_1d(x: Tensor, y: Tensor) -> Tensor:
    """Plain Pearson correlation; NaN for fewer than 2 points or a constant input."""
    if x.numel() < 2:
        return x.new_tensor(float("nan"))
    xc, yc = x - x.mean(), y - y.mean()
    sxx, syy = (xc * xc).sum(), (yc * yc).sum()
    if sxx <= 0 or syy <= 0:
        return x.new_tensor(float("nan"))
    return ((xc * yc).sum() / (sxx * syy).sqrt()).clamp(-1.0, 1.0)


class _Pearson(PearsonCorrCoef):
    """torchmetrics Pearson on two of the update kwargs, with NaN handling (see module doc)."""

    _drop_nonfinite: bool = False
    higher_is_better = True
    n_nonfinite: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(num_outputs=1, **kwargs)
        self.add_state("n_nonfinite", default=torch.tensor(0), dist_reduce_fx="sum")

    def _update_pairs(self, preds: Tensor, target: Tensor) -> None:
        preds, target, n_nonfinite = _pairs(self, preds, target)
        if not self._drop_nonfinite:
            self.n_nonfinite += n_nonfinite
        if preds.numel() > 0:  # an empty batch would put NaN into the running means
            super().update(preds, target)

    def compute(self) -> Tensor:
        """Pearson correlation over all updates (and ranks); NaN if degenerate."""
        if self.n_nonfinite.sum() > 0 or self.n_total.sum() < 2:
            return torch.tensor(float("nan"), dtype=self.mean_x.dtype, device=self.mean_x.device)
        with warnings.catch_warnings():
            # torchmetrics returns NaN for (near-)zero variance but warns; NaN is what we want.
            warnings.filterwarnings("ignore", message=_PEARSON_ZERO_VAR)
            return super().compute()


class _Spearman(SpearmanCorrCoef):
    """torchmetrics Spearman state (cat lists) with tie-exact ranks and NaN handling."""

    _drop_nonfinite: bool = False
    higher_is_better = True
    full_state_update = False
    n_nonfinite: Tensor

    def __init__(self, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            # Storing every stimulus is intended (a test set has at most a few thousand).
            warnings.filterwarnings("ignore", message=_SPEARMAN_BUFFER)
            super().__init__(num_outputs=1, **kwargs)
        self.add_state("n_nonfinite", default=torch.tensor(0), dist_reduce_fx="sum")

    def _update_pairs(self, preds: Tensor, target: Tensor) -> None:
        preds, target, n_nonfinite = _pairs(self, preds, target)
        if not self._drop_nonfinite:
            self.n_nonfinite += n_nonfinite
        if preds.numel() > 0:
            self.preds.append(preds)
            self.target.append(target)

    def compute(self) -> Tensor:
        """Spearman correlation (Pearson of average ranks); NaN if degenerate."""
        nan = torch.tensor(float("nan"), dtype=self.dtype, device=self.n_nonfinite.device)
        if self.n_nonfinite.sum() > 0 or (isinstance(self.preds, list) and not self.preds):
            return nan
        preds, target = dim_zero_cat(self.preds), dim_zero_cat(self.target)
        if preds.numel() < 2:
            return nan
        rho = _pearson_1d(_rankdata(preds), _rankdata(target))
        return rho.to(self.dtype)


class MeanPearson(_Pearson):
    """Pearson correlation of predicted vs subjective mean scores (NaN if any is non-finite)."""

    def update(self, pred_mean: Tensor, subj_mean: Tensor) -> None:
        """Add a batch of stimuli.

        Args:
            pred_mean: predicted mean scores.
            subj_mean: subjective mean scores.

        Shape:
            pred_mean, subj_mean: ``[B]``.
        """
        self._update_pairs(pred_mean, subj_mean)


class MeanSpearman(_Spearman):
    """Spearman rank correlation of predicted vs subjective means (NaN if any is non-finite)."""

    def update(self, pred_mean: Tensor, subj_mean: Tensor) -> None:
        """Add a batch of stimuli.

        Args:
            pred_mean: predicted mean scores.
            subj_mean: subjective mean scores.

        Shape:
            pred_mean, subj_mean: ``[B]``.
        """
        self._update_pairs(pred_mean, subj_mean)


class CIPearson(_Pearson):
    """Pearson correlation of predicted vs subjective CI half-widths over stimuli where both are
    finite; NaN when fewer than 2 such stimuli (e.g. a point predictor passing NaN)."""

    _drop_nonfinite = True

    def update(self, pred_ci: Tensor, subj_ci: Tensor) -> None:
        """Add a batch of stimuli.

        Args:
            pred_ci: predicted CI half-widths (NaN: no prediction).
            subj_ci: subjective CI half-widths (NaN: fewer than 2 listeners).

        Shape:
            pred_ci, subj_ci: ``[B]``.
        """
        self._update_pairs(pred_ci, subj_ci)


class CISpearman(_Spearman):
    """Spearman correlation of predicted vs subjective CI half-widths over stimuli where both
    are finite; NaN when fewer than 2 such stimuli."""

    _drop_nonfinite = True

    def update(self, pred_ci: Tensor, subj_ci: Tensor) -> None:
        """Add a batch of stimuli.

        Args:
            pred_ci: predicted CI half-widths (NaN: no prediction).
            subj_ci: subjective CI half-widths (NaN: fewer than 2 listeners).

        Shape:
            pred_ci, subj_ci: ``[B]``.
        """
        self._update_pairs(pred_ci, subj_ci)


class OutlierRatio(Metric):
    """Fraction of stimuli with ``|pred_mean - subj_mean| > subj_ci`` (outside the subjective
    95 % CI). Stimuli with non-finite ``subj_ci`` are not counted; NaN if none is counted or a
    counted ``pred_mean`` is NaN."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    outliers: Tensor
    counted: Tensor
    nan_pred: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("outliers", "counted", "nan_pred"):
            self.add_state(name, default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, pred_mean: Tensor, subj_mean: Tensor, subj_ci: Tensor) -> None:
        """Add a batch of stimuli.

        Args:
            pred_mean: predicted mean scores.
            subj_mean: subjective mean scores.
            subj_ci: subjective CI half-widths (NaN: fewer than 2 listeners).

        Shape:
            pred_mean, subj_mean, subj_ci: ``[B]``.
        """
        outliers, counted, nan_pred = outlier_counts(pred_mean, subj_mean, subj_ci)
        self.outliers += outliers
        self.counted += counted
        self.nan_pred += nan_pred

    def compute(self) -> Tensor:
        """Outlier ratio in [0, 1], or NaN."""
        if self.counted == 0 or self.nan_pred > 0:
            return torch.tensor(float("nan"), dtype=self.dtype, device=self.counted.device)
        return (self.outliers / self.counted).to(self.dtype)


class CIRMSE(Metric):
    """RMSE of predicted vs subjective CI half-widths over stimuli where both are finite; NaN
    when there is none."""

    is_differentiable = True
    higher_is_better = False
    full_state_update = False
    sum_sq: Tensor
    count: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("sum_sq", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, pred_ci: Tensor, subj_ci: Tensor) -> None:
        """Add a batch of stimuli.

        Args:
            pred_ci: predicted CI half-widths (NaN: no prediction).
            subj_ci: subjective CI half-widths (NaN: fewer than 2 listeners).

        Shape:
            pred_ci, subj_ci: ``[B]``.
        """
        sq, count = ci_squared_error(pred_ci.to(self.dtype), subj_ci.to(self.dtype))
        self.sum_sq += sq
        self.count += count

    def compute(self) -> Tensor:
        """RMSE, or NaN."""
        if self.count == 0:
            return torch.full_like(self.sum_sq, float("nan"))
        return (self.sum_sq / self.count).sqrt()


class MeanNLL(Metric):
    """Mean negative log-likelihood over individual listener scores (NaN if any is NaN, e.g. a
    head that has no density, or if there was none)."""

    is_differentiable = True
    higher_is_better = False
    full_state_update = False
    nll_sum: Tensor
    count: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("nll_sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, nll: Tensor) -> None:
        """Add the NLLs of a batch of individual scores (only real scores, no padding).

        Args:
            nll: per-score negative log-likelihoods.

        Shape:
            nll: any (e.g. ``[S]`` for S scores); flattened.
        """
        self.nll_sum += nll.to(self.dtype).sum()
        self.count += nll.numel()

    def compute(self) -> Tensor:
        """Mean NLL, or NaN."""
        if self.count == 0:
            return torch.full_like(self.nll_sum, float("nan"))
        return self.nll_sum / self.count


class ExcludedFromCI(Metric):
    """Number of stimuli with fewer than 2 listeners (no subjective CI), so reports can say how
    many the CI metrics left out. Returned as a float tensor for logging."""

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    excluded: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("excluded", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, n_listeners: Tensor) -> None:
        """Add a batch of stimuli.

        Args:
            n_listeners: listener count of each stimulus.

        Shape:
            n_listeners: ``[B]``.
        """
        self.excluded += (n_listeners < 2).sum()

    def compute(self) -> Tensor:
        """The count (as ``dtype``)."""
        return self.excluded.to(self.dtype)


#: Keys of :func:`metric_collection`, in order.
METRIC_KEYS: tuple[str, ...] = (
    "mean_pearson",
    "mean_spearman",
    "outlier_ratio",
    "ci_pearson",
    "ci_spearman",
    "ci_rmse",
    "nll",
    "ci_excluded",
)


def metric_collection(prefix: str = "", **kwargs: Any) -> MetricCollection:
    """All per-test-set metrics; clone it per test set (``.clone(prefix="demo-music/")``).

    Compute groups are disabled: torchmetrics merges metrics whose states are equal after the
    first update, and with these kwargs-filtered updates that silently aliases e.g.
    ``ci_spearman`` to ``mean_spearman`` when the first batch has no finite CI (two empty vs
    non-empty list states compare as equal); the saving would be negligible anyway.

    Args:
        prefix: prepended to every key.
        **kwargs: passed to every metric (e.g. ``sync_on_compute=False`` for a computation over
            data one process already holds whole, while other processes wait elsewhere).

    Returns:
        A :class:`~torchmetrics.MetricCollection` with keys :data:`METRIC_KEYS`.
    """
    metrics: dict[str, Metric] = {
        "mean_pearson": MeanPearson(**kwargs),
        "mean_spearman": MeanSpearman(**kwargs),
        "outlier_ratio": OutlierRatio(**kwargs),
        "ci_pearson": CIPearson(**kwargs),
        "ci_spearman": CISpearman(**kwargs),
        "ci_rmse": CIRMSE(**kwargs),
        "nll": MeanNLL(**kwargs),
        "ci_excluded": ExcludedFromCI(**kwargs),
    }
    return MetricCollection(metrics, prefix=prefix or None, compute_groups=False)
