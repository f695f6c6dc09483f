"""Post-screening of listeners per ITU-R BS.1534-3 (section 4.1.2).

A listener is excluded from a test when, in more than 15 % of the trials (items) in which
they rated it, they scored the **hidden reference below 90**, or the **mid-range anchor above
90**. Screening is per test: a listener excluded from one test keeps their ratings in others.

Which condition is the hidden reference / the mid anchor comes from the ``role`` column the
importers fill (webMUSHRA: ``reference`` and ``anchor70``; BeaqleJS: ``Reference``; ODAQ: the
reference and ``lp70`` patterns) or from names given by the user (:func:`assign_roles`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import pandas as pd

from gml.data.importers.base import ImporterError, ImportResult, count_missing_audio
from gml.data.manifest import ROLES, Manifest

__all__ = ["ScreeningReport", "apply_screening", "assign_roles", "parse_roles", "screen_listeners"]

THRESHOLD = 90.0
MAX_FRACTION = 0.15


def _matches(conditions: pd.Series, name: str) -> pd.Series:
    """Conditions equal to ``name`` or fully matched by it as a regular expression."""
    try:
        rx = re.compile(name)
    except re.error:
        return conditions.eq(name)
    return conditions.eq(name) | conditions.map(lambda c: rx.fullmatch(c) is not None)


def assign_roles(
    ratings: pd.DataFrame,
    hidden_reference: str | None = None,
    anchor: str | None = None,
    roles: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Set the ``role`` column from condition names.

    Args:
        ratings: Manifest ratings.
        hidden_reference: Condition name (or a regular expression matching whole names) of the
            hidden reference; replaces any hidden-reference role set before.
        anchor: Same for the mid-range anchor.
        roles: ``{condition name or pattern: role}`` for any role of
            :data:`~gml.data.manifest.ROLES` (``--role NAME=ROLE``), applied after the two
            above; a role given here is taken from the conditions it no longer matches.

    Returns:
        A copy with the ``role`` column.

    Raises:
        ImporterError: A name that matches no condition, or an unknown role.
    """
    out = ratings.copy()
    if "role" not in out:
        out["role"] = ""
    given = [
        ("hidden_reference", hidden_reference, "--hidden-reference"),
        ("mid_anchor", anchor, "--anchor"),
        *((role, name, "--role") for name, role in (roles or {}).items()),
    ]
    cleared: set[str] = set()
    for role, name, flag in given:
        if name is None:
            continue
        if role not in ROLES:
            raise ImporterError(
                f"{flag} {name!r}: unknown role {role!r}; expected one of {', '.join(ROLES)}"
            )
        hit = _matches(out["condition"], name)
        if not hit.any():
            known = ", ".join(sorted(out["condition"].unique())[:20])
            raise ImporterError(f"{flag} {name!r}: matches no condition (conditions: {known})")
        if role not in cleared:  # names given for a role replace what the importer said
            out.loc[out["role"].eq(role) & ~hit, "role"] = ""
            cleared.add(role)
        out.loc[hit, "role"] = role
    return out


def parse_roles(specs: Iterable[str]) -> dict[str, str]:
    """``["ref=hidden_reference", "Quality=low_anchor"]`` (``--role``) → ``{name: role}``.

    Raises:
        ImporterError: An entry without ``=`` or with an unknown role.
    """
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, role = spec.rpartition("=")
        if not sep or not name.strip() or role.strip() not in ROLES:
            raise ImporterError(
                f"--role {spec!r}: expected CONDITION=ROLE with ROLE one of {', '.join(ROLES)}"
            )
        out[name.strip()] = role.strip()
    return out


@dataclass
class ScreeningReport:
    """Per-listener screening figures.

    Attributes:
        table: One row per (test, listener): ``reference_trials``, ``reference_below``
            (hidden reference scored below the threshold), ``anchor_trials``, ``anchor_above``
            (mid anchor scored above it), ``excluded`` and ``reason``.
        threshold: The score threshold (90).
        max_fraction: The allowed share of failed trials (0.15).
    """

    table: pd.DataFrame
    threshold: float = THRESHOLD
    max_fraction: float = MAX_FRACTION

    @property
    def n_excluded(self) -> int:
        """Listeners (test, listener pairs) screened out."""
        return int(self.table["excluded"].sum())

    def excluded(self) -> list[tuple[str, str]]:
        """The (test, listener) pairs screened out."""
        t = self.table[self.table["excluded"]]
        return list(zip(t["test"], t["listener"]))

    def format(self) -> str:
        """The report as text: a header line and one line per listener."""
        t = self.table
        head = (
            f"screening (ITU-R BS.1534-3): {self.n_excluded} of {len(t)} listener(s) screened "
            f"out (hidden reference < {self.threshold:g} or mid anchor > {self.threshold:g} in "
            f"more than {self.max_fraction:.0%} of trials)"
        )
        lines = [head]
        for r in t.itertuples(index=False):
            ref = f"ref<{self.threshold:g} {r.reference_below}/{r.reference_trials}"
            anc = f"anchor>{self.threshold:g} {r.anchor_above}/{r.anchor_trials}"
            verdict = f"OUT: {r.reason}" if r.excluded else "kept"
            lines.append(f"  {r.test}/{r.listener}: {ref}, {anc}: {verdict}")
        return "\n".join(lines)


