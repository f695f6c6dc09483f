"""Fit the demo's simulated listener panel to real MUSHRA ratings (SiSEC 2008), and compare
the simulated panel with the real one: the research behind
:data:`gml.data.demo.panel.DEFAULT_SETTINGS` and ``docs/demo-panel.md``. Not part of the
package: the SiSEC08 ratings are not shipped (CC BY-NC-SA 4.0).

    python tools/demo_panel_fit.py --sisec PATH/SiSEC08_anonymized.csv [--demo MANIFEST]

prints the fitted settings, the committed ones and the comparison tables of the doc; it exits
1 when the rounded fit differs from the committed settings. The panel model itself (drawing
listeners, rating a trial) is :mod:`gml.data.demo.panel`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special

from gml.data.demo import demo_manifest
from gml.data.demo.panel import (
    DEFAULT_SETTINGS,
    KINDS,
    MID,
    PanelSettings,
    demo_kind,
    draw_listeners,
    rate_trial,
)

__all__ = [
    "PanelFit",
    "compare_panels",
    "comparison_markdown",
    "fit_panel",
    "fit_panel_settings",
    "panel_stats",
    "simulate_like",
    "sisec08_kind",
]


def sisec08_kind(condition: str) -> str:
    """Kind of a SiSEC08 condition: ``orig`` is the hidden reference, ``anchor`` the anchor."""
    return {"orig": "reference", "anchor": "anchor"}.get(condition, "system")


def simulate_like(
    latent: pd.DataFrame,
    n_listeners: int,
    n_panels: int = 1,
    seed: int = 0,
    settings: PanelSettings = DEFAULT_SETTINGS,
) -> pd.DataFrame:
    """Simulated panels rating the stimuli of ``latent`` (e.g. :attr:`PanelFit.latent`).

    Args:
        latent: Columns ``trial, condition, kind, latent`` (one row per stimulus).
        n_listeners: Listeners per panel; every panel rates every trial.
        n_panels: Independent panels (their listeners are named ``p<k>-L<i>``).
        seed: Seed of the draws.
        settings: Panel settings.

    Returns:
        Ratings with columns ``listener, trial, condition, kind, score``.
    """
    rng = np.random.default_rng(seed)
    frames = []
    trials = list(latent.groupby("trial", sort=True))
    for k in range(n_panels):
        ids = [f"p{k}-L{i + 1}" for i in range(n_listeners)]
        lis = draw_listeners(n_listeners, rng, settings, ids)
        for trial, g in trials:
            sc = rate_trial(g["latent"].to_numpy(), list(g["kind"]), lis, rng, settings)
            frames.append(
                pd.DataFrame(
                    {
                        "listener": np.repeat(ids, len(g)),
                        "trial": trial,
                        "condition": np.tile(g["condition"].to_numpy(), n_listeners),
                        "kind": np.tile(g["kind"].to_numpy(), n_listeners),
                        "score": sc.ravel(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PanelFit:
    """Result of :func:`fit_panel`.

    Attributes:
        settings: Fitted panel settings (unrounded).
        latent: One row per stimulus: ``trial, condition, kind, latent`` (the reference's latent
            is 100; systems' and anchors' are the fitted means before the slider).
        listeners: One row per listener: ``offset, range, noise_sd`` fitted on the systems.
    """

    settings: PanelSettings
    latent: pd.DataFrame
    listeners: pd.DataFrame


def _standardise(ratings: pd.DataFrame, kind: Callable[[str], str] | None) -> pd.DataFrame:
    """``listener, trial, condition, score, kind`` from SiSEC08 or gml-manifest columns."""
    if {"Listener", "Trial", "Condition", "Ratingscore"} <= set(ratings.columns):
        df = pd.DataFrame(
            {
                "listener": ratings["Listener"].astype(str),
                "trial": ratings["Trial"].astype(str),
                "condition": ratings["Condition"].astype(str),
                "score": ratings["Ratingscore"].astype(float),
            }
        )
        kind = kind or sisec08_kind
    elif {"listener", "item", "condition", "score"} <= set(ratings.columns):
        test = ratings["test"].astype(str) + "/" if "test" in ratings.columns else ""
        df = pd.DataFrame(
            {
                "listener": test + ratings["listener"].astype(str),
                "trial": test + ratings["item"].astype(str),
                "condition": ratings["condition"].astype(str),
                "score": ratings["score"].astype(float),
            }
        )
        kind = kind or demo_kind
    elif {"listener", "trial", "condition", "score"} <= set(ratings.columns):
        df = ratings[["listener", "trial", "condition", "score"]].copy()
        if kind is None and "kind" in ratings.columns:  # simulated ratings carry their kinds
            df["kind"] = ratings["kind"].to_numpy()
            return df.reset_index(drop=True)
        kind = kind or demo_kind
    else:
        raise ValueError(f"unrecognised rating columns {list(ratings.columns)}")
    df["kind"] = df["condition"].map(kind)
    return df.reset_index(drop=True)


_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def _censored_normal(
    y: np.ndarray, m: np.ndarray, log_sd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-likelihood of slider ratings and its derivatives w.r.t. the mean and the log SD.

    Normal latent ratings, censored as a slider does: a 0 means latent < 0.5, a 100 means
    latent >= 99.5 (Tobit); interior integers use the density (rounding is negligible at the
    noise levels involved).
    """
    y, m, log_sd = np.broadcast_arrays(y, m, log_sd)
    sd = np.exp(log_sd)
    ll, dm, ds = np.empty(m.shape), np.empty(m.shape), np.empty(m.shape)
    lo, hi = y <= 0, y >= 100
    mid = ~(lo | hi)
    z = (y[mid] - m[mid]) / sd[mid]
    ll[mid] = -0.5 * z**2 - log_sd[mid] - _LOG_SQRT_2PI
    dm[mid] = z / sd[mid]
    ds[mid] = z**2 - 1
    for mask, edge, sign in ((lo, 0.5, -1.0), (hi, 99.5, 1.0)):
        z = (edge - m[mask]) / sd[mask]
        log_p = special.log_ndtr(sign * -z)  # P(latent < 0.5) or P(latent >= 99.5)
        lam = np.exp(-0.5 * z**2 - _LOG_SQRT_2PI - log_p)
        ll[mask] = log_p
        dm[mask] = sign * lam / sd[mask]
        ds[mask] = sign * lam * z
    return ll, dm, ds


