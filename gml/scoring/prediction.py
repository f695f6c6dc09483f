"""What a scored pair comes back as: :class:`Prediction` and its table columns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from torch.distributions import Distribution

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PREDICTION_FIELDS", "Prediction"]


@dataclass
class Prediction:
    """The predicted listening-test result of one reference/coded pair.

    Attributes:
        reference, coded: The inputs (paths, or ``"<array>"``).
        n_listeners: The panel size the CI is for.
        mean: Predicted mean score (clamped to 0–100, see ``clamped``).
        std: Predicted standard deviation of listeners' scores (for an ensemble: the listener
            spread, root mean of the members' variances).
        model_std: Disagreement of an ensemble's members (standard deviation of their means);
            NaN for one model.
        members: Number of models.
        ci95: t-based 95 % CI half-width a test with ``n_listeners`` listeners would give,
            from the model's spread (``std``).
        ci95_low, ci95_high: The 95 % CI such a test would report, from scores as a slider
            records them (the model's distribution clipped to 0–100): their mean ± the
            t-based half-width of their SD, cut at 0 and 100 (:func:`~gml.scoring.statistics.slider_interval`).
            Always inside the scale; equal to ``mean ± ci95`` (to rounding) when the model
            puts next to nothing outside 0–100.
        slider_mean, slider_std: Mean and listener SD of those slider scores (what a test's
            mean and SD estimate; for an ensemble, the members' means averaged and their
            variances, as for ``std``).
        q05, q25, q50, q75, q95: Quantiles of an individual listener's score (0–100), from the
            whole predictive distribution (for an ensemble: listener spread and model
            disagreement together).
        p_outside: Probability the model puts outside 0–100.
        clamped: The model's mean lay outside 0–100 and was clamped.
        duration: Seconds analysed (the longer of the two signals).
        delay_ms: Estimated delay of the coded signal (positive: it lags), removed before
            the features were computed (see :mod:`gml.features.delay`); 0 with ``align=False``.
        windows: Number of analysis windows combined.
        reference_rate, reference_channels, coded_rate, coded_channels: The files as read.
        warnings: One line per reason the score may not mean what it seems (unrelated or
            silent signals, a very short excerpt, mono against stereo, a low sample rate, a
            length mismatch); each was also issued as a :class:`~gml.errors.GMLWarning`.
        distribution: The head's distribution (a mixture over the analysis windows); not
            written to files.
        per_window: One row per window (``start, end, mean, std``) when asked for.
    """

    reference: str
    coded: str
    n_listeners: int
    mean: float
    std: float
    model_std: float
    members: int
    ci95: float
    ci95_low: float
    ci95_high: float
    slider_mean: float
    slider_std: float
    q05: float
    q25: float
    q50: float
    q75: float
    q95: float
    p_outside: float
    clamped: bool
    duration: float
    delay_ms: float
    windows: int
    reference_rate: int
    reference_channels: int
    coded_rate: int
    coded_channels: int
    warnings: list[str] = field(default_factory=list)
    distribution: Distribution | None = field(default=None, repr=False, compare=False)
    per_window: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain Python values (what ``gml predict`` writes to JSON)."""
        out = asdict(self)
        out.pop("distribution")
        pw = out.pop("per_window")
        if self.per_window is not None:
            out["per_window"] = pw.to_dict(orient="records")
        return out


#: Columns of :meth:`Listener.predict`'s table, in order (before any carried-through columns).
PREDICTION_FIELDS = tuple(
    f for f in Prediction.__dataclass_fields__ if f not in ("distribution", "per_window")
)
