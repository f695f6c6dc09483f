"""Evaluation plots: predicted vs subjective means and CIs, and the calibration of the predicted
score distribution (central-interval coverage and the PIT histogram).

Inputs are ``gml test``'s per-stimulus ``predictions.csv`` rows (``test, item, condition,
n_listeners, subjective_mean, subjective_ci95, predicted_mean, predicted_std, predicted_ci95``)
and, optionally, a per-individual-score PIT table (``test, item, condition, score, pit`` with
``pit = F(score)``, the model's predicted CDF at that listener's score, NaN for a model without
a CDF).

matplotlib is imported lazily, so importing this module costs nothing when no plot is made, and
figures are built as :class:`matplotlib.figure.Figure` with an Agg canvas instead of through
pyplot: no global figure registry to leak into, and a notebook's inline backend is left alone.
PNG files are written atomically (see :mod:`gml.atomic`), so a killed run never leaves a
half-written image.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gml.atomic import atomic_write

if TYPE_CHECKING:  # matplotlib is imported lazily at run time
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_LEVELS",
    "PLOT_KINDS",
    "calibration_figure",
    "central_coverage",
    "cis_figure",
    "log_plots",
    "means_figure",
    "safe_name",
    "save_figure",
    "save_test_set_plots",
]

DEFAULT_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PLOT_KINDS: tuple[str, ...] = ("means", "cis", "calibration")
NO_CDF_TEXT = "no predictive CDF (point predictor)"

_DPI = 110
_SCORE_RANGE = (0.0, 100.0)  # MUSHRA scale


# ----------------------------------------------------------------------------- statistics


def _pit_values(pit: pd.DataFrame | pd.Series | np.ndarray | Sequence[float] | None) -> np.ndarray:
    """The finite PIT values of a PIT table (its ``pit`` column), a Series or an array."""
    if pit is None:
        return np.empty(0)
    if isinstance(pit, pd.DataFrame):
        pit = pit["pit"]
    values = np.asarray(pit, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def central_coverage(
    pit: pd.DataFrame | pd.Series | np.ndarray | Sequence[float] | None,
    levels: Iterable[float] = DEFAULT_LEVELS,
) -> pd.DataFrame:
    """Observed coverage of the model's central prediction intervals.

    An individual score lies inside the central interval of probability ``level`` exactly when
    its PIT satisfies ``|pit - 0.5| <= level / 2``. For a calibrated model the fraction of
    scores inside is about ``level``; below it, the predicted distribution is too narrow
    (over-confident), above it too wide.

    Args:
        pit: PIT values ``F(score)`` in [0, 1]: a PIT table (its ``pit`` column is used), a
            Series or an array. NaN values (no CDF) are ignored.
        levels: Nominal probabilities of the central intervals, each in (0, 1].

    Returns:
        One row per level with columns ``level``, ``coverage`` (NaN when there is no finite
        PIT) and ``n`` (the number of finite PIT values used).

    Raises:
        ValueError: If a level lies outside (0, 1].
    """
    levels = np.asarray(list(levels), dtype=np.float64)
    if np.any(~((levels > 0.0) & (levels <= 1.0))):
        raise ValueError(f"levels must lie in (0, 1], got {levels.tolist()}")
    values = _pit_values(pit)
    n = len(values)
    if n:
        dist = np.abs(values - 0.5)
        coverage = (dist[None, :] <= levels[:, None] / 2.0).mean(axis=1)
    else:
        coverage = np.full(len(levels), np.nan)
    return pd.DataFrame({"level": levels, "coverage": coverage, "n": np.full(len(levels), n)})


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r; NaN for fewer than 2 pairs or a constant variable (no division warnings)."""
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denom if denom > 0 else float("nan")


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A float column; all-NaN when missing (e.g. a frame without the spread columns)."""
    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)


# ----------------------------------------------------------------------------- figures


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure with an Agg canvas (no backend selection, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _message(ax: Axes, text: str) -> None:
    """Replace an empty panel's content by a centred message."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _corner_label(ax: Axes, text: str) -> None:
    ax.text(
        0.03,
        0.97,
        text,
        ha="left",
        va="top",
        transform=ax.transAxes,
        fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"},
    )


#: How each kind of stimulus is drawn: (label, roles, marker, colour).
_ROLE_STYLES = (
    ("systems", ("",), "o", "tab:blue"),
    ("hidden reference", ("hidden_reference",), "^", "tab:red"),
    ("anchors", ("low_anchor", "mid_anchor", "anchor"), "s", "0.35"),
)


def _roles(frame: pd.DataFrame) -> np.ndarray:
    """Each row's role ("" for a system under test, and for every row without a role column)."""
    if "role" not in frame:
        return np.full(len(frame), "", dtype=object)
    return frame["role"].fillna("").astype(str).to_numpy()


