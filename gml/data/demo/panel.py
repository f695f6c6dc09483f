"""The simulated listener panel of the built-in demo, with settings fitted to real MUSHRA ratings.

The demo (:mod:`gml.data.demo`) is SYNTHETIC: its listeners are simulated, so nothing measured on
it is evidence about real listeners. This module makes the simulated panel *behave* like a real
one -- hidden reference almost always exactly 100, a low anchor piled at 0 for some listeners,
ratings piled at 100 for near-transparent conditions, listeners with their own offset, range and
noise, integer slider positions with a preference for round numbers -- with its settings fitted
to the 2,156 individual ratings of the SiSEC 2008 source-separation listening test (by
``tools/demo_panel_fit.py``, research tooling outside the package; see ``docs/demo-panel.md``).
Those ratings are not shipped (licence CC BY-NC-SA 4.0); only the
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

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "DEFAULT_SETTINGS",
    "KINDS",
    "Listeners",
    "PanelSettings",
    "demo_kind",
    "draw_listeners",
    "rate_trial",
]

KINDS: tuple[str, ...] = ("reference", "anchor", "system")
MID = 50.0
"""Centre of a listener's range map: a listener's range stretches the scale about mid-scale."""


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
        return PanelSettings(**{k: round(v, DECIMALS[k]) for k, v in asdict(self).items()})


DECIMALS = dict(
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

# Fitted by tools/demo_panel_fit.py on the SiSEC 2008 MUSHRA ratings
# (SiSEC08_anonymized.csv, 14 listeners x 14 trials x 11
# conditions, CC BY-NC-SA 4.0), rounded by PanelSettings.rounded(); tests/test_demo_panel.py
# refits and compares. Regenerate with `python tools/demo_panel_fit.py --sisec CSV`.
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
