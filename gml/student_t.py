"""Student's t quantile in numpy alone, for the confidence intervals of :mod:`gml.stats`.

Why not :func:`scipy.special.stdtrit`: importing :mod:`scipy.special` costs a few tenths of a
second, a large share of scoring one pair from a fresh process (``benchmarks/startup.py``), and
the t quantile is all the scoring path needs of it. The quantile here agrees with scipy's to
about 1e-11 relative for every degree of freedom ≥ 1 and every level (``tests/test_stats.py``).

How: for ``df ≥ 1000`` the Cornish–Fisher expansion of the t quantile around the normal one,
to the ``1/df⁴`` term, is exact to float rounding at the levels anyone uses; below, Newton's
method on the upper tail ``P(T > t) = I_x(df/2, 1/2) / 2`` (``x = df / (df + t²)``, the
regularised incomplete beta by its continued fraction), started from that expansion and kept
inside the bracket ``[0, Cauchy quantile]`` (the t quantile falls as ``df`` grows, so ``df = 1``
bounds it).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = ["t_upper_quantile"]

#: From here on the Cornish–Fisher expansion is used as it stands.
_EXPANSION_DF = 1000.0
_TINY = 1e-300


def _log_gamma(x: np.ndarray) -> np.ndarray:
    return np.array([math.lgamma(v) for v in x.ravel()], dtype=np.float64).reshape(x.shape)


def _beta_fraction(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The continued fraction of ``I_x(a, b)`` (modified Lentz), element-wise; converges fast
    for ``x < (a + 1) / (a + b + 2)``."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
    h = d.copy()
    for m in range(1, 2001):
        for aa in (
            m * (b - m) * x / ((qam + 2 * m) * (a + 2 * m)),
            -(a + m) * (qab + m) * x / ((a + 2 * m) * (qap + 2 * m)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
            c = 1.0 + aa / c
            c = np.where(np.abs(c) < _TINY, _TINY, c)
            h = h * d * c
        if np.all(np.abs(d * c - 1.0) < 1e-15):
            break
    return h


def _upper_tail(t: np.ndarray, df: np.ndarray, log_beta: np.ndarray) -> np.ndarray:
    """``P(T > t)`` for ``t ≥ 0``."""
    t2 = t * t
    x, y = df / (df + t2), t2 / (df + t2)  # y = 1 - x without cancellation
    a = 0.5 * df
    with np.errstate(divide="ignore"):  # t = 0: y = 0, the tail is 1/2
        front = np.exp(a * np.log(x) + 0.5 * np.log(y) - log_beta)
    direct = x < (a + 1.0) / (a + 2.5)
    half = np.full_like(a, 0.5)
    i_direct = front * _beta_fraction(a, half, np.where(direct, x, 0.0)) / a
    i_mirror = 1.0 - front * _beta_fraction(half, a, np.where(direct, 0.0, y)) / 0.5
    return 0.5 * np.where(direct, i_direct, i_mirror)


def _density(t: np.ndarray, df: np.ndarray, log_norm: np.ndarray) -> np.ndarray:
    return np.exp(log_norm - 0.5 * (df + 1.0) * np.log1p(t * t / df))


def t_upper_quantile(df: np.ndarray, p: float) -> np.ndarray:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, for ``p`` in
    ``[0.5, 1)`` and ``df ≥ 1`` (element-wise, float64).

    Shape:
        df: any → the same shape.
    """
    df = np.asarray(df, dtype=np.float64)
    if not 0.5 <= p < 1.0:
        raise ValueError(f"p must lie in [0.5, 1), got {p}")
    if df.size and not np.all(df >= 1.0):
        raise ValueError("degrees of freedom must be 1 or more")
    z = NormalDist().inv_cdf(p)
    z2 = z * z
    g = (  # Cornish–Fisher coefficients of 1/df, ..., 1/df⁴ (Abramowitz & Stegun 26.7.5)
        z * (z2 + 1) / 4,
        z * ((5 * z2 + 16) * z2 + 3) / 96,
        z * (((3 * z2 + 19) * z2 + 17) * z2 - 15) / 384,
        z * ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) / 92160,
    )
    uniq, back = np.unique(df, return_inverse=True)  # listener counts repeat: solve each once
    inv = 1.0 / uniq
    out = z + inv * (g[0] + inv * (g[1] + inv * (g[2] + inv * g[3])))
    small = uniq < _EXPANSION_DF
    if p > 0.5 and small.any():
        out[small] = _solve(uniq[small], p, out[small])
    return out[back].reshape(df.shape)


def _solve(df: np.ndarray, p: float, start: np.ndarray) -> np.ndarray:
    """Safeguarded Newton on ``P(T > t) = 1 - p`` from ``start``."""
    a = 0.5 * df
    lg_a, lg_a1 = _log_gamma(a), _log_gamma(a + 0.5)
    log_beta = lg_a + math.lgamma(0.5) - lg_a1
    log_norm = lg_a1 - lg_a - 0.5 * np.log(df * math.pi)
    lo = np.zeros_like(df)
    hi = np.full_like(df, math.tan(math.pi * (p - 0.5)))
    t = np.clip(start, lo, hi)
    for _ in range(100):
        excess = _upper_tail(t, df, log_beta) - (1.0 - p)  # falls as t grows
        lo = np.where(excess > 0, t, lo)
        hi = np.where(excess <= 0, t, hi)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            new = t + excess / _density(t, df, log_norm)
        outside = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(outside, 0.5 * (lo + hi), new)  # a step out of the bracket: bisect
        done = np.abs(new - t) <= 1e-14 * new
        t = new
        if np.all(done):
            break
    return t