def _scatter_by_role(ax: Axes, x: np.ndarray, y: np.ndarray, roles: np.ndarray) -> None:
    """The stimuli as points, the hidden reference and the anchors marked apart."""
    if not (roles != "").any():
        ax.scatter(x, y, s=14, color="tab:blue", zorder=3, label=f"stimuli (n = {len(x)})")
        return
    for label, kinds, marker, color in _ROLE_STYLES:
        mask = np.isin(roles, kinds)
        if mask.any():
            ax.scatter(x[mask], y[mask], s=16, marker=marker, color=color, zorder=3,
                       label=f"{label} (n = {int(mask.sum())})")  # fmt: skip


def _pearson_label(x: np.ndarray, y: np.ndarray, roles: np.ndarray) -> str:
    """``Pearson r = …`` over all stimuli, and over the systems alone when roles are known."""
    text = f"Pearson r = {_fmt(_pearson(x, y))}"
    systems = roles == ""
    if (~systems).any():
        text += f" (all)\nr = {_fmt(_pearson(x[systems], y[systems]))} (systems)"
    return text


def means_figure(frame: pd.DataFrame, title: str) -> Figure:
    """Predicted vs subjective mean score per stimulus, with both 95 % CIs as error bars.

    Args:
        frame: ``predictions.csv`` rows (one test set, or several pooled).
        title: Figure title (e.g. the test set's name).

    Returns:
        The figure: x = subjective mean (x error bar: subjective CI half-width), y = predicted
        mean (y error bar: predicted CI half-width), the identity line, both axes spanning the
        MUSHRA range 0-100 (extended when points or bars exceed it), and Pearson r in a corner
        (also over the systems alone when a ``role`` column marks the hidden reference, drawn
        as triangles, and the anchors, squares). Stimuli with a NaN mean are left out; NaN
        half-widths draw no bar.
    """
    x, y = _column(frame, "subjective_mean"), _column(frame, "predicted_mean")
    xe, ye = _column(frame, "subjective_ci95"), _column(frame, "predicted_ci95")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, xe, ye, roles = x[keep], y[keep], xe[keep], ye[keep], _roles(frame)[keep]

    fig = new_figure(5.2, 5.2)
    ax = fig.add_subplot()
    # error bars in separate calls so that a NaN half-width draws nothing, not even a cap
    has_xe, has_ye = np.isfinite(xe), np.isfinite(ye)
    for err, axis, color, label in (
        (xe, "xerr", "tab:gray", "subjective 95 % CI"),
        (ye, "yerr", "tab:orange", "predicted 95 % CI"),
    ):
        has = np.isfinite(err)
        if has.any():
            ax.errorbar(
                x[has],
                y[has],
                **{axis: err[has]},
                fmt="none",
                ecolor=color,
                elinewidth=0.8,
                capsize=2,
                alpha=0.7,
                label=label,
            )
    _scatter_by_role(ax, x, y, roles)

    # 0-100, widened to whatever the points and bars reach
    lo, hi = _SCORE_RANGE
    reach = [x, y]
    if has_xe.any():
        reach += [x[has_xe] - xe[has_xe], x[has_xe] + xe[has_xe]]
    if has_ye.any():
        reach += [y[has_ye] - ye[has_ye], y[has_ye] + ye[has_ye]]
    values = np.concatenate(reach) if len(x) else np.empty(0)
    if len(values):
        lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    pad = 0.02 * (hi - lo)
    lim = (lo - pad, hi + pad)
    ax.plot(lim, lim, color="black", linewidth=0.8, linestyle="--", label="identity", zorder=1)
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal")
    ax.set_xlabel("subjective mean score")
    ax.set_ylabel("predicted mean score")
    ax.set_title(f"{title}: mean scores")
    ax.grid(True, alpha=0.3)
    _corner_label(ax, _pearson_label(x, y, roles))
    ax.legend(loc="lower right", fontsize=8)
    return fig


