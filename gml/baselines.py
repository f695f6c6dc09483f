"""Subsets and baselines that make a test's figures readable.

A correlation of 0.8 or a CI RMSE of 3 means little alone. Beside the model, every evaluation
reports, from the same partition and in the same columns:

* the **subsets** ``all`` and ``systems`` (without the hidden reference and the anchors, when
  the manifest's ``role`` column marks them; see :data:`gml.data.manifest.SUBSETS`);
* the **constant spread**: one listener SD for every stimulus, the pooled SD (root mean of the
  per-stimulus variances) of the training stimuli of the same subset; it predicts CIs only;
* the **condition oracle**: each test stimulus gets the mean score and pooled SD of its
  condition over the training items of its listening test (a logistic with those moments for
  the NLL and coverage). It knows the system label, which a listener of audio does not: an upper
  reference where conditions recur across items. A condition without a training stimulus gets
  the training stimuli's overall mean and SD (counted as ``oracle_fallback``);
* the **noise ceiling / floor**: what a predictor of the true population mean and spread would
  reach, given that each observed mean and CI comes from only ``N`` listeners. Estimated by
  resampling each stimulus's listeners with replacement: the observed stimulus is taken as the
  population, and the bootstrap panels as the observed tests (Pearson/Spearman of the means,
  outlier ratio, and the CI columns). No NLL: that floor needs the true distribution.

Per-stimulus tables follow ``predictions.csv`` (``test, item, condition, n_listeners,
subjective_mean, subjective_ci95, predicted_mean, predicted_std, predicted_ci95`` and ``role``
when known); per-score tables follow ``pit.csv`` (``test, item, condition, score`` and, for a
model, ``pit`` and ``nll``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from gml.data.manifest import subset_masks
from gml.metrics import metric_collection
from gml.stats import STIMULUS_KEY, ci_halfwidth

__all__ = [
    "BASELINES",
    "CONDITION_ORACLE",
    "CONSTANT_SPREAD",
    "MIN_ORACLE_STD",
    "NOISE_CEILING",
    "baseline_predictions",
    "baseline_results",
    "noise_ceiling",
    "pooled_std",
    "prediction_metrics",
    "set_name",
    "subset_results",
]

KEY = list(STIMULUS_KEY)
CONSTANT_SPREAD = "constant spread"
CONDITION_ORACLE = "condition oracle"
NOISE_CEILING = "noise ceiling"
#: Baseline rows in the order they are reported.
BASELINES = (CONDITION_ORACLE, CONSTANT_SPREAD, NOISE_CEILING)
#: The oracle's SD never goes below this (a hidden reference rated 100 by everyone has SD 0,
#: and a distribution of zero width gives any other score an infinite NLL).
MIN_ORACLE_STD = 1.0
#: Central-interval levels whose coverage by individual scores is reported.
COVERAGE_LEVELS = (0.5, 0.9)


def set_name(test: str, subset: str) -> str:
    """The row name of a test set's subset: ``cvssp`` for ``all``, ``cvssp:systems``."""
    return str(test) if subset == "all" else f"{test}:{subset}"


def pooled_std(std: np.ndarray | pd.Series) -> float:
    """Root mean of per-stimulus variances (stimuli with a finite SD); NaN if none.

    Shape:
        std: ``[stimuli]`` sample SDs → a float.
    """
    s = np.asarray(std, dtype=np.float64)
    s = s[np.isfinite(s)]
    return float(np.sqrt(np.mean(s**2))) if len(s) else float("nan")


def _roles(frame: pd.DataFrame) -> pd.Series | None:
    return frame["role"].fillna("").astype(str) if "role" in frame else None


