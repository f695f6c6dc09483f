"""Compare two codecs with a trained listener: predicted differences and listening-test power.

Two codecs, A and B, coded the same references. For every item the listener predicts a score
distribution for (reference, A) and for (reference, B); from those this module reports

* the predicted mean difference A − B, the predicted listener SD of a difference
  ``sqrt(sA² + sB²)`` and the t-based 95 % CI half-width a test with N listeners would give
  for the mean difference (:func:`gml.stats.ci_halfwidth`);
* the power of a MUSHRA test with N listeners: the share of K simulated panels in which a
  two-sided **paired t-test** at 5 % finds a significant difference. MUSHRA has every listener
  rate every condition of a trial, so the test works on each listener's difference A − B;
* the smallest N (2 … ``max_listeners``) at which that power reaches 80 %: a planning aid;
* the same over all items: each simulated listener rates every item with both codecs, and
  the listener's mean over items of A − B goes into the paired t-test.

Simulated scores are drawn with :func:`gml.listener.simulate_panels` and clipped to 0–100 as
on a slider. **The model has no listener identity**: a simulated listener's scores for A and
B (and for different items) are independent draws. In a real panel a listener's personal
offset (a strict or a lenient listener) is shared by A and B and cancels in the paired
difference, so a real test can have *more* power than simulated here; in that respect the
simulated power, and the N for 80 %, are conservative.

Power for every N at once: each panel is simulated once with the largest N, and the panel of
n listeners is its first n listeners (nested panels, common random numbers). Running sums
give the paired t statistic for every n in one pass, so the whole power curve costs as much
as one simulation, and neighbouring N differ only by the added listeners (a smooth curve
whose first crossing of 80 % is the answer; no bisection over noisy estimates is needed).

Everything here takes distributions (:func:`compare_items`), so it works without a model;
:func:`compare_dirs` adds the folders and the listener on top. ``gml compare`` is the command.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.stats
from torch.distributions import Distribution

from gml import text_table
from gml.errors import GMLError
from gml.scoring.statistics import SCALE, simulate_panels
from gml.stats import ci_halfwidth

if TYPE_CHECKING:  # matplotlib and the listener's heavy parts are imported lazily
    from matplotlib.figure import Figure

    from gml.listener import Listener

__all__ = [
    "ALL_ITEMS",
    "Comparison",
    "ItemMatch",
    "compare_dirs",
    "compare_items",
    "compare_matched",
    "comparison_figure",
    "curve_items",
    "first_reaching",
    "format_overall",
    "format_table",
    "match_items",
    "paired_power_curve",
    "write_report",
]

#: Name of the summary row over all items.
ALL_ITEMS = "all items"

#: Columns of :attr:`Comparison.items` (after any ``reference, a, b`` path columns).
ITEM_COLUMNS = (
    "name",
    "mean_a",
    "std_a",
    "mean_b",
    "std_b",
    "mean_diff",
    "sd_diff",
    "ci95",
    "low",
    "high",
    "power",
    "n80",
)

TEST_TEXT = (
    "two-sided paired t-test at {alpha} on each listener's difference A - B (MUSHRA: every "
    "listener rates every condition of a trial, so the per-listener differences are what the "
    "test uses)"
)
IDENTITY_TEXT = (
    "The model has no listener identity: a simulated listener's scores for A and B are "
    "independent draws. In a real panel a listener's own offset is shared by A and B and "
    "cancels in the paired difference, so a real test can have more power than simulated "
    "here: the simulated power and the N for {target} power are conservative in that respect."
)


# ----------------------------------------------------------------------------- statistics


def paired_power_curve(diffs: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Power of a two-sided paired t-test for every panel size, from nested simulated panels.

    Row ``k`` of ``diffs`` is one simulated panel's per-listener differences A − B; the panel
    of ``n`` listeners is its first ``n`` columns. A panel is significant when
    ``|mean| > t(1 − alpha/2, n − 1) · sd / √n`` (``sd`` with ddof 1), which is
    ``scipy.stats.ttest_rel``'s ``p < alpha``. A panel whose differences are all equal has
    ``sd = 0``: significant when the difference is not 0 (t is infinite), not significant
    when it is 0 (t is 0/0, as when A and B both sit at the top of the scale).

    Args:
        diffs: Per-listener differences of ``K`` panels of ``Nmax`` listeners.
        alpha: Significance level of the two-sided test.

    Returns:
        The share of significant panels for ``n = 2 … Nmax`` (float64).

    Shape:
        diffs: ``[K, Nmax]`` with ``Nmax >= 2``; returns ``[Nmax - 1]``.
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    if diffs.ndim != 2 or diffs.shape[1] < 2 or diffs.shape[0] < 1:
        raise ValueError(f"diffs must be [K >= 1, Nmax >= 2], got shape {diffs.shape}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    # running sums give mean and variance for every n in one pass; subtracting each panel's
    # first difference keeps them well conditioned and makes a constant panel exactly sd = 0
    first = diffs[:, :1]
    x = diffs - first
    n = np.arange(1, diffs.shape[1] + 1, dtype=np.float64)
    s1 = np.cumsum(x, axis=1)
    s2 = np.cumsum(x * x, axis=1)
    mean_x = s1 / n
    var = np.maximum(s2 - s1 * mean_x, 0.0)[:, 1:] / (n[1:] - 1.0)
    mean = (mean_x + first)[:, 1:]
    crit = scipy.stats.t.ppf(1.0 - alpha / 2.0, n[1:] - 1.0)
    # no division: 0 > 0 is False for an all-zero panel, where the t statistic is undefined
    significant = np.abs(mean) > crit * np.sqrt(var / n[1:])
    return significant.mean(axis=0)


def first_reaching(curve: np.ndarray, ns: np.ndarray, target: float = 0.8) -> int | None:
    """The smallest ``n`` whose power reaches ``target``; ``None`` when none does.

    Shape:
        curve, ns: ``[G]`` (power and panel size on the same grid, ``ns`` increasing).
    """
    hit = np.flatnonzero(np.asarray(curve) >= target)
    return int(np.asarray(ns)[hit[0]]) if len(hit) else None


def _draw_seed(seed: int, item: int, codec: int) -> int:
    """An independent torch seed per item and codec (A and B must never share draws: equal
    distributions would then give identical scores and a difference of exactly 0)."""
    return int(np.random.SeedSequence([seed, item, codec]).generate_state(1)[0])


def _clamped_mean(dist: Distribution) -> float:
    return float(np.clip(float(dist.mean), *SCALE))


@dataclass
class Comparison:
    """The result of :func:`compare_items` / :func:`compare_dirs`.

    Attributes:
        items: One row per item: ``name``, the predicted ``mean_a, std_a, mean_b, std_b``
            (means clamped to 0–100 as ``gml predict`` reports them), ``mean_diff`` (A − B),
            ``sd_diff`` (``sqrt(std_a² + std_b²)``, the listener SD of a difference), ``ci95``
            (t-based half-width for ``n_listeners``), ``low, high`` (``mean_diff ∓ ci95``),
            ``power`` (simulated, at ``n_listeners``) and ``n80`` (smallest N with power ≥
            ``target_power``, NA when not reached by ``max_listeners``); :func:`compare_dirs`
            puts ``reference, a, b`` (the paths) after ``name``.
        overall: The same figures over all items: the mean over items of each mean, and as
            SD the SD of one listener's mean over items (draws independent across items).
        curves: Simulated power for every panel size (index ``n`` from 2 up), columns
            :data:`ALL_ITEMS` then the item names.
        n_listeners, n_panels, seed, max_listeners, alpha, target_power: The settings.
        meta: Free-form context for the report (checkpoint, folders, left-out files).
    """

    items: pd.DataFrame
    overall: dict[str, Any]
    curves: pd.DataFrame
    n_listeners: int
    n_panels: int
    seed: int
    max_listeners: int
    alpha: float = 0.05
    target_power: float = 0.8
    meta: dict[str, Any] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """The per-item rows with the :data:`ALL_ITEMS` row appended (what ``per_item.csv``
        holds)."""
        row = pd.DataFrame([self.overall])
        return pd.concat([self.items, row], ignore_index=True)[self.items.columns]


def compare_items(
    dists_a: Sequence[Distribution],
    dists_b: Sequence[Distribution],
    n_listeners: int = 20,
    n_panels: int = 2000,
    seed: int = 0,
    max_listeners: int = 100,
    *,
    names: Sequence[str] | None = None,
    alpha: float = 0.05,
    target_power: float = 0.8,
) -> Comparison:
    """Predicted difference A − B and simulated paired-t-test power, per item and overall.

    For each item, ``n_panels`` panels of ``max(n_listeners, max_listeners)`` listeners are
    simulated: every listener draws one score from the item's A distribution and one from
    its B distribution (:func:`~gml.listener.simulate_panels`, clipped to 0–100), and their
    difference enters a two-sided paired t-test (:func:`paired_power_curve`). The panel of
    ``n`` listeners is the first ``n`` listeners, so one simulation gives the power for every
    ``n``. Over all items, each listener's mean over items of A − B is tested the same way.

    The model has no listener identity, so A and B draws are independent; in a real panel a
    listener's offset cancels in the paired difference, and a real test can have more power
    than simulated here (the simulated power is conservative in that respect).

    Args:
        dists_a: Score distribution of (reference, A) per item (scalar batch shape).
        dists_b: The same for (reference, B), in the same item order.
        n_listeners: Panel size N of the planned test (the CI and ``power`` columns).
        n_panels: Simulated panels K per item (the power's binomial SD is
            ``sqrt(p (1 − p) / K)``).
        seed: Seed of all draws; the same seed and items give the same result.
        max_listeners: Largest N searched for ``target_power``.
        names: Item names (default ``item0``, ``item1``...); must be unique.
        alpha: Significance level of the test.
        target_power: The power whose N is reported (``n80``).

    Returns:
        A :class:`Comparison`.

    Raises:
        ValueError: no items, lists of different lengths, repeated names or a setting out of
            range.
    """
    m = len(dists_a)
    if m == 0 or m != len(dists_b):
        raise ValueError(
            f"need the same, non-zero number of A and B items, got {m}, {len(dists_b)}"
        )
    if n_listeners < 2 or max_listeners < 2:
        raise ValueError("n_listeners and max_listeners must be at least 2")
    if n_panels < 1:
        raise ValueError(f"n_panels must be at least 1, got {n_panels}")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, got {seed}")
    if not 0.0 < target_power < 1.0:
        raise ValueError(f"target_power must lie in (0, 1), got {target_power}")
    names = [f"item{i}" for i in range(m)] if names is None else [str(n) for n in names]
    if len(names) != m or len(set(names)) != m or ALL_ITEMS in names:
        raise ValueError(f"names must be {m} unique names other than {ALL_ITEMS!r}")

    n_sim = max(n_listeners, max_listeners)
    ns = np.arange(2, n_sim + 1)
    in_search = ns <= max_listeners
    at_n = n_listeners - 2  # index of N on the curve

    rows: list[dict[str, Any]] = []
    curves: dict[str, np.ndarray] = {}
    total = np.zeros((n_panels, n_sim))  # running sum over items of each listener's A - B
    for i, (da, db) in enumerate(zip(dists_a, dists_b)):
        a = simulate_panels(da, n_sim, n_panels, _draw_seed(seed, i, 0))
        b = simulate_panels(db, n_sim, n_panels, _draw_seed(seed, i, 1))
        d = a - b
        del a, b  # keep at most a few [K, N] arrays alive, whatever the number of items
        total += d
        curve = paired_power_curve(d, alpha)
        curves[names[i]] = curve
        mean_a, mean_b = _clamped_mean(da), _clamped_mean(db)
        std_a, std_b = float(da.stddev), float(db.stddev)
        rows.append(
            _figures(names[i], mean_a, std_a, mean_b, std_b, n_listeners)
            | {
                "power": float(curve[at_n]),
                "n80": first_reaching(curve[in_search], ns[in_search], target_power),
            }
        )
    items = pd.DataFrame(rows, columns=list(ITEM_COLUMNS))
    items["n80"] = items["n80"].astype("Int64")  # NA: not reached by max_listeners

    overall_curve = paired_power_curve(total / m, alpha)
    # one listener's mean over items: the means average, the (independent) variances add / m²
    overall = _figures(
        ALL_ITEMS,
        float(items["mean_a"].mean()),
        math.sqrt(float((items["std_a"] ** 2).sum())) / m,
        float(items["mean_b"].mean()),
        math.sqrt(float((items["std_b"] ** 2).sum())) / m,
        n_listeners,
    ) | {
        "power": float(overall_curve[at_n]),
        "n80": first_reaching(overall_curve[in_search], ns[in_search], target_power),
    }
    curve_frame = pd.DataFrame({ALL_ITEMS: overall_curve, **curves}, index=pd.Index(ns, name="n"))
    return Comparison(
        items=items,
        overall=overall,
        curves=curve_frame,
        n_listeners=int(n_listeners),
        n_panels=int(n_panels),
        seed=int(seed),
        max_listeners=int(max_listeners),
        alpha=float(alpha),
        target_power=float(target_power),
    )


def _figures(
    name: str, mean_a: float, std_a: float, mean_b: float, std_b: float, n: int
) -> dict[str, Any]:
    """The analytic columns of one row: difference, its listener SD and N-listener CI."""
    diff = mean_a - mean_b
    sd = math.hypot(std_a, std_b)
    ci = float(ci_halfwidth(sd, n))
    return {
        "name": name,
        "mean_a": mean_a,
        "std_a": std_a,
        "mean_b": mean_b,
        "std_b": std_b,
        "mean_diff": diff,
        "sd_diff": sd,
        "ci95": ci,
        "low": diff - ci,
        "high": diff + ci,
    }


# ----------------------------------------------------------------------------- folders


@dataclass
class ItemMatch:
    """Items found in all three folders (see :func:`match_items`).

    Attributes:
        names: Item names (the reference's file name).
        references, a, b: Paths of each item's reference and codec files.
        reference_dir, a_dir, b_dir: The folders.
        missing_in_a, missing_in_b: References without a file in A / B (left out).
        extra_in_a, extra_in_b: Files in A / B without a reference.
        notes: Those facts as lines for stderr.
    """

    names: list[str]
    references: list[str]
    a: list[str]
    b: list[str]
    reference_dir: str
    a_dir: str
    b_dir: str
    missing_in_a: list[str] = field(default_factory=list)
    missing_in_b: list[str] = field(default_factory=list)
    extra_in_a: list[str] = field(default_factory=list)
    extra_in_b: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def match_items(
    reference_dir: str | os.PathLike, a_dir: str | os.PathLike, b_dir: str | os.PathLike
) -> ItemMatch:
    """Match files by name (else by stem) between the references and each codec's folder
    (``gml predict``'s matching, :func:`gml.pairs.match_dirs`); items missing in A or
    B are left out and listed in ``notes``.

    Raises:
        GMLError: a folder is missing, a codec folder shares no name with the references, or
            no reference has a file in both A and B.
    """
    from gml.pairs import audio_files, match_dirs

    ref_dir, a_path, b_path = Path(reference_dir), Path(a_dir), Path(b_dir)
    for label, d in (("reference", ref_dir), ("A", a_path), ("B", b_path)):
        if not d.is_dir():
            raise GMLError(f"{d}: {label} folder not found")
    pairs = {"A": match_dirs(ref_dir, a_path), "B": match_dirs(ref_dir, b_path)}
    matched = {k: dict(zip(m.references, m.coded)) for k, m in pairs.items()}
    match = ItemMatch([], [], [], [], str(ref_dir), str(a_path), str(b_path))
    for r in map(str, audio_files(ref_dir)):
        if r in matched["A"] and r in matched["B"]:
            match.names.append(Path(r).name)
            match.references.append(r)
            match.a.append(matched["A"][r])
            match.b.append(matched["B"][r])
        else:
            if r not in matched["A"]:
                match.missing_in_a.append(Path(r).name)
            if r not in matched["B"]:
                match.missing_in_b.append(Path(r).name)
    match.extra_in_a = pairs["A"].lonely_coded
    match.extra_in_b = pairs["B"].lonely_coded
    for label, d, names in (
        ("A", a_path, match.missing_in_a),
        ("B", b_path, match.missing_in_b),
    ):
        if names:
            match.notes.append(
                f"no file in {label} ({d}) for {len(names)} reference(s), left out: "
                + ", ".join(names)
            )
    for label, d, names in (("A", a_path, match.extra_in_a), ("B", b_path, match.extra_in_b)):
        if names:
            match.notes.append(
                f"no reference for {len(names)} file(s) in {label} ({d}): " + ", ".join(names)
            )
    if not match.names:
        raise GMLError(f"{ref_dir}: no reference has a file of the same name in both A and B")
    return match


def compare_matched(
    listener: Listener,
    match: ItemMatch,
    n_listeners: int = 20,
    n_panels: int = 2000,
    seed: int = 0,
    max_listeners: int = 100,
    *,
    progress: bool | None = None,
    **kwargs: Any,
) -> Comparison:
    """:func:`compare_items` on the listener's predictions for matched files.

    Args:
        listener: A trained :class:`~gml.listener.Listener`.
        match: :func:`match_items`'s result.
        n_listeners, n_panels, seed, max_listeners: See :func:`compare_items`.
        progress: Progress bar over the pairs, two per item (default: for more than 8 items).
        **kwargs: More :func:`compare_items` options (``alpha``, ``target_power``).

    Returns:
        The :class:`Comparison`, with ``reference, a, b`` path columns and ``meta`` naming
        the checkpoint, the folders and the files left out.
    """
    show = progress if progress is not None else len(match.names) > 8
    # one batched pass over all pairs, each reference followed by its two coded versions
    # (so its features are computed once, Listener.feature_memory)
    refs = [r for r in match.references for _ in (0, 1)]
    coded = [c for pair in zip(match.a, match.b) for c in pair]
    frame = listener.predict(refs, coded, distributions=True, progress=show)
    dists_a: list[Distribution] = frame["distribution"].iloc[0::2].tolist()
    dists_b: list[Distribution] = frame["distribution"].iloc[1::2].tolist()
    result = compare_items(
        dists_a, dists_b, n_listeners, n_panels, seed, max_listeners, names=match.names, **kwargs
    )
    result.items.insert(1, "reference", match.references)
    result.items.insert(2, "a", match.a)
    result.items.insert(3, "b", match.b)
    result.overall |= {"reference": "", "a": "", "b": ""}
    result.meta |= {
        "checkpoint": listener.checkpoint,
        "reference_dir": match.reference_dir,
        "a_dir": match.a_dir,
        "b_dir": match.b_dir,
        "missing_in_a": match.missing_in_a,
        "missing_in_b": match.missing_in_b,
        "extra_in_a": match.extra_in_a,
        "extra_in_b": match.extra_in_b,
    }
    return result


def compare_dirs(
    listener: Listener,
    reference_dir: str | os.PathLike,
    a_dir: str | os.PathLike,
    b_dir: str | os.PathLike,
    n_listeners: int = 20,
    n_panels: int = 2000,
    seed: int = 0,
    max_listeners: int = 100,
    **kwargs: Any,
) -> Comparison:
    """Compare the codecs of two folders over the references of a third (matched by name).

    :func:`match_items` then :func:`compare_matched` (see there; ``kwargs`` go to it). The
    files left out are in ``meta``, not printed.
    """
    match = match_items(reference_dir, a_dir, b_dir)
    return compare_matched(listener, match, n_listeners, n_panels, seed, max_listeners, **kwargs)


# ----------------------------------------------------------------------------- text


def _pct(value: float) -> str:
    """``0.8`` → ``"80 %"`` (the project writes a space before the percent sign)."""
    return f"{100 * value:g} %"


def _n80_text(value: Any, limit: int) -> str:
    return f"> {limit}" if value is None or pd.isna(value) else str(int(value))


def _rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the per-item table plus the all-items row."""
    header = ["item", "mean A", "mean B", "A - B", "95 % CI", "SD(A-B)", "power"]
    header.append(f"N for {_pct(comparison.target_power)}")
    cells = []
    for row in [*comparison.items.to_dict("records"), comparison.overall]:
        cells.append(
            [
                str(row["name"]),
                f"{row['mean_a']:.1f}",
                f"{row['mean_b']:.1f}",
                f"{row['mean_diff']:+.1f}",
                f"±{row['ci95']:.1f}",
                f"{row['sd_diff']:.1f}",
                f"{row['power']:.2f}",
                _n80_text(row["n80"], comparison.max_listeners),
            ]
        )
    return header, cells


def format_table(comparison: Comparison) -> str:
    """The per-item table (with the all-items row last) as aligned plain text."""
    header, cells = _rows(comparison)
    return text_table.aligned(header, cells, header_rule=False, rule_before_last=True)


def format_overall(comparison: Comparison) -> str:
    """One line: the mean difference over items, its CI, the power and the N for 80 %."""
    o, c = comparison.overall, comparison
    if o["n80"] is None or pd.isna(o["n80"]):
        reach = f"{_pct(c.target_power)} power not reached with up to {c.max_listeners} listeners"
    else:
        reach = f"{_pct(c.target_power)} power from {int(o['n80'])} listeners"
    return (
        f"{ALL_ITEMS} ({len(c.items)}): A - B = {o['mean_diff']:+.1f} ± {o['ci95']:.1f} "
        f"(95 % CI, {c.n_listeners} listeners); power {o['power']:.2f} with {c.n_listeners} "
        f"listeners (paired t-test, {_pct(c.alpha)}, {c.n_panels} simulated panels); " + reach
    )


def _report_text(c: Comparison, plot_name: str, csv_name: str, curves_name: str) -> str:
    meta = c.meta
    shown = curve_items(c)  # the items of the figure's power panel
    lines = ["# Codec comparison A - B", ""]
    if meta.get("checkpoint"):
        lines.append(f"- checkpoint: `{meta['checkpoint']}`")
    for key, label in (("reference_dir", "references"), ("a_dir", "A"), ("b_dir", "B")):
        if meta.get(key):
            lines.append(f"- {label}: `{meta[key]}`")
    lines.append(f"- items compared: {len(c.items)}")
    for key, label in (
        ("missing_in_a", "left out, no file in A"),
        ("missing_in_b", "left out, no file in B"),
        ("extra_in_a", "in A without a reference"),
        ("extra_in_b", "in B without a reference"),
    ):
        if meta.get(key):
            lines.append(f"- {label}: {', '.join(meta[key])}")
    lines += [
        f"- planned test: N = {c.n_listeners} listeners; power from K = {c.n_panels} simulated "
        f"panels per item (seed {c.seed}), N for {_pct(c.target_power)} power searched from 2 "
        f"to {c.max_listeners}",
        "- test: " + TEST_TEXT.format(alpha=_pct(c.alpha)),
        "- scores: drawn from the predicted distributions and clipped to 0-100 as on a slider; "
        "mean, SD and CI are the model's (SD(A-B) = sqrt(SD_A² + SD_B²); the CI is the t-based "
        f"95 % half-width for {c.n_listeners} listeners)",
        "",
        "> " + IDENTITY_TEXT.format(target=_pct(c.target_power)),
        "",
        "## Per item",
        "",
        text_table.markdown(*_rows(c)),
        "",
        f"## {ALL_ITEMS.capitalize()}",
        "",
        format_overall(c),
        "",
        "Over all items each simulated listener rates every item with both codecs; the "
        "listener's mean over items of A - B enters the paired t-test.",
        "",
        f"![mean differences and power]({plot_name})",
        "",
        f"The power panel shows {_curves_text(c, shown)}"
        + ("." if len(shown) == len(c.items) else f": {', '.join(shown)}."),
        "",
        f"Files: [{csv_name}]({csv_name}) (the table), [{curves_name}]({curves_name}) "
        "(simulated power for every N).",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- files


#: Items whose power curves the figure draws at most (all items when there are no more).
MAX_CURVES = 12


def curve_items(comparison: Comparison, max_curves: int = MAX_CURVES) -> list[str]:
    """The items whose power curves :func:`comparison_figure` draws: all of them when there
    are at most ``max_curves``, else ``max_curves`` spread over the range of their power at
    N listeners (for each of ``max_curves`` evenly spaced power values, the nearest item not
    yet chosen), so that items of intermediate power are among them, in item order."""
    items = comparison.items
    names = [str(n) for n in items["name"]]
    if len(names) <= max_curves:
        return names
    power = items["power"].to_numpy(dtype=float)
    chosen: list[int] = []
    for target in np.linspace(power.min(), power.max(), max_curves):
        free = [i for i in range(len(names)) if i not in chosen]
        chosen.append(min(free, key=lambda i: (abs(power[i] - target), i)))
    return [names[i] for i in sorted(chosen)]


def _curves_text(comparison: Comparison, shown: list[str]) -> str:
    """What the power panel shows, for its title and the report."""
    m = len(comparison.items)
    if len(shown) == m:
        return f"all {m} items"
    return f"{len(shown)} of {m} items, spread over their power at N = {comparison.n_listeners}"


def comparison_figure(comparison: Comparison, max_curves: int = MAX_CURVES) -> Figure:
    """(a) Per-item mean difference A − B with its 95 % CI (and the all-items one); (b)
    simulated power vs N over all items and for the items of :func:`curve_items` (all when
    there are at most ``max_curves``); the panel's title says which."""
    from gml.plots import new_figure

    c = comparison
    items = c.items
    m = len(items)
    fig = new_figure(min(4.0 + 0.35 * m, 16.0) + 5.5, 4.8)
    ax_d, ax_p = fig.subplots(1, 2, width_ratios=[min(4.0 + 0.35 * m, 16.0), 5.5])

    x = np.arange(m)
    ax_d.axhline(0.0, color="black", linewidth=0.8)
    ax_d.errorbar(
        x,
        items["mean_diff"],
        yerr=items["ci95"],
        fmt="o",
        color="tab:blue",
        capsize=3,
        label=f"item, 95 % CI ({c.n_listeners} listeners)",
    )
    o = c.overall
    ax_d.errorbar(
        [m + 0.5],
        [o["mean_diff"]],
        yerr=[o["ci95"]],
        fmt="D",
        color="tab:red",
        capsize=4,
        label=ALL_ITEMS,
    )
    ticks = [*x, m + 0.5]
    labels = [*items["name"].astype(str), ALL_ITEMS]
    if m <= 40:  # beyond that the names would overlap; the CSV has them
        ax_d.set_xticks(ticks, [Path(s).stem for s in labels[:-1]] + [labels[-1]])
        for t in ax_d.get_xticklabels():
            t.set_rotation(60)
            t.set_horizontalalignment("right")
            t.set_fontsize(8)
    else:
        ax_d.set_xlabel("item")
    ax_d.set_ylabel("predicted mean difference A - B")
    ax_d.set_title("(a) A - B per item")
    ax_d.grid(True, axis="y", alpha=0.3)
    ax_d.legend(fontsize=8, loc="best")

    curves = c.curves.loc[c.curves.index <= max(c.max_listeners, c.n_listeners)]
    ns = curves.index.to_numpy()
    shown = curve_items(c, max_curves)
    for name in shown:
        ax_p.plot(ns, curves[name], linewidth=1.0, alpha=0.8, label=Path(str(name)).stem)
    ax_p.plot(ns, curves[ALL_ITEMS], color="black", linewidth=2.2, label=ALL_ITEMS)
    ax_p.axhline(c.target_power, color="tab:red", linestyle="--", linewidth=0.8)
    ax_p.axhline(c.alpha, color="0.5", linestyle=":", linewidth=0.8)
    ax_p.axvline(c.n_listeners, color="0.5", linestyle="--", linewidth=0.8)
    ax_p.set_ylim(0.0, 1.02)
    ax_p.set_xlim(2, ns[-1])
    ax_p.set_xlabel("listeners N")
    ax_p.set_ylabel("power (share of significant panels)")
    ax_p.set_title(f"(b) paired t-test power, {c.n_panels} panels\n{_curves_text(c, shown)}")
    ax_p.grid(True, alpha=0.3)
    ax_p.legend(fontsize=7, loc="lower right", ncol=2 if len(shown) > 6 else 1)
    return fig


def write_report(comparison: Comparison, out: str | os.PathLike) -> dict[str, Path]:
    """Write the Markdown report and, next to it, the plot, the table and the power curves
    (all atomically).

    Args:
        comparison: The result to report.
        out: The report's path (``.md``); its folder is created.

    Returns:
        ``{"report", "plot", "csv", "curves"}`` → paths (``report.md``, ``compare.png``,
        ``per_item.csv``, ``power_curves.csv``; the last three beside the report).
    """
    from gml.atomic import atomic_write_text
    from gml.plots import save_figure

    out = Path(out)
    folder = out.parent
    paths = {
        "report": out,
        "plot": folder / "compare.png",
        "csv": folder / "per_item.csv",
        "curves": folder / "power_curves.csv",
    }
    save_figure(comparison_figure(comparison), paths["plot"])
    atomic_write_text(paths["csv"], comparison.table().to_csv(index=False, float_format="%.4f"))
    atomic_write_text(paths["curves"], comparison.curves.to_csv(float_format="%.4f"))
    text = _report_text(comparison, paths["plot"].name, paths["csv"].name, paths["curves"].name)
    atomic_write_text(out, text)  # last: a report never links files that are not there yet
    return paths