def screen_listeners(
    ratings: pd.DataFrame,
    *,
    threshold: float = THRESHOLD,
    max_fraction: float = MAX_FRACTION,
) -> ScreeningReport:
    """Apply the BS.1534-3 post-screening rule to ratings with a ``role`` column.

    Args:
        ratings: Manifest ratings with ``role`` (see :func:`assign_roles`).
        threshold: Score threshold for both criteria.
        max_fraction: A listener fails a criterion when the failing share of their trials is
            strictly greater than this.

    Raises:
        ImporterError: No rating of a hidden reference or a mid anchor.
    """
    role = ratings["role"] if "role" in ratings else pd.Series("", index=ratings.index)
    if not role.isin(["hidden_reference", "mid_anchor"]).any():
        raise ImporterError(
            "screening: no hidden-reference or mid-anchor ratings; name those conditions with "
            "--hidden-reference NAME and/or --anchor NAME"
        )
    df = ratings.assign(
        is_ref=role.eq("hidden_reference"),
        is_anchor=role.eq("mid_anchor"),
    )
    df["ref_low"] = df["is_ref"] & (df["score"] < threshold)
    df["anchor_high"] = df["is_anchor"] & (df["score"] > threshold)
    # trials, not ratings: an item counts once even if it holds two hidden references
    keys = df[["test", "listener"]].drop_duplicates().sort_values(["test", "listener"])
    index = pd.MultiIndex.from_frame(keys)
    table = pd.DataFrame(
        {
            name: _trials(df, flag).reindex(index, fill_value=0)
            for name, flag in (
                ("reference_trials", "is_ref"),
                ("reference_below", "ref_low"),
                ("anchor_trials", "is_anchor"),
                ("anchor_above", "anchor_high"),
            )
        },
        index=index,
    ).reset_index()
    ref_frac = table["reference_below"] / table["reference_trials"].where(
        table["reference_trials"] > 0
    )
    anc_frac = table["anchor_above"] / table["anchor_trials"].where(table["anchor_trials"] > 0)
    ref_fail = ref_frac.gt(max_fraction)
    anc_fail = anc_frac.gt(max_fraction)
    table["excluded"] = ref_fail | anc_fail
    reasons = []
    for rf, af, rfr, afr in zip(ref_fail, anc_fail, ref_frac, anc_frac):
        parts = []
        if rf:
            parts.append(f"hidden reference < {threshold:g} in {rfr:.0%} of trials")
        if af:
            parts.append(f"mid anchor > {threshold:g} in {afr:.0%} of trials")
        reasons.append("; ".join(parts))
    table["reason"] = reasons
    return ScreeningReport(table, threshold, max_fraction)


def apply_screening(
    result: ImportResult,
    *,
    threshold: float = THRESHOLD,
    max_fraction: float = MAX_FRACTION,
) -> ImportResult:
    """Screen an import: drop the excluded listeners' ratings of the test they failed.

    Returns:
        A new result with the remaining ratings and ``screening`` set.

    Raises:
        ImporterError: No hidden-reference / mid-anchor ratings, or every listener excluded.
    """
    ratings = result.manifest.ratings
    report = screen_listeners(ratings, threshold=threshold, max_fraction=max_fraction)
    out = set(report.excluded())
    keep = [(t, li) not in out for t, li in zip(ratings["test"], ratings["listener"])]
    kept = ratings[keep].reset_index(drop=True)
    if len(kept) == 0:
        raise ImporterError(
            f"screening removed every listener ({len(out)}); nothing left to import"
        )
    # a subset of a validated manifest is valid: no need to check it (and its audio) again
    manifest = Manifest(kept, result.manifest.path)
    return replace(
        result, manifest=manifest, screening=report, missing_audio=count_missing_audio(manifest)
    )


def _trials(df: pd.DataFrame, flag: str) -> pd.Series:
    """Distinct items per (test, listener) among the rows where ``flag`` is true."""
    sub = df.loc[df[flag], ["test", "listener", "item"]].drop_duplicates()
    return sub.groupby(["test", "listener"]).size()