def baseline_predictions(stimuli: pd.DataFrame, test_index: np.ndarray) -> pd.DataFrame:
    """Per-stimulus predictions of the constant spread and the condition oracle for the
    stimuli ``test_index``, fitted on the stimuli whose ``partition`` is ``train``.

    Args:
        stimuli: The data module's stimulus table (``test, item, condition, n_listeners, mean,
            std, ci95, partition`` and ``role`` when known).
        test_index: Rows of ``stimuli`` to predict.

    Returns:
        ``predictions.csv``-like rows plus ``baseline`` (:data:`CONSTANT_SPREAD` or
        :data:`CONDITION_ORACLE`) and ``fitted_on`` (the subset whose training stimuli the
        constant spread was fitted on; ``all`` for the oracle). Empty when a listening test
        has no training stimulus.
    """
    test = stimuli.iloc[np.asarray(test_index, dtype=np.int64)]
    train = stimuli[stimuli["partition"] == "train"]
    frames = []
    for name, rows in test.groupby("test", sort=True):
        fit = train[train["test"] == name]
        if len(fit) == 0:
            continue
        base = pd.DataFrame(
            {
                "test": rows["test"].to_numpy(),
                "item": rows["item"].to_numpy(),
                "condition": rows["condition"].to_numpy(),
                "n_listeners": rows["n_listeners"].to_numpy(),
                "subjective_mean": rows["mean"].to_numpy(),
                "subjective_ci95": rows["ci95"].to_numpy(),
            }
        )
        if "role" in rows:
            base["role"] = rows["role"].fillna("").to_numpy()
        n = rows["n_listeners"].to_numpy()
        # the oracle: mean and pooled SD of each condition over the training items
        by_cond = fit.groupby("condition")
        cond_mean = by_cond["mean"].mean()
        cond_std = by_cond["std"].agg(pooled_std)
        mean = np.array(rows["condition"].map(cond_mean), dtype=float)
        std = np.array(rows["condition"].map(cond_std), dtype=float)
        fallback = ~np.isfinite(mean)
        mean[fallback] = fit["mean"].mean()
        std[~np.isfinite(std)] = pooled_std(fit["std"])
        std = np.maximum(std, MIN_ORACLE_STD)
        frames.append(
            base.assign(
                baseline=CONDITION_ORACLE,
                fitted_on="all",
                predicted_mean=mean,
                predicted_std=std,
                predicted_ci95=ci_halfwidth(std, n),
                fallback=fallback,
            )
        )
        # the constant spread, fitted on each subset's training stimuli
        for subset, mask in (subset_masks(_roles(fit)) or {"all": None}).items():
            sd = pooled_std(fit["std"] if mask is None else fit.loc[mask, "std"])
            frames.append(
                base.assign(
                    baseline=CONSTANT_SPREAD,
                    fitted_on=subset,
                    predicted_mean=np.nan,
                    predicted_std=sd,
                    predicted_ci95=ci_halfwidth(np.full(len(base), sd), n),
                    fallback=False,
                )
            )
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def prediction_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """Table I columns (all but the NLL) of per-stimulus predictions, with the same
    torchmetrics classes as ``gml test``.

    Shape:
        frame: one row per stimulus with ``predicted_mean``, ``predicted_std``,
        ``predicted_ci95``, ``subjective_mean``, ``subjective_ci95``, ``n_listeners``.
    """
    import torch

    def col(c: str) -> torch.Tensor:
        return torch.tensor(frame[c].to_numpy(dtype=float), dtype=torch.float32)

    # computed where the rows are (rank 0 under DDP holds them all): no sync across processes
    metrics = metric_collection(sync_on_compute=False)
    metrics.update(
        pred_mean=col("predicted_mean"),
        pred_std=col("predicted_std"),
        pred_ci=col("predicted_ci95"),
        subj_mean=col("subjective_mean"),
        subj_ci=col("subjective_ci95"),
        n_listeners=col("n_listeners"),
        nll=torch.full((1,), float("nan")),
    )
    out = {k: float(v) for k, v in metrics.compute().items()}
    out.pop("nll")
    return out


def _coverage(pit: np.ndarray) -> dict[str, float]:
    pit = pit[np.isfinite(pit)]
    out = {}
    for level in COVERAGE_LEVELS:
        inside = np.abs(pit - 0.5) <= level / 2
        out[f"coverage_{round(level * 100)}"] = float(inside.mean()) if len(pit) else math.nan
    return out


