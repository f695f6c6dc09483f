"""Per-test-set evaluation metrics (torchmetrics) and their functional forms.

See :mod:`gml.metrics.collection` for the update vocabulary and NaN conventions, and
:mod:`gml.stats` for the statistics (t quantile, CI half-width, per-stimulus stats).
"""

from gml.metrics.collection import (
    CIRMSE,
    METRIC_KEYS,
    TABLE_COLUMNS,
    UPDATE_KWARGS,
    CIPearson,
    CISpearman,
    ExcludedFromCI,
    MeanNLL,
    MeanPearson,
    MeanSpearman,
    OutlierRatio,
    metric_collection,
)
from gml.metrics.functional import ci_rmse, outlier_ratio
from gml.stats import StimulusStats, ci_halfwidth, stimulus_stats, t_quantile

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
    "StimulusStats",
    "TABLE_COLUMNS",
    "UPDATE_KWARGS",
    "ci_halfwidth",
    "ci_rmse",
    "metric_collection",
    "outlier_ratio",
    "stimulus_stats",
    "t_quantile",
]
