"""Functional forms of the per-test-set metrics that torchmetrics does not provide.

Convention: an entry without a subjective CI (NaN, e.g. a stimulus with fewer than 2 listeners)
or, for CI metrics, without a predicted CI (NaN, e.g. a point predictor) is ignored. A NaN
*predicted mean* is not a missing value but a model failure, so :func:`outlier_ratio` returns NaN
for it rather than hiding it.

The statistics of :mod:`gml.stats` are re-exported here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gml.stats import StimulusStats, ci_halfwidth, stimulus_stats, t_quantile

__all__ = [
    "StimulusStats",
    "ci_halfwidth",
    "ci_rmse",
    "outlier_ratio",
    "stimulus_stats",
    "t_quantile",
]


def outlier_counts(
    pred_mean: Tensor, subj_mean: Tensor, subj_ci: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``(outliers, counted, nan_pred)`` as 0-d long tensors (shared with ``OutlierRatio``).

    A stimulus counts when its ``subj_mean`` and ``subj_ci`` are finite; it is an outlier when
    ``|pred_mean - subj_mean| > subj_ci``; ``nan_pred`` counts counted stimuli whose
    ``pred_mean`` is NaN.
    """
    pred_mean, subj_mean, subj_ci = (t.reshape(-1) for t in (pred_mean, subj_mean, subj_ci))
    if not pred_mean.shape == subj_mean.shape == subj_ci.shape:
        raise ValueError("pred_mean, subj_mean and subj_ci must have the same number of elements")
    counted = torch.isfinite(subj_ci) & torch.isfinite(subj_mean)
    dev = (pred_mean - subj_mean).abs()
    outliers = (counted & (dev > subj_ci)).sum()
    return outliers, counted.sum(), (counted & torch.isnan(dev)).sum()


def ci_squared_error(pred_ci: Tensor, subj_ci: Tensor) -> tuple[Tensor, Tensor]:
    """``(sum of squared differences, count)`` over pairs where both CIs are finite."""
    pred_ci, subj_ci = pred_ci.reshape(-1), subj_ci.reshape(-1)
    if pred_ci.shape != subj_ci.shape:
        raise ValueError("pred_ci and subj_ci must have the same number of elements")
    valid = torch.isfinite(pred_ci) & torch.isfinite(subj_ci)
    diff = torch.where(valid, pred_ci - subj_ci, 0.0)
    return (diff * diff).sum(), valid.sum()


def _nan(like: Tensor) -> Tensor:
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    return torch.tensor(float("nan"), dtype=dtype, device=like.device)


def outlier_ratio(pred_mean: Tensor, subj_mean: Tensor, subj_ci: Tensor) -> Tensor:
    """Fraction of stimuli whose predicted mean lies outside the subjective 95 % CI.

    Outlier: ``|pred_mean - subj_mean| > subj_ci`` (outside the closed interval
    ``[subj_mean - subj_ci, subj_mean + subj_ci]``). Stimuli with NaN ``subj_ci`` (fewer than 2
    listeners) are ignored; NaN if none is left or a counted ``pred_mean`` is NaN.

    Args:
        pred_mean: predicted mean scores.
        subj_mean: subjective mean scores.
        subj_ci: subjective 95 % CI half-widths.

    Returns:
        0-d tensor in ``pred_mean``'s float dtype.

    Shape:
        pred_mean, subj_mean, subj_ci: ``[B]``.
    """
    outliers, counted, nan_pred = outlier_counts(pred_mean, subj_mean, subj_ci)
    if counted == 0 or nan_pred > 0:
        return _nan(pred_mean)
    return (outliers / counted).to(_nan(pred_mean).dtype)


def ci_rmse(pred_ci: Tensor, subj_ci: Tensor) -> Tensor:
    """Root mean squared error between predicted and subjective CI half-widths.

    Only pairs where both are finite count; NaN if none is left (e.g. a point predictor that
    passes ``pred_ci = NaN``).

    Args:
        pred_ci: predicted CI half-widths.
        subj_ci: subjective CI half-widths.

    Returns:
        0-d tensor in ``pred_ci``'s float dtype.

    Shape:
        pred_ci, subj_ci: ``[B]``.
    """
    sq, count = ci_squared_error(pred_ci, subj_ci)
    if count == 0:
        return _nan(pred_ci)
    return (sq / count).sqrt().to(_nan(pred_ci).dtype)