def _score_rows(scores: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """The individual scores of the stimuli of ``frame``, with its columns beside them."""
    return scores.merge(frame, on=KEY, how="inner")


def subset_results(
    predictions: pd.DataFrame, scores: pd.DataFrame | None
) -> dict[str, dict[str, float]]:
    """A model's metrics per test set and subset, from ``predictions.csv`` and ``pit.csv``
    rows (the ``nll`` and ``pit`` of each individual score).

    Returns:
        ``{set_name(test, subset): {metric: value}}`` with the Table I columns, ``nll``,
        ``coverage_50`` / ``coverage_90`` (when ``scores`` has them) and ``n_stimuli``.
    """
    out: dict[str, dict[str, float]] = {}
    for test, rows in predictions.groupby("test", sort=True):
        masks = subset_masks(_roles(rows)) or {"all": np.ones(len(rows), dtype=bool)}
        for subset, mask in masks.items():
            part = rows[mask]
            res = prediction_metrics(part)
            res["n_stimuli"] = int(len(part))
            if scores is not None and len(part):
                s = _score_rows(scores, part[KEY])
                if "nll" in s:
                    nll = s["nll"].to_numpy(dtype=float)
                    res["nll"] = float(nll.mean()) if len(nll) else math.nan
                if "pit" in s:
                    res.update(_coverage(s["pit"].to_numpy(dtype=float)))
            out[set_name(test, subset)] = res
    return out


def _logistic_from_moments(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Location and scale of logistics with the rows' predicted mean and SD."""
    loc = frame["predicted_mean"].to_numpy(dtype=float)
    scale = frame["predicted_std"].to_numpy(dtype=float) * math.sqrt(3) / math.pi
    return loc, scale


def noise_ceiling(
    scores: pd.DataFrame, n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """The figures a predictor of each stimulus's true population mean and spread would reach,
    given that every observed mean and CI comes from its ``N`` listeners alone.

    Each stimulus's observed scores stand for its population (mean ``μ``, SD ``σ`` with ddof 0,
    true CI half-width ``t·σ/√N``); ``n_boot`` panels of ``N`` listeners are drawn from them
    with replacement, and the true values are scored against each panel's mean and t-based CI
    as a model's predictions are scored against a listening test. Returns the mean over the
    panels of each Table I column (Rp/Rs of the means, OR, Rp/Rs and RMSE of the CIs).
    Stimuli with fewer than 2 listeners are left out.

    Shape:
        scores: one row per individual score (``test, item, condition, score``).
    """
    groups = [g.to_numpy(dtype=float) for _, g in scores.groupby(KEY, sort=True)["score"]]
    groups = [g for g in groups if len(g) >= 2]
    if len(groups) < 2:
        return {k: math.nan for k in ("mean_pearson", "mean_spearman", "outlier_ratio",
                                      "ci_pearson", "ci_spearman", "ci_rmse")}  # fmt: skip
    rng = np.random.default_rng(seed)
    n = np.array([len(g) for g in groups])
    mu = np.array([g.mean() for g in groups])
    sigma = np.array([g.std(ddof=0) for g in groups])
    factor = sps.t.ppf((1 + level) / 2, n - 1) / np.sqrt(n)
    true_ci = factor * sigma
    means = np.empty((n_boot, len(groups)))
    cis = np.empty((n_boot, len(groups)))
    for i, g in enumerate(groups):
        draw = g[rng.integers(0, len(g), size=(n_boot, len(g)))]
        means[:, i] = draw.mean(axis=1)
        cis[:, i] = factor[i] * draw.std(axis=1, ddof=1)

    def corr(x, y, rank=False):
        if rank:
            x, y = sps.rankdata(x), sps.rankdata(y)
        if np.std(x) == 0 or np.std(y) == 0:
            return math.nan
        return float(np.corrcoef(x, y)[0, 1])

    rows = [
        (
            corr(mu, m),
            corr(mu, m, True),
            float(np.mean(np.abs(mu - m) > c)),
            corr(true_ci, c),
            corr(true_ci, c, True),
            float(np.sqrt(np.mean((true_ci - c) ** 2))),
        )
        for m, c in zip(means, cis)
    ]
    names = ("mean_pearson", "mean_spearman", "outlier_ratio", "ci_pearson", "ci_spearman",
             "ci_rmse")  # fmt: skip
    return {k: float(np.nanmean(v)) for k, v in zip(names, np.asarray(rows, dtype=float).T)}


def baseline_results(
    baselines: pd.DataFrame,
    predictions: pd.DataFrame,
    scores: pd.DataFrame,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of every baseline per test set and subset.

    Args:
        baselines: :func:`baseline_predictions` rows (pooled over folds for ``gml cv``).
        predictions: The evaluated stimuli (``predictions.csv`` rows: the key and ``role``).
        scores: Individual scores of the evaluated stimuli (``test, item, condition, score``).
        n_boot: Bootstrap panels of the noise ceiling.
        seed: Its random seed.

    Returns:
        ``{set_name(test, subset): {baseline: {metric: value}}}``, the baselines in
        :data:`BASELINES` order (the noise ceiling always; the others when the test has
        training stimuli).
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    score_keys = scores[KEY + ["score"]]
    for test, rows in predictions.groupby("test", sort=True):
        masks = subset_masks(_roles(rows)) or {"all": np.ones(len(rows), dtype=bool)}
        for subset, mask in masks.items():
            keys = rows.loc[mask, KEY]
            res: dict[str, dict[str, float]] = {}
            if len(baselines):
                own = baselines.merge(keys, on=KEY, how="inner")
                oracle = own[own["baseline"] == CONDITION_ORACLE]
                if len(oracle):
                    r = prediction_metrics(oracle)
                    s = _score_rows(score_keys, oracle)
                    loc, scale = _logistic_from_moments(s)
                    x = s["score"].to_numpy(dtype=float)
                    r["nll"] = float(-sps.logistic.logpdf(x, loc, scale).mean())
                    r.update(_coverage(sps.logistic.cdf(x, loc, scale)))
                    r["oracle_fallback"] = int(oracle["fallback"].astype(bool).sum())
                    r["n_stimuli"] = int(len(oracle))
                    res[CONDITION_ORACLE] = r
                const = own[(own["baseline"] == CONSTANT_SPREAD) & (own["fitted_on"] == subset)]
                if len(const):
                    r = prediction_metrics(const)
                    r["constant_std"] = float(const["predicted_std"].iloc[0])
                    r["n_stimuli"] = int(len(const))
                    res[CONSTANT_SPREAD] = r
            ceiling = noise_ceiling(score_keys.merge(keys, on=KEY), n_boot=n_boot, seed=seed)
            ceiling["n_stimuli"] = int(len(keys))
            res[NOISE_CEILING] = ceiling
            out[set_name(test, subset)] = {b: res[b] for b in BASELINES if b in res}
    return out


def merge_results(
    results: Mapping[str, Mapping[str, float]], extra: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """``results`` with each set's values from ``extra`` added (``extra`` wins on a clash)."""
    out = {k: dict(v) for k, v in results.items()}
    for k, v in extra.items():
        out.setdefault(k, {}).update(v)
    return out