def cis_figure(frame: pd.DataFrame, title: str) -> Figure:
    """Predicted vs subjective 95 % CI half-width per stimulus.

    Args:
        frame: ``predictions.csv`` rows (one test set, or several pooled).
        title: Figure title (e.g. the test set's name).

    Returns:
        The figure: stimuli with both half-widths finite, the identity line and the RMSE of the
        predicted half-widths; a message instead when no stimulus has both (a point predictor,
        or single-listener stimuli).
    """
    x, y = _column(frame, "subjective_ci95"), _column(frame, "predicted_ci95")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, roles = x[keep], y[keep], _roles(frame)[keep]

    fig = new_figure(5.2, 5.2)
    ax = fig.add_subplot()
    ax.set_title(f"{title}: 95 % CI half-widths")
    if not len(x):
        has_pred = np.isfinite(_column(frame, "predicted_ci95")).any()
        _message(ax, "no stimulus with both CIs" if has_pred else "no predicted CI")
        return fig
    hi = max(float(x.max()), float(y.max()), 1e-9) * 1.05
    ax.plot((0.0, hi), (0.0, hi), color="black", linewidth=0.8, linestyle="--", label="identity")
    _scatter_by_role(ax, x, y, roles)
    ax.set_xlim(0.0, hi)
    ax.set_ylim(0.0, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("subjective 95 % CI half-width")
    ax.set_ylabel("predicted 95 % CI half-width")
    ax.grid(True, alpha=0.3)
    rmse = float(np.sqrt(np.mean((y - x) ** 2)))
    label = f"RMSE = {_fmt(rmse, 2)}\n{_pearson_label(x, y, roles)}"
    systems = roles == ""
    if (~systems).any() and systems.any():
        rmse_sys = float(np.sqrt(np.mean((y[systems] - x[systems]) ** 2)))
        label += f"\nRMSE = {_fmt(rmse_sys, 2)} (systems)"
    _corner_label(ax, label)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def calibration_figure(
    pit: pd.DataFrame | pd.Series | np.ndarray | Sequence[float] | None,
    title: str,
    levels: Iterable[float] = DEFAULT_LEVELS,
) -> Figure:
    """Calibration of the predicted score distribution from the individual scores' PITs.

    Args:
        pit: PIT values (see :func:`central_coverage`); NaN values are ignored.
        title: Figure title (e.g. the test set's name).
        levels: Nominal probabilities of the central intervals of panel (a).

    Returns:
        Two panels: (a) observed vs nominal coverage of the central intervals with the diagonal
        and its binomial 95 % band (what a calibrated model reaches with this many scores);
        (b) the PIT histogram (density; flat at 1 when calibrated, U-shaped when too narrow,
        hump-shaped when too wide). Without a finite PIT, one panel saying that there is no
        predictive CDF.
    """
    values = _pit_values(pit)
    if not len(values):
        fig = new_figure(5.2, 3.0)
        ax = fig.add_subplot()
        ax.set_title(f"{title}: calibration")
        _message(ax, NO_CDF_TEXT)
        return fig

    n = len(values)
    cov = central_coverage(values, levels)
    fig = new_figure(10.0, 4.6)
    ax_cov, ax_hist = fig.subplots(1, 2)
    fig.suptitle(f"{title}: calibration ({n} individual scores)")

    nominal = np.linspace(0.0, 1.0, 101)
    band = 1.96 * np.sqrt(nominal * (1.0 - nominal) / n)
    ax_cov.fill_between(
        nominal, nominal - band, nominal + band, color="0.85", label="calibrated, 95 % band"
    )
    ax_cov.plot((0, 1), (0, 1), color="black", linewidth=0.8, linestyle="--", label="ideal")
    ax_cov.plot(cov["level"], cov["coverage"], marker="o", color="tab:blue", label="observed")
    ax_cov.set_xlim(0.0, 1.0)
    ax_cov.set_ylim(0.0, 1.0)
    ax_cov.set_aspect("equal")
    ax_cov.set_xlabel("nominal central-interval probability")
    ax_cov.set_ylabel("fraction of scores inside")
    ax_cov.set_title("(a) central-interval coverage")
    ax_cov.grid(True, alpha=0.3)
    ax_cov.legend(loc="upper left", fontsize=8)

    bins = 20 if n >= 200 else 10  # about 10 scores per bin at least, for a readable shape
    density, _, _ = ax_hist.hist(
        np.clip(values, 0.0, 1.0),
        bins=bins,
        range=(0.0, 1.0),
        density=True,
        color="tab:blue",
        alpha=0.7,
        edgecolor="white",
        label="PIT",
    )
    ax_hist.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="uniform")
    ax_hist.set_xlim(0.0, 1.0)
    # headroom above the tallest bar (and the uniform line) for the legend
    top = max(float(np.max(density)), 1.0)
    ax_hist.set_ylim(0.0, 1.25 * top)
    ax_hist.set_xlabel("PIT = predicted CDF at the listener's score")
    ax_hist.set_ylabel("density")
    ax_hist.set_title(f"(b) PIT histogram ({bins} bins)")
    ax_hist.grid(True, alpha=0.3)
    ax_hist.legend(loc="upper center", ncols=2, fontsize=8)
    return fig


