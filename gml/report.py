"""Test reports: the Table-I-style console table, ``metrics.json`` and ``predictions.csv``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from gml import text_table
from gml.atomic import atomic_write_text
from gml.metrics import TABLE_COLUMNS
from gml.stats import STIMULUS_KEY

KEY = list(STIMULUS_KEY)

PREDICTION_COLUMNS = (
    "test",
    "item",
    "condition",
    "n_listeners",
    "subjective_mean",
    "subjective_ci95",
    "predicted_mean",
    "predicted_std",
    "predicted_ci95",
)


def fmt(value: float, digits: int = 3) -> str:
    """A metric for a table: ``n/a`` for NaN (e.g. CI columns of a mean-only model)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def format_table(
    results: Mapping[str, Mapping[str, float]], extra: Mapping[str, str] | None = None
) -> str:
    """A plain-text table: one row per test set, the paper's Table I columns plus NLL."""
    headers = ["test set"] + [h for _, h, _ in TABLE_COLUMNS] + list((extra or {}).keys())
    rows = []
    for name, res in results.items():
        row = [name] + [fmt(res.get(k, float("nan"))) for k, _, _ in TABLE_COLUMNS]
        row += [fmt(res.get(k, float("nan"))) for k in (extra or {}).values()]
        rows.append(row)
    return text_table.aligned(headers, rows)


def predictions_frame(
    stimuli: pd.DataFrame,
    preds: Mapping[str, np.ndarray],
    ratings: pd.DataFrame | None = None,
    with_partition: bool = False,
) -> pd.DataFrame:
    """Per-stimulus predictions with the subjective statistics beside them.

    Args:
        stimuli: The data module's stimulus table (``test, item, condition, n_listeners,
            mean, ci95``...).
        preds: ``index`` (rows of ``stimuli``), ``pred_mean``, ``pred_std``, ``pred_ci``.
        ratings: The manifest's ratings; extra columns constant within a stimulus are carried
            through.
        with_partition: Add the stimulus's ``partition`` (train / val / test) after the
            prediction columns (``gml predict`` scores every stimulus).
    """
    idx = np.asarray(preds["index"])
    s = stimuli.iloc[idx]
    out = pd.DataFrame(
        {
            "test": s["test"].to_numpy(),
            "item": s["item"].to_numpy(),
            "condition": s["condition"].to_numpy(),
            "n_listeners": s["n_listeners"].to_numpy(),
            "subjective_mean": s["mean"].to_numpy(),
            "subjective_ci95": s["ci95"].to_numpy(),
            "predicted_mean": np.asarray(preds["pred_mean"], dtype=float),
            "predicted_std": np.asarray(preds["pred_std"], dtype=float),
            "predicted_ci95": np.asarray(preds["pred_ci"], dtype=float),
        }
    )
    if "delay_ms" in s:  # the codec delay removed before the features
        out["delay_ms"] = s["delay_ms"].to_numpy()
    if with_partition:
        out["partition"] = s["partition"].to_numpy()
    if ratings is not None:
        known = {*STIMULUS_KEY, "listener", "score", "reference", "coded", "split"}
        # extras never shadow an output column (or gml cv's cv_fold)
        known |= set(PREDICTION_COLUMNS) | {"cv_fold", "partition", "delay_ms"}
        extra = [c for c in ratings.columns if c not in known]
        if extra:
            g = ratings.groupby(KEY)
            constant = [c for c in extra if (g[c].nunique(dropna=False) <= 1).all()]
            if constant:
                out = out.merge(g[constant].first().reset_index(), on=KEY, how="left")
    return out.sort_values(KEY).reset_index(drop=True)


def constant_baseline_nll(train_scores: np.ndarray, test_scores: np.ndarray) -> float:
    """NLL of ``test_scores`` under one logistic distribution fitted (maximum likelihood) to the
    training scores: what a model that ignores the audio achieves. (A density: compare it with
    the NLL of density heads; censored heads mix probabilities at 0 and 100 into their NLL.) NaN when the manifest has
    fewer than 2 training scores (e.g. a listening test used for testing only)."""
    if len(train_scores) < 2 or len(test_scores) == 0:
        return float("nan")
    loc, scale = sps.logistic.fit(np.asarray(train_scores, dtype=float))
    return float(-sps.logistic.logpdf(np.asarray(test_scores, dtype=float), loc, scale).mean())


def write_json(path: Path, obj) -> None:
    """Atomic JSON with NaN written as null."""

    def clean(o):
        if isinstance(o, float) and math.isnan(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    atomic_write_text(path, json.dumps(clean(obj), indent=2) + "\n")


#: Columns after Table I in printed tables: calibration and the constant model's NLL.
SCORE_COLUMNS = {"cov50": "coverage_50", "cov90": "coverage_90", "const NLL": "constant_nll"}

BASELINES_TITLE = (
    "baselines from the same partition (no audio; the oracle knows each stimulus's condition;"
    "\nthe noise ceiling/floor is what the true means and spreads would reach with these panels):"
)


def format_baselines(baselines: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """The baseline rows of every test set (:mod:`gml.baselines`) as a plain-text table."""
    rows = {f"{name} {b}": vals for name, per in baselines.items() for b, vals in per.items()}
    return format_table(rows, extra={"cov50": "coverage_50", "cov90": "coverage_90"})


def format_evaluation(evaluation) -> str:
    """What ``gml test`` prints for a :class:`gml.evaluation.Evaluation`: the table, stimuli
    left out of the CI columns, the files written; it says when the listeners are simulated."""
    results = evaluation.results
    lines = []
    if evaluation.synthetic_demo:
        lines.append("Built-in demo listening test (SYNTHETIC listeners, not human data)")
    lines.append(format_table(results, extra=SCORE_COLUMNS))
    baselines = getattr(evaluation, "baselines", None) or {}
    if baselines:
        lines += ["", BASELINES_TITLE, format_baselines(baselines)]
    excluded = {n: int(r.get("ci_excluded", 0)) for n, r in results.items() if r.get("ci_excluded")}
    if excluded:
        lines.append(
            "stimuli without a CI (fewer than 2 listeners), excluded from CI columns: "
            + ", ".join(f"{n}: {c}" for n, c in excluded.items())
        )
    if evaluation.out_dir is not None:
        plots = [f for f in evaluation.files if f.suffix == ".png"]
        lines.append(
            f"gml: wrote {evaluation.out_dir / 'metrics.json'}, predictions.csv, pit.csv"
            + (f" and {len(plots)} plots in {evaluation.out_dir / 'plots'}" if plots else "")
        )
    return "\n".join(lines)
