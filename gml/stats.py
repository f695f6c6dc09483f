"""Plain statistics shared by heads, metrics, reports and predict.

Definitions (as in the GML paper and README, "What is reported"): for a stimulus with ``N``
listener scores, the subjective mean, the sample standard deviation ``s`` (ddof 1) and the
two-sided t-based 95 % confidence-interval half-width ``t((1 + level) / 2, N - 1) · s / √N``.
The predicted CI half-width uses the same formula with the model's standard deviation and the
same ``N``. Stimuli with ``N < 2`` have no CI: every function here returns NaN for them.

Only torch and numpy are used (the t quantile is :mod:`gml.student_t`'s, not scipy's: importing
scipy.special would cost a fresh process a few tenths of a second). Functions accept Python numbers, numpy arrays or torch
tensors and return the same kind (a tensor as soon as one argument is a tensor).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from gml.student_t import t_upper_quantile

if TYPE_CHECKING:  # torch is imported only where a tensor is handled: reading a manifest
    import torch  # (pandas in, pandas out) must not pay for it
    from torch import Tensor

__all__ = [
    "SCORE_RANGE",
    "STIMULUS_KEY",
    "StimulusStats",
    "ci_halfwidth",
    "stimulus_stats",
    "stimulus_table",
    "t_quantile",
]

#: The MUSHRA scale: a slider from 0 to 100.
SCORE_RANGE: tuple[float, float] = (0.0, 100.0)

#: The columns that identify a stimulus: one condition of one item in one listening test.
STIMULUS_KEY: tuple[str, str, str] = ("test", "item", "condition")

ArrayLike = "int | float | np.ndarray | Tensor"


def _is_tensor(x: object) -> bool:
    """Whether ``x`` is a torch tensor, without importing torch (none exists before it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return level


def _t_ppf(n: np.ndarray, level: float) -> np.ndarray:
    """Two-sided t quantile for ``n`` listeners in float64; NaN where ``n < 2`` or ``n`` is NaN."""
    n = np.asarray(n, dtype=np.float64)
    valid = n >= 2  # False for NaN
    q = t_upper_quantile(np.where(valid, n - 1.0, 1.0), 0.5 * (1.0 + level))
    return np.where(valid, q, np.nan)


def _ci_factor(n: np.ndarray, level: float) -> np.ndarray:
    """``t_quantile(n) / sqrt(n)`` in float64; NaN where ``n < 2``."""
    n = np.asarray(n, dtype=np.float64)
    valid = n >= 2
    return np.where(valid, _t_ppf(n, level) / np.sqrt(np.where(valid, n, 1.0)), np.nan)


def _float_dtype(t: Tensor) -> torch.dtype:
    import torch

    return t.dtype if t.is_floating_point() else torch.get_default_dtype()


def t_quantile(n_listeners: ArrayLike, level: float = 0.95) -> ArrayLike:
    """Two-sided Student-t quantile ``t((1 + level) / 2, N - 1)`` for ``N`` listeners.

    Computed in float64 by :func:`gml.student_t.t_upper_quantile` (a tensor input is copied to the CPU for
    this, which synchronises a CUDA stream; the values are few and cheap).

    Args:
        n_listeners: number of listeners ``N`` (need not be integer). Python number, numpy array
            or tensor.
        level: two-sided confidence level in (0, 1).

    Returns:
        The quantile, NaN where ``N < 2``: a Python float for a number input, a float64 numpy
        array for array input, or a tensor on the device of ``n_listeners`` with its dtype (the
        default float dtype if ``n_listeners`` is an integer tensor).

    Shape:
        n_listeners: any; the output has the same shape.
    """
    level = _check_level(level)
    if _is_tensor(n_listeners):
        import torch

        q = _t_ppf(n_listeners.detach().cpu().double().numpy(), level)
        return torch.as_tensor(q, dtype=_float_dtype(n_listeners), device=n_listeners.device)
    if np.ndim(n_listeners) == 0 and not isinstance(n_listeners, np.ndarray):
        return float(_t_ppf(np.asarray(n_listeners), level))
    return _t_ppf(np.asarray(n_listeners), level)


def ci_halfwidth(std: ArrayLike, n_listeners: ArrayLike, level: float = 0.95) -> ArrayLike:
    """t-based CI half-width ``t_quantile(N, level) · std / sqrt(N)``.

    Used both for subjective CIs (``std`` = sample std of the scores) and predicted CIs
    (``std`` = the model's standard deviation, ``N`` = the stimulus's listener count).

    Args:
        std: standard deviation(s).
        n_listeners: number of listeners ``N``; NaN results where ``N < 2``.
        level: two-sided confidence level in (0, 1).

    Returns:
        A tensor if either argument is a tensor (on ``std``'s device, in ``std``'s float dtype;
        differentiable with respect to ``std``: the factor is a constant, and the gradient
        is 0 where ``N < 2``), else a float64 numpy
        array, or a Python float when both inputs are scalars.

    Shape:
        std: any shape broadcastable with ``n_listeners``.
        n_listeners: any shape broadcastable with ``std``; the output has the broadcast shape.
    """
    level = _check_level(level)
    if _is_tensor(std) or _is_tensor(n_listeners):
        import torch

        if _is_tensor(std):
            device, dtype = std.device, _float_dtype(std)
        else:
            device, dtype = n_listeners.device, _float_dtype(n_listeners)
        n_np = (
            n_listeners.detach().cpu().double().numpy()
            if _is_tensor(n_listeners)
            else np.asarray(n_listeners, dtype=np.float64)
        )
        factor_np = _ci_factor(n_np, level)
        valid = torch.as_tensor(np.isfinite(factor_np), device=device)
        factor = torch.as_tensor(np.nan_to_num(factor_np, nan=0.0), dtype=dtype, device=device)
        std_t = std.to(dtype) if _is_tensor(std) else torch.as_tensor(std, dtype=dtype)
        # where() rather than std * NaN: the gradient is 0, not NaN, where N < 2
        return torch.where(valid, std_t.to(device) * factor, torch.nan)
    out = np.asarray(std, dtype=np.float64) * _ci_factor(np.asarray(n_listeners), level)
    scalar_in = not isinstance(std, np.ndarray) and not isinstance(n_listeners, np.ndarray)
    if scalar_in and np.ndim(out) == 0:
        return float(out)
    return out


class StimulusStats(NamedTuple):
    """Per-stimulus statistics of the listener scores (all ``[B]``).

    Attributes:
        n: number of real scores (long).
        mean: mean of the scores; NaN where ``n == 0``.
        std: sample standard deviation (ddof 1); NaN where ``n < 2``.
        ci95: t-based 95 % CI half-width; NaN where ``n < 2``.
    """

    n: Tensor
    mean: Tensor
    std: Tensor
    ci95: Tensor


def stimulus_stats(scores: Tensor, mask: Tensor | None = None) -> StimulusStats:
    """Listener count, mean, sample std and 95 % CI half-width of each stimulus (vectorised).

    Args:
        scores: padded listener scores, one row per stimulus.
        mask: True where ``scores`` holds a real score. ``None`` means every non-NaN entry is real
            (so both NaN padding and a full matrix work without a mask).

    Returns:
        :class:`StimulusStats` ``(n, mean, std, ci95)``; floats in ``scores``' float dtype (the
        default float dtype for integer scores). Two-pass (centred) variance, so large offsets
        do not lose precision.

    Shape:
        scores: ``[B, Nmax]``.
        mask: ``[B, Nmax]`` bool, or ``None``.
        Output fields: ``[B]`` each.
    """
    import torch

    if scores.ndim != 2:
        raise ValueError(f"scores must be [B, Nmax], got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        scores = scores.to(torch.get_default_dtype())
    if mask is None:
        mask = ~torch.isnan(scores)
    else:
        if mask.shape != scores.shape:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} != scores shape {tuple(scores.shape)}"
            )
        mask = mask.to(torch.bool)
    zero = scores.new_zeros(())
    n = mask.sum(dim=1)
    n_f = n.to(scores.dtype)
    nan = scores.new_full((), float("nan"))
    mean = torch.where(n > 0, torch.where(mask, scores, zero).sum(dim=1) / n_f.clamp(min=1), nan)
    centred = torch.where(mask, scores - mean.unsqueeze(1), zero)
    var = (centred * centred).sum(dim=1) / (n_f - 1).clamp(min=1)
    std = torch.where(n > 1, var.sqrt(), nan)
    return StimulusStats(n=n, mean=mean, std=std, ci95=ci_halfwidth(std, n))


def stimulus_table(ratings, extra: dict | None = None):
    """Per-stimulus statistics of a table of individual ratings (pandas).

    Args:
        ratings: DataFrame with the :data:`STIMULUS_KEY` columns and ``score``.
        extra: More named aggregations for ``DataFrame.groupby(...).agg`` (e.g.
            ``{"reference": ("reference", "first")}``).

    Returns:
        One row per stimulus, ordered by the key: the key columns, ``extra``, ``n_listeners``,
        ``mean``, ``std`` (ddof 1; NaN for one listener) and ``ci95`` (:func:`ci_halfwidth`).
    """
    g = ratings.groupby(list(STIMULUS_KEY), sort=True)
    table = g.agg(
        **(extra or {}),
        n_listeners=("score", "size"),
        mean=("score", "mean"),
        std=("score", "std"),
    )
    table["ci95"] = ci_halfwidth(table["std"].to_numpy(), table["n_listeners"].to_numpy())
    return table.reset_index()