# ----------------------------------------------------------------------------- files


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = _DPI) -> Path:
    """Write ``fig`` as a PNG, atomically (rendered in memory first, then renamed into place).

    Args:
        fig: The figure.
        path: Destination; its folder is created.
        dpi: Resolution.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    path = Path(path)
    atomic_write(path, lambda f: f.write(data))
    return path


def safe_name(name: object) -> str:
    """A file-name stem for a test-set name: letters, digits, ``-``, ``_`` and ``.`` are kept,
    anything else becomes ``_``; a leading dot too, so that the file is not hidden."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(name))
    stem = re.sub(r"^\.", "_", stem)
    return stem or "_"


def save_test_set_plots(
    predictions: pd.DataFrame,
    pit: pd.DataFrame | None,
    out_dir: str | os.PathLike,
) -> dict[str, dict[str, Path]]:
    """Write the plots of every test set of a ``predictions.csv`` frame.

    Files are ``out_dir/plots/<test>-means.png``, ``<test>-cis.png`` and, when ``pit`` is
    given, ``<test>-calibration.png`` (a "no predictive CDF" figure for a test set without a
    finite PIT). ``<test>`` is :func:`safe_name` of the test set's name, with ``-2``, ``-3``...
    appended should two names sanitise alike.

    Args:
        predictions: Per-stimulus rows with a ``test`` column.
        pit: Per-individual-score PIT table (``test`` and ``pit`` columns), or None.
        out_dir: The run's output folder.

    Returns:
        ``{test: {"means": path, "cis": path, "calibration": path}}`` keyed by the test-set name
        as a string, in sorted order; ``"calibration"`` only when ``pit`` is given.
    """
    plot_dir = Path(out_dir) / "plots"
    tests = sorted(predictions["test"].dropna().unique(), key=str)
    pit_groups = dict(iter(pit.groupby("test", sort=False))) if pit is not None else {}
    out: dict[str, dict[str, Path]] = {}
    used: set[str] = set()
    for test in tests:
        stem = base = safe_name(test)
        k = 2
        while stem in used:  # e.g. "a/b" and "a b" both sanitise to "a_b"
            stem, k = f"{base}-{k}", k + 1
        used.add(stem)
        rows = predictions[predictions["test"] == test]
        name = str(test)
        paths = {
            "means": save_figure(means_figure(rows, name), plot_dir / f"{stem}-means.png"),
            "cis": save_figure(cis_figure(rows, name), plot_dir / f"{stem}-cis.png"),
        }
        if pit is not None:
            fig = calibration_figure(pit_groups.get(test), name)
            paths["calibration"] = save_figure(fig, plot_dir / f"{stem}-calibration.png")
        out[name] = paths
    return out


# ----------------------------------------------------------------------------- loggers


def _png_array(path: Path) -> np.ndarray:
    """A PNG as an ``H x W x 3`` uint8 array (alpha dropped: TensorBoard wants RGB)."""
    from matplotlib.image import imread

    image = imread(path)
    if image.dtype != np.uint8:  # imread gives PNGs as float in [0, 1]
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]


def log_plots(
    logger: Any,
    plots: Mapping[str, Mapping[str, Path]],
    step: int | None = None,
    prefix: str = "test",
) -> int:
    """Send saved plots to an experiment logger.

    A Lightning ``TensorBoardLogger`` gets ``add_image`` calls, a ``WandbLogger`` gets
    ``log_image`` calls; other loggers (CSV, None...) are skipped. A list or tuple of loggers
    (e.g. ``trainer.loggers``) logs to each.

    Args:
        logger: The logger, a sequence of loggers, or None.
        plots: :func:`save_test_set_plots`'s result.
        step: Global step to log at (None: the logger's default).
        prefix: First part of the tags ``<prefix>/<test>/<kind>``.

    Returns:
        The number of images logged.
    """
    if logger is None:
        return 0
    if isinstance(logger, (list, tuple)):
        return sum(log_plots(lg, plots, step, prefix) for lg in logger)
    try:
        from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
    except ImportError:  # no Lightning: no logger of these kinds can exist
        return 0

    items = [
        (f"{prefix}/{test}/{kind}", Path(p)) for test, d in plots.items() for kind, p in d.items()
    ]
    if isinstance(logger, TensorBoardLogger):
        writer = logger.experiment
        for tag, path in items:
            writer.add_image(tag, _png_array(path), global_step=step, dataformats="HWC")
        if items and hasattr(writer, "flush"):
            writer.flush()  # the run may end right after the test step
        return len(items)
    if isinstance(logger, WandbLogger):
        extra = {} if step is None else {"step": step}
        for tag, path in items:
            logger.log_image(key=tag, images=[str(path)], **extra)
        return len(items)
    return 0