def _minimise(fun, x0: np.ndarray) -> np.ndarray:
    res = optimize.minimize(
        fun, x0, jac=True, method="L-BFGS-B", options=dict(maxiter=20000, ftol=1e-14, gtol=1e-9)
    )
    return res.x


def _fit_systems(df: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """Censored fixed-effects fit of ``50 + r_l (mu_s - 50) + o_l + n_l e`` on system ratings.

    Offsets and log ranges are centred (mean 0 over listeners) so the stimulus latents are on
    the panel's average scale.
    """
    stim_codes, stims = pd.MultiIndex.from_frame(df[["trial", "condition"]]).factorize()
    lis_codes, lis_names = pd.factorize(df["listener"])
    y = df["score"].to_numpy(float)
    n_s, n_l = len(stims), len(lis_names)

    def unpack(th):
        mu = th[:n_s]
        off = th[n_s : n_s + n_l] - th[n_s : n_s + n_l].mean()
        lr = th[n_s + n_l : n_s + 2 * n_l] - th[n_s + n_l : n_s + 2 * n_l].mean()
        return mu, off, lr, th[n_s + 2 * n_l :]

    def nll(th):
        mu, off, lr, ls = unpack(th)
        r = np.exp(lr)[lis_codes]
        dev = mu[stim_codes] - MID
        ll, dm, ds = _censored_normal(y, MID + r * dev + off[lis_codes], ls[lis_codes])
        g_mu = np.bincount(stim_codes, dm * r, n_s)
        g_off = np.bincount(lis_codes, dm, n_l)
        g_lr = np.bincount(lis_codes, dm * r * dev, n_l)
        g_ls = np.bincount(lis_codes, ds, n_l)
        grad = np.concatenate([g_mu, g_off - g_off.mean(), g_lr - g_lr.mean(), g_ls])
        return -ll.sum(), -grad

    means = df.groupby(stim_codes)["score"].mean().to_numpy()
    x0 = np.concatenate([means, np.zeros(2 * n_l), np.full(n_l, np.log(10.0))])
    mu, off, lr, ls = unpack(_minimise(nll, x0))
    latent = pd.Series(mu, index=stims)
    listeners = pd.DataFrame(
        {"offset": off, "range": np.exp(lr), "noise_sd": np.exp(ls)},
        index=pd.Index(lis_names, name="listener"),
    )
    return latent, listeners


def _censored_curvature(y: np.ndarray, m: np.ndarray, log_sd: float) -> np.ndarray:
    """Second derivative w.r.t. the mean of :func:`_censored_normal`'s log-likelihood (<= 0)."""
    sd = np.exp(log_sd)
    out = np.full(m.shape, -1.0 / sd**2)
    for mask, edge, sign in ((y <= 0, 0.5, -1.0), (y >= 100, 99.5, 1.0)):
        w = sign * (m[mask] - edge) / sd  # log P = log Phi(w)
        lam = np.exp(-0.5 * w**2 - _LOG_SQRT_2PI - special.log_ndtr(w))
        out[mask] = -lam * (w + lam) / sd**2
    return out


def _fit_anchor(df: pd.DataFrame, nodes: int = 24) -> tuple[pd.Series, float, float]:
    """Censored random-effects fit of ``mu_t + a_l + sd e`` on anchor ratings.

    The listener effect is integrated out rather than fitted per listener (listeners who put the
    anchor at 0 in every trial have no finite fixed-effect estimate), by adaptive Gauss-Hermite
    quadrature: nodes centred on each listener's posterior mode and scaled by its curvature,
    because a listener's many anchor ratings pin their offset far more tightly than the spread
    of offsets. Returns (latent per anchor stimulus, anchor offset SD, anchor noise SD).
    """
    stim_codes, stims = pd.MultiIndex.from_frame(df[["trial", "condition"]]).factorize()
    lis_codes, lis_names = pd.factorize(df["listener"])
    y = df["score"].to_numpy(float)
    n_s, n_l = len(stims), len(lis_names)
    x, w = np.polynomial.hermite.hermgauss(nodes)
    log_w = np.log(w) + x**2  # integrating h(a) directly, not h(a) exp(-a^2)
    mode = np.zeros(n_l)  # warm start of the per-listener modes across evaluations

    def modes(mu: np.ndarray, log_sd: float, om: float) -> tuple[np.ndarray, np.ndarray]:
        a = mode.copy()
        for _ in range(200):  # Newton on a concave function (log-concave terms + normal prior)
            m = mu[stim_codes] + a[lis_codes]
            grad = np.bincount(lis_codes, _censored_normal(y, m, log_sd)[1], n_l) - a / om**2
            curv = np.bincount(lis_codes, _censored_curvature(y, m, log_sd), n_l) - 1 / om**2
            step = np.clip(-grad / curv, -25.0, 25.0)
            a = a + step
            if np.abs(step).max() < 1e-9:
                break
        mode[:] = a
        return a, 1.0 / np.sqrt(-curv)

    def nll(th):
        mu, log_sd, log_om = th[:n_s], th[n_s], th[n_s + 1]
        om = np.exp(log_om)
        centre, width = modes(mu, log_sd, om)
        a = centre[:, None] + np.sqrt(2.0) * width[:, None] * x[None, :]  # [listeners, nodes]
        ll, dm, ds = _censored_normal(y[:, None], mu[stim_codes][:, None] + a[lis_codes], log_sd)
        per = np.stack([np.bincount(lis_codes, ll[:, k], n_l) for k in range(nodes)], axis=1)
        prior = -0.5 * (a / om) ** 2 - log_om - _LOG_SQRT_2PI
        total = per + prior + log_w[None, :]
        lse = special.logsumexp(total, axis=1) + np.log(np.sqrt(2.0) * width)
        post = np.exp(total - special.logsumexp(total, axis=1, keepdims=True))
        # d log(integral) = posterior mean of d log(integrand), at fixed nodes
        g_mu = np.bincount(stim_codes, (post[lis_codes] * dm).sum(axis=1), n_s)
        g_sd = (post[lis_codes] * ds).sum()
        g_om = (post * ((a / om) ** 2 - 1.0)).sum()
        return -lse.sum(), -np.concatenate([g_mu, [g_sd, g_om]])

    means = df.groupby(stim_codes)["score"].mean().to_numpy()
    th = _minimise(nll, np.concatenate([means, [np.log(5.0), np.log(10.0)]]))
    latent = pd.Series(th[:n_s], index=stims)
    return latent, float(np.exp(th[n_s + 1])), float(np.exp(th[n_s]))


def _heaping(scores: np.ndarray) -> tuple[float, float]:
    """(p_round10, p_round5) from the last digits of interior (1-99) ratings.

    If a share ``p10`` of ratings is put on a multiple of 10, ``p5`` on a multiple of 5 (half of
    which are multiples of 10) and the rest on integers (a tenth of which are multiples of 10,
    a tenth ``5 mod 10``), then ``P(0 mod 10) - P(5 mod 10) = p10`` and
    ``P(5 mod 10) = p5 / 2 + (1 - p10 - p5) / 10``.
    """
    s = scores[(scores > 0) & (scores < 100)].astype(int)
    if len(s) == 0:
        return 0.0, 0.0
    m10 = float(np.mean(s % 10 == 0))
    m5 = float(np.mean(s % 10 == 5))
    p10 = min(max(m10 - m5, 0.0), 1.0)
    p5 = min(max((m5 - 0.1 + 0.1 * p10) / 0.4, 0.0), 1.0 - p10)
    return p10, p5


def _ref_miss(df: pd.DataFrame) -> float:
    """Share of listener-trials with the reference below 100, among those with another 100."""
    key = ["listener", "trial"]
    ref = df[df["kind"] == "reference"].groupby(key)["score"].min()
    top = df[df["kind"] != "reference"].groupby(key)["score"].max().reindex(ref.index)
    tie = top >= 100
    return float((ref[tie] < 100).mean()) if tie.any() else 0.0


def fit_panel(ratings: pd.DataFrame, kind: Callable[[str], str] | None = None) -> PanelFit:
    """Fit the panel model to individual MUSHRA ratings.

    * ``ref_miss``: among the trials in which a listener put some other condition at 100, the
      share in which they rated the hidden reference below 100;
    * systems: censored (Tobit) maximum likelihood of ``50 + r_l (mu_s - 50) + o_l + n_l e`` with
      a latent ``mu_s`` per stimulus and an offset, log range and log noise SD per listener;
      ``offset_sd``, ``log_range_sd`` and ``log_noise_sd`` are the SDs (ddof 1) of the
      per-listener estimates, ``noise_sd`` the root mean square of their noise SDs;
    * anchor: censored maximum likelihood of ``mu_t + a_l + sd e`` with a latent per anchor
      stimulus and ``a_l ~ N(0, anchor_offset_sd)`` integrated out;
    * slider heaping: from the last digits of the non-reference ratings within 1-99.

    Args:
        ratings: One row per rating, SiSEC08 columns ``Listener, Trial, Condition,
            Ratingscore`` or gml manifest columns ``test, item, condition, listener, score``.
        kind: Condition -> ``reference``/``anchor``/``system``; default :func:`sisec08_kind`
            for SiSEC08 columns, :func:`demo_kind` otherwise.

    Returns:
        Fitted settings, per-stimulus latents and per-listener estimates.
    """
    df = _standardise(ratings, kind)
    ref = df[df["kind"] == "reference"]
    sys_ = df[df["kind"] == "system"]
    anc = df[df["kind"] == "anchor"]
    if ref.empty or sys_.empty or anc.empty:
        raise ValueError("the ratings need a hidden reference, an anchor and systems")
    latent_sys, lis = _fit_systems(sys_)
    latent_anc, anchor_offset_sd, anchor_noise_sd = _fit_anchor(anc)
    p10, p5 = _heaping(df.loc[df["kind"] != "reference", "score"].to_numpy())
    log_noise = np.log(lis["noise_sd"].to_numpy())
    settings = PanelSettings(
        ref_miss=_ref_miss(df),
        offset_sd=float(np.std(lis["offset"], ddof=1)),
        log_range_sd=float(np.std(np.log(lis["range"]), ddof=1)),
        noise_sd=float(np.sqrt(np.mean(lis["noise_sd"].to_numpy() ** 2))),
        log_noise_sd=float(np.std(log_noise, ddof=1)),
        anchor_offset_sd=anchor_offset_sd,
        anchor_noise_sd=anchor_noise_sd,
        p_round10=p10,
        p_round5=p5,
    )
    fitted = pd.concat([latent_anc, latent_sys]).rename("latent")
    fitted.index = fitted.index.set_names(["trial", "condition"])
    latent = df.drop_duplicates(["trial", "condition"])[["trial", "condition", "kind"]]
    latent = latent.merge(fitted.reset_index(), how="left", on=["trial", "condition"])
    latent.loc[latent["kind"] == "reference", "latent"] = 100.0  # rated 100 when not missed
    latent = latent.sort_values(["trial", "condition"], ignore_index=True)
    return PanelFit(settings, latent[["trial", "condition", "kind", "latent"]], lis)


def fit_panel_settings(
    ratings: pd.DataFrame, kind: Callable[[str], str] | None = None
) -> PanelSettings:
    """Panel settings fitted to individual MUSHRA ratings (see :func:`fit_panel`).

    Args:
        ratings: SiSEC08 or gml-manifest rating columns.
        kind: Condition -> kind mapping (default by column convention).

    Returns:
        The fitted (unrounded) settings; :meth:`PanelSettings.rounded` gives the committed form.
    """
    return fit_panel(ratings, kind).settings


# --------------------------------------------------------------------------------------------
# summaries and comparison
# --------------------------------------------------------------------------------------------
STAT_COLUMNS = ("n", "share_100", "share_0", "mean", "sd", "skew", "sd_within")


def panel_stats(ratings: pd.DataFrame, kind: Callable[[str], str] | None = None) -> pd.DataFrame:
    """Per condition kind: count, share of exact 100s and 0s, mean, SD, skew, within-stimulus SD.

    ``skew`` is the adjusted Fisher-Pearson sample skewness (pandas), NaN when all ratings are
    equal; ``sd_within`` is the root mean within-stimulus variance (ddof 1), i.e. the spread the
    panel adds around each stimulus, whatever the spread of the stimuli themselves.

    Args:
        ratings: SiSEC08, gml-manifest or simulated (``listener, trial, condition, score``)
            rating columns.
        kind: Condition -> kind mapping (default by column convention).

    Returns:
        One row per kind present, in :data:`KINDS` order, columns :data:`STAT_COLUMNS`.
    """
    df = _standardise(ratings, kind)
    rows = {}
    for k in KINDS:
        s = df.loc[df["kind"] == k]
        if s.empty:
            continue
        x = s["score"]
        within = s.groupby(["trial", "condition"])["score"].var(ddof=1)
        rows[k] = dict(
            n=len(x),
            share_100=float((x == 100).mean()),
            share_0=float((x == 0).mean()),
            mean=float(x.mean()),
            sd=float(x.std(ddof=1)),
            skew=float(x.skew()) if x.nunique() > 1 else float("nan"),
            sd_within=float(np.sqrt(within.mean())),
        )
    return pd.DataFrame.from_dict(rows, orient="index")[list(STAT_COLUMNS)]


def compare_panels(
    sisec: pd.DataFrame,
    demo: pd.DataFrame | None = None,
    settings: PanelSettings = DEFAULT_SETTINGS,
    n_panels: int = 50,
    seed: int = 0,
) -> pd.DataFrame:
    """Rating statistics per condition kind: real SiSEC08 vs simulated panels.

    Sources: ``SiSEC08`` (the real ratings); ``panel on SiSEC08`` (``n_panels`` simulated panels
    of the same size rating the SiSEC08 stimuli at their fitted latents: checks the panel model
    itself); ``demo`` (the demo manifest, whose latents come from its synthetic audio) and, for
    the anchor, ``demo lp35`` / ``demo lp70`` separately.

    Args:
        sisec: The SiSEC08 ratings.
        demo: A demo manifest (optional).
        settings: Settings of the simulated panels.
        n_panels: Simulated SiSEC08-sized panels.
        seed: Seed of the simulation.

    Returns:
        Columns ``kind, source`` + :data:`STAT_COLUMNS`.
    """
    fit = fit_panel(sisec)
    n_listeners = sisec["Listener"].nunique()
    sim = simulate_like(fit.latent, n_listeners, n_panels, seed, settings)
    parts = [("SiSEC08", panel_stats(sisec)), ("panel on SiSEC08", panel_stats(sim))]
    if demo is not None:
        parts.append(("demo", panel_stats(demo)))
        for cond in ("lp35", "lp70"):
            sub = demo[demo["condition"] == cond]
            if not sub.empty:
                parts.append((f"demo {cond}", panel_stats(sub)))
    frames = [st.rename_axis("kind").reset_index().assign(source=src) for src, st in parts]
    out = pd.concat(frames, ignore_index=True)
    out["kind"] = pd.Categorical(out["kind"], KINDS, ordered=True)
    out = out.sort_values("kind", kind="stable", ignore_index=True)
    out["kind"] = out["kind"].astype(str)
    return out[["kind", "source", *STAT_COLUMNS]]


_TITLES = {"reference": "Hidden reference", "anchor": "Anchor", "system": "Systems (in between)"}


def _fmt(v: float, pct: bool = False) -> str:
    if pd.isna(v):
        return "–"
    return f"{100 * v:.1f} %" if pct else f"{v:.1f}"


def comparison_markdown(table: pd.DataFrame) -> str:
    """Markdown tables (one per kind) of a :func:`compare_panels` result."""
    out = []
    for k in KINDS:
        g = table[table["kind"] == k]
        if g.empty:
            continue
        out += [
            f"**{_TITLES[k]}**",
            "",
            "| source | n | share 100 | share 0 | mean | SD | skew | SD within stimulus |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in g.itertuples():
            out.append(
                f"| {r.source} | {r.n} | {_fmt(r.share_100, True)} | {_fmt(r.share_0, True)} | "
                f"{_fmt(r.mean)} | {_fmt(r.sd)} | "
                f"{'–' if pd.isna(r.skew) else f'{r.skew:.2f}'} | {_fmt(r.sd_within)} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the fitted settings and the comparison tables of ``docs/demo-panel.md``."""
    ap = argparse.ArgumentParser(prog="python tools/demo_panel_fit.py", description=main.__doc__)
    ap.add_argument(
        "--sisec", type=Path, required=True, help="SiSEC08 ratings CSV (SiSEC08_anonymized.csv)"
    )
    ap.add_argument("--demo", type=Path, default=None, help="demo manifest (default: built-in)")
    ap.add_argument("--panels", type=int, default=50, help="simulated SiSEC08-sized panels")
    args = ap.parse_args(argv)
    sisec = pd.read_csv(args.sisec)
    fitted = fit_panel_settings(sisec)
    print("fitted:  ", fitted)
    print("rounded: ", fitted.rounded())
    print("default: ", DEFAULT_SETTINGS)
    if args.demo is None:
        args.demo = demo_manifest(progress=False)
    demo = pd.read_csv(args.demo)
    print()
    print(comparison_markdown(compare_panels(sisec, demo, n_panels=args.panels)))
    return 0 if fitted.rounded() == DEFAULT_SETTINGS else 1


if __name__ == "__main__":
    sys.exit(main())
