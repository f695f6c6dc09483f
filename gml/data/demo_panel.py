"""The simulated listener panel of the built-in demo, with settings fitted to real MUSHRA ratings.

The demo (:mod:`gml.data.demo`) is SYNTHETIC: its listeners are simulated, so nothing measured on
it is evidence about real listeners. This module makes the simulated panel *behave* like a real
one -- hidden reference almost always exactly 100, a low anchor piled at 0 for some listeners,
ratings piled at 100 for near-transparent conditions, listeners with their own offset, range and
noise, integer slider positions with a preference for round numbers -- with its settings fitted
to the 2,156 individual ratings of the SiSEC 2008 source-separation listening test
(:func:`fit_panel_settings`). Those ratings are not shipped (licence CC BY-NC-SA 4.0); only the
fitted numbers in :data:`DEFAULT_SETTINGS` are.

Panel model. A trial is one item with all its conditions; each condition has a latent quality
``q`` (0-100, for the demo computed from the audio) and a kind: ``reference`` (the hidden
reference), ``anchor`` or ``system`` (everything in between). Listener ``l`` has an offset
``o_l ~ N(0, offset_sd)``, a range ``r_l ~ LogNormal(0, log_range_sd)``, a noise level
``n_l = noise_sd exp(log_noise_sd z - log_noise_sd^2)``, z ~ N(0, 1) (so that
``E[n_l^2] = noise_sd^2``) and an anchor offset ``a_l ~ N(0, anchor_offset_sd)``, all
independent. Before the slider, the rating is

* system:    ``50 + r_l (q - 50) + o_l + n_l e``, e ~ N(0, 1) (an affine map of ``q`` about
  mid-scale, plus noise);
* anchor:    ``q + a_l + anchor_noise_sd e`` (how low a listener puts the anchor is mostly a
  personal constant: in SiSEC08 the anchor's between-listener spread dwarfs its noise);
* reference: ``100``.

The slider then rounds to a multiple of 10 with probability ``p_round10``, to a multiple of 5
with probability ``p_round5``, else to an integer, and clips to 0-100 -- which is what piles
ratings at 0 and 100. Last, a listener who put some other condition at 100 (it sounded
transparent to them) takes it for the hidden reference with probability ``ref_miss`` and rates
the reference like that condition instead: a fresh system-map judgement of its ``q``, at most
99. So the hidden reference is almost always exactly 100, and falls below 90 only now and then,
in trials with a near-transparent condition -- as in SiSEC08, whose only reference rating
below 100 is in its only trial with near-transparent systems.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special

__all__ = [
    "DEFAULT_SETTINGS",
    "KINDS",
    "Listeners",
    "PanelFit",
    "PanelSettings",
    "compare_panels",
    "comparison_markdown",
    "demo_kind",
    "draw_listeners",
    "fit_panel",
    "fit_panel_settings",
    "panel_stats",
    "rate_trial",
    "simulate_like",
    "sisec08_kind",
]

KINDS: tuple[str, ...] = ("reference", "anchor", "system")
MID = 50.0
"""Centre of a listener's range map: a listener's range stretches the scale about mid-scale."""

SISEC08_CSV = Path("../shared/data/sisec08-ratings/SiSEC08_anonymized.csv")
"""Where the SiSEC08 ratings live relative to the repository root (not shipped; see the doc)."""


@dataclass(frozen=True)
class PanelSettings:
    """Settings of the simulated panel (see the module docstring for the model).

    Attributes:
        ref_miss: Probability that a listener who put another condition of the trial at 100
            (it sounded transparent to them) misses the hidden reference, rating it below 100.
        offset_sd: SD of the listeners' offsets at mid-scale (points), for systems.
        log_range_sd: SD of the log of the listeners' ranges (slopes about mid-scale).
        noise_sd: Root-mean-square over listeners of their noise SD on systems (points).
        log_noise_sd: SD across listeners of the log of their noise SD.
        anchor_offset_sd: SD of the listeners' personal anchor offsets (points).
        anchor_noise_sd: SD of a listener's noise on the anchor (points).
        p_round10: Probability that a rating is put on a multiple of 10.
        p_round5: Probability that a rating is put on a multiple of 5 (else on an integer).
    """

    ref_miss: float
    offset_sd: float
    log_range_sd: float
    noise_sd: float
    log_noise_sd: float
    anchor_offset_sd: float
    anchor_noise_sd: float
    p_round10: float
    p_round5: float

    def rounded(self) -> PanelSettings:
        """These settings rounded as committed in :data:`DEFAULT_SETTINGS`."""
        return PanelSettings(**{k: round(v, _DECIMALS[k]) for k, v in asdict(self).items()})


_DECIMALS = dict(
    ref_miss=4,
    offset_sd=2,
    log_range_sd=3,
    noise_sd=2,
    log_noise_sd=3,
    anchor_offset_sd=2,
    anchor_noise_sd=2,
    p_round10=3,
    p_round5=3,
)

# Fitted by fit_panel_settings() on the SiSEC 2008 MUSHRA ratings
# (../shared/data/sisec08-ratings/SiSEC08_anonymized.csv, 14 listeners x 14 trials x 11
# conditions, CC BY-NC-SA 4.0), rounded by PanelSettings.rounded(); tests/test_demo_panel.py
# refits and compares. Regenerate with `python -m gml.data.demo_panel`.
DEFAULT_SETTINGS = PanelSettings(
    ref_miss=0.0833,
    offset_sd=3.79,
    log_range_sd=0.193,
    noise_sd=9.32,
    log_noise_sd=0.441,
    anchor_offset_sd=17.68,
    anchor_noise_sd=4.12,
    p_round10=0.083,
    p_round5=0.093,
)


# --------------------------------------------------------------------------------------------
# condition kinds
# --------------------------------------------------------------------------------------------
def sisec08_kind(condition: str) -> str:
    """Kind of a SiSEC08 condition: ``orig`` is the hidden reference, ``anchor`` the anchor."""
    return {"orig": "reference", "anchor": "anchor"}.get(condition, "system")


def demo_kind(condition: str) -> str:
    """Kind of a demo condition: the 3.5 and 7 kHz low-pass anchors are both anchors."""
    if condition == "reference":
        return "reference"
    return "anchor" if condition in ("lp35", "lp70") else "system"


# --------------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Listeners:
    """A drawn panel: one entry per listener in every array.

    Attributes:
        ids: Listener names.
        offset: Offset at mid-scale (points), systems.
        range: Slope of the map about mid-scale, systems.
        noise_sd: Noise SD (points), systems.
        anchor_offset: Personal anchor offset (points).
    """

    ids: tuple[str, ...]
    offset: np.ndarray
    range: np.ndarray
    noise_sd: np.ndarray
    anchor_offset: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def draw_listeners(
    n: int,
    rng: np.random.Generator,
    settings: PanelSettings = DEFAULT_SETTINGS,
    ids: Sequence[str] | None = None,
) -> Listeners:
    """Draw ``n`` simulated listeners.

    Args:
        n: Panel size.
        rng: Random generator (drawn in a fixed order, so a seeded generator gives the same panel).
        settings: Panel settings.
        ids: Listener names (default ``L1`` ... ``Ln``).

    Returns:
        The panel.
    """
    s = settings
    offset = rng.normal(0.0, s.offset_sd, n)
    rng_range = np.exp(rng.normal(0.0, s.log_range_sd, n))
    # log-normal noise SDs scaled so that their mean square is noise_sd ** 2
    noise = s.noise_sd * np.exp(rng.normal(0.0, s.log_noise_sd, n) - s.log_noise_sd**2)
    anchor = rng.normal(0.0, s.anchor_offset_sd, n)
    names = tuple(ids) if ids is not None else tuple(f"L{i + 1}" for i in range(n))
    if len(names) != n:
        raise ValueError(f"{len(names)} ids for {n} listeners")
    return Listeners(names, offset, rng_range, noise, anchor)


def _system_map(q: np.ndarray, lis: Listeners) -> np.ndarray:
    """Noise-free rating of latent ``q`` [C] by every listener -> [L, C]."""
    return MID + lis.range[:, None] * (np.asarray(q)[None, :] - MID) + lis.offset[:, None]


def rate_trial(
    quality: Sequence[float] | np.ndarray,
    kinds: Sequence[str],
    listeners: Listeners,
    rng: np.random.Generator,
    settings: PanelSettings = DEFAULT_SETTINGS,
) -> np.ndarray:
    """Integer slider ratings of one trial (an item with all its conditions) by a panel.

    Args:
        quality: Latent quality of each condition, ``[C]`` (the reference's is not used).
        kinds: Kind of each condition (``reference``, ``anchor`` or ``system``).
        listeners: The panel (:func:`draw_listeners`).
        rng: Random generator; the same number of draws is taken whatever the outcome.
        settings: Panel settings: the anchor noise, the slider and ``ref_miss`` (the
            listener-level settings were used by :func:`draw_listeners`).

    Returns:
        ``[L, C]`` integer ratings within 0-100.
    """
    q = np.asarray(quality, dtype=float)
    kinds = list(kinds)
    if len(kinds) != len(q) or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be one of {KINDS} per condition, got {kinds}")
    n_l, n_c = len(listeners), len(q)
    eps = rng.standard_normal((n_l, n_c))
    heap = rng.random((n_l, n_c))
    miss_u = rng.random(n_l)
    miss_e = rng.standard_normal(n_l)

    is_ref = np.array([k == "reference" for k in kinds])
    is_anchor = np.array([k == "anchor" for k in kinds])
    y = _system_map(q, listeners) + listeners.noise_sd[:, None] * eps
    y_anchor = q[None, :] + listeners.anchor_offset[:, None] + settings.anchor_noise_sd * eps
    y = np.where(is_anchor[None, :], y_anchor, y)
    y = np.where(is_ref[None, :], 100.0, y)

    # slider: some ratings go to round numbers (SiSEC08 shows heaping at multiples of 5 and 10)
    step = np.where(
        heap < settings.p_round10,
        10.0,
        np.where(heap < settings.p_round10 + settings.p_round5, 5.0, 1.0),
    )
    scores = np.clip(step * np.round(y / step), 0, 100)

    # a listener who put another condition at 100 (it sounded transparent to them) may take it
    # for the hidden reference, and then rates the reference like it: a fresh judgement below 100
    if is_ref.any() and (~is_ref).any():
        top = (scores >= 100) & ~is_ref[None, :]
        tie = top.any(axis=1)
        q_top = np.where(top, q[None, :], -np.inf).max(axis=1)
        q_top = np.where(tie, q_top, MID)
        lis = listeners
        missed = MID + lis.range * (q_top - MID) + lis.offset + lis.noise_sd * miss_e
        missed = np.clip(np.round(missed), 0, 99)
        hit = tie & (miss_u < settings.ref_miss)
        scores[:, is_ref] = np.where(hit[:, None], missed[:, None], scores[:, is_ref])
    return scores.astype(int)


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
    ap = argparse.ArgumentParser(prog="python -m gml.data.demo_panel", description=main.__doc__)
    ap.add_argument("--sisec", type=Path, default=SISEC08_CSV, help="SiSEC08 ratings CSV")
    ap.add_argument("--demo", type=Path, default=None, help="demo manifest (default: built-in)")
    ap.add_argument("--panels", type=int, default=50, help="simulated SiSEC08-sized panels")
    args = ap.parse_args(argv)
    sisec = pd.read_csv(args.sisec)
    fitted = fit_panel_settings(sisec)
    print("fitted:  ", fitted)
    print("rounded: ", fitted.rounded())
    print("default: ", DEFAULT_SETTINGS)
    if args.demo is None:
        from gml.data.demo import demo_manifest

        args.demo = demo_manifest(progress=False)
    demo = pd.read_csv(args.demo)
    print()
    print(comparison_markdown(compare_panels(sisec, demo, n_panels=args.panels)))
    return 0 if fitted.rounded() == DEFAULT_SETTINGS else 1


if __name__ == "__main__":
    sys.exit(main())
