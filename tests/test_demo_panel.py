"""Tests for the demo's simulated listener panel (gml.data.demo.panel) and its SiSEC08 fit
(tools/demo_panel_fit.py, research tooling outside the package)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gml.data.demo import panel as dp
from gml.data.demo.panel import DEFAULT_SETTINGS, PanelSettings

from .conftest import SHARED


def _load_tool(name: str):
    """A script of tools/ (research tooling, not in the package) as a module."""
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


tool = _load_tool("demo_panel_fit")

SISEC = SHARED / "data" / "sisec08-ratings" / "SiSEC08_anonymized.csv"
needs_sisec = pytest.mark.skipif(not SISEC.is_file(), reason="../shared SiSEC08 ratings absent")

# a MUSHRA-like trial: hidden reference, low and mid anchor, systems from poor to transparent
KINDS = ["reference", "anchor", "anchor", *["system"] * 8]


def _latents(n_trials: int, seed: int) -> np.ndarray:
    """Latent qualities [trials, 11] of demo-like trials (one near-transparent system each)."""
    rng = np.random.default_rng(seed)
    q = np.empty((n_trials, len(KINDS)))
    q[:, 0] = 100.0
    q[:, 1] = rng.uniform(5, 30, n_trials)
    q[:, 2] = rng.uniform(30, 55, n_trials)
    q[:, 3:] = rng.uniform(20, 90, (n_trials, 8))
    q[:, 3] = rng.uniform(88, 99, n_trials)
    return q


def _simulate(
    n_listeners: int, n_trials: int, seed: int, settings: PanelSettings = DEFAULT_SETTINGS
) -> pd.DataFrame:
    """Ratings of demo-like trials by one simulated panel (long format with kinds)."""
    q = _latents(n_trials, seed)
    rng = np.random.default_rng(seed + 1)
    lis = dp.draw_listeners(n_listeners, rng, settings)
    frames = []
    for t in range(n_trials):
        sc = dp.rate_trial(q[t], KINDS, lis, rng, settings)
        frames.append(
            pd.DataFrame(
                {
                    "listener": np.repeat(lis.ids, len(KINDS)),
                    "trial": f"t{t}",
                    "condition": np.tile([f"c{c}" for c in range(len(KINDS))], n_listeners),
                    "kind": np.tile(KINDS, n_listeners),
                    "score": sc.ravel(),
                    "latent": np.tile(q[t], n_listeners),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    return _simulate(n_listeners=40, n_trials=60, seed=0)


@pytest.fixture(scope="module")
def sisec() -> pd.DataFrame:
    return pd.read_csv(SISEC)


# --------------------------------------------------------------------------------------------
# the fit on SiSEC08
# --------------------------------------------------------------------------------------------
@needs_sisec
def test_committed_defaults_are_the_sisec08_fit(sisec):
    fitted = tool.fit_panel_settings(sisec)
    assert fitted.rounded() == DEFAULT_SETTINGS
    for name, value in asdict(fitted).items():  # within rounding of the committed digits
        half_ulp = 0.5 * 10.0 ** -dp.DECIMALS[name]
        assert abs(value - getattr(DEFAULT_SETTINGS, name)) <= half_ulp + 1e-9, name


@needs_sisec
def test_sisec08_fit_structure(sisec):
    fit = tool.fit_panel(sisec)
    assert len(fit.listeners) == 14 and len(fit.latent) == 14 * 11
    assert set(fit.latent["kind"]) == set(dp.KINDS)
    assert (fit.latent.loc[fit.latent["kind"] == "reference", "latent"] == 100).all()
    # the offsets and log ranges are centred, so the latents are on the panel's average scale
    assert abs(fit.listeners["offset"].mean()) < 1e-6
    assert abs(np.log(fit.listeners["range"]).mean()) < 1e-6
    anchor = fit.latent.loc[fit.latent["kind"] == "anchor", "latent"]
    systems = fit.latent.loc[fit.latent["kind"] == "system", "latent"]
    assert anchor.max() < systems.median()
    # the row order does not matter
    again = tool.fit_panel_settings(sisec.sample(frac=1.0, random_state=0))
    assert again.rounded() == fit.settings.rounded()


@needs_sisec
def test_simulated_panel_reproduces_sisec08(sisec, tiny_demo):
    table = tool.compare_panels(sisec, pd.read_csv(tiny_demo), n_panels=20, seed=1)
    real = table[table["source"] == "SiSEC08"].set_index("kind")
    sim = table[table["source"] == "panel on SiSEC08"].set_index("kind")
    assert abs(sim.loc["reference", "share_100"] - real.loc["reference", "share_100"]) < 0.01
    for col, tol in (("mean", 2.0), ("sd", 2.0), ("skew", 0.3), ("sd_within", 1.5)):
        assert abs(sim.loc["system", col] - real.loc["system", col]) < tol, col
    for col, tol in (("share_100", 0.02), ("share_0", 0.02)):
        assert abs(sim.loc["system", col] - real.loc["system", col]) < tol, col
    assert abs(sim.loc["anchor", "mean"] - real.loc["anchor", "mean"]) < 3.0
    assert 0.1 < sim.loc["anchor", "share_0"] < 0.4  # the anchor piles at 0
    assert {"demo", "demo lp35", "demo lp70"} <= set(table["source"])
    md = tool.comparison_markdown(table)
    for title in ("Hidden reference", "Anchor", "Systems"):
        assert f"**{title}" in md


@needs_sisec
def test_doc_command(tiny_demo, capsys):
    """``python tools/demo_panel_fit.py`` (the doc's regeneration command) on a tiny demo."""
    assert tool.main(["--sisec", str(SISEC), "--demo", str(tiny_demo), "--panels", "2"]) == 0
    out = capsys.readouterr().out
    assert "rounded:  " + str(DEFAULT_SETTINGS) in out and "| panel on SiSEC08 |" in out


# --------------------------------------------------------------------------------------------
# the fit itself, on a panel whose settings are known
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_fit_recovers_known_settings():
    truth = replace(DEFAULT_SETTINGS, ref_miss=0.3, offset_sd=6.0, anchor_offset_sd=8.0)
    df = _simulate(n_listeners=40, n_trials=30, seed=5, settings=truth)
    got = tool.fit_panel_settings(df.drop(columns="latent"))
    for name in ("offset_sd", "log_range_sd", "noise_sd", "log_noise_sd", "anchor_offset_sd"):
        assert getattr(got, name) == pytest.approx(getattr(truth, name), rel=0.35), name
    assert got.anchor_noise_sd == pytest.approx(truth.anchor_noise_sd, rel=0.2)
    assert got.ref_miss == pytest.approx(truth.ref_miss, abs=0.1)
    assert got.p_round10 == pytest.approx(truth.p_round10, abs=0.03)
    assert got.p_round5 == pytest.approx(truth.p_round5, abs=0.04)


# --------------------------------------------------------------------------------------------
# properties of simulated panels (no ../shared needed)
# --------------------------------------------------------------------------------------------
def test_integer_scores_within_0_100_piled_at_the_ends(big):
    s = big["score"]
    assert pd.api.types.is_integer_dtype(s) and s.between(0, 100).all()
    assert (s == 100).mean() > 0.05 and (s == 0).any()
    inner = s[(s > 0) & (s < 100)]
    assert (inner % 10 == 0).mean() > 0.15  # slider heaping at round numbers (uniform: 0.1)


def test_hidden_reference_mostly_100_some_listeners_below_90(big):
    ref = big[big["kind"] == "reference"].set_index(["listener", "trial"])["score"]
    others = big[big["kind"] != "reference"].groupby(["listener", "trial"])["score"].max()
    tie = (others >= 100).reindex(ref.index)
    # misses happen only where another condition sounded transparent, at the fitted rate
    assert (ref[~tie] == 100).all()
    expected = 1 - DEFAULT_SETTINGS.ref_miss * tie.mean()
    se = np.sqrt(expected * (1 - expected) / len(ref))
    assert abs((ref == 100).mean() - expected) < 4 * se + 1e-9
    assert (ref == 100).mean() > 0.9
    below = ref[ref < 90]
    assert below.index.get_level_values("listener").nunique() >= 2


def test_anchors_low(big):
    by_kind = big.groupby("kind")["score"].mean()
    assert by_kind["anchor"] < by_kind["system"] < by_kind["reference"]
    low = big[(big["kind"] == "anchor") & (big["latent"] < 15)]["score"]
    assert (low == 0).mean() > 0.1  # some listeners put a poor anchor at the bottom


def _two_way_anova_listener_p(df: pd.DataFrame) -> float:
    """p-value of the listener main effect, stimulus x listener, one rating per cell."""
    y = df.pivot(index="listener", columns=["trial", "condition"], values="score").to_numpy(float)
    n_l, n_s = y.shape
    grand = y.mean()
    ss_l = n_s * ((y.mean(axis=1) - grand) ** 2).sum()
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand
    df_l, df_e = n_l - 1, (n_l - 1) * (n_s - 1)
    f = (ss_l / df_l) / ((resid**2).sum() / df_e)
    return float(stats.f.sf(f, df_l, df_e))


def test_listener_offsets_are_significant():
    df = _simulate(n_listeners=12, n_trials=10, seed=2)
    systems = df[df["kind"] == "system"]
    assert _two_way_anova_listener_p(systems) < 1e-4
    flat = replace(DEFAULT_SETTINGS, offset_sd=0.0, log_range_sd=0.0, log_noise_sd=0.0)
    same = _simulate(n_listeners=12, n_trials=10, seed=2, settings=flat)
    assert _two_way_anova_listener_p(same[same["kind"] == "system"]) > 0.01


def test_deterministic():
    a = _simulate(6, 5, seed=3)
    assert a.equals(_simulate(6, 5, seed=3))
    assert not a["score"].equals(_simulate(6, 5, seed=4)["score"])
    # the number of draws does not depend on the outcome, so later draws stay aligned
    q = _latents(1, 0)[0]
    states = []
    for miss in (0.0, 1.0):
        rng = np.random.default_rng(7)
        lis = dp.draw_listeners(5, rng)
        dp.rate_trial(q, KINDS, lis, rng, replace(DEFAULT_SETTINGS, ref_miss=miss))
        states.append(rng.random())
    assert states[0] == states[1]


def test_kinds_and_validation():
    assert [tool.sisec08_kind(c) for c in ("orig", "anchor", "Algo8")] == list(dp.KINDS)
    assert [dp.demo_kind(c) for c in ("reference", "lp35", "lp70", "preecho_1")] == [
        "reference",
        "anchor",
        "anchor",
        "system",
    ]
    lis = dp.draw_listeners(3, np.random.default_rng(0), ids=["a", "b", "c"])
    assert lis.ids == ("a", "b", "c") and len(lis) == 3
    with pytest.raises(ValueError):
        dp.rate_trial([100.0, 50.0], ["reference", "codec"], lis, np.random.default_rng(0))
    with pytest.raises(ValueError):
        dp.draw_listeners(2, np.random.default_rng(0), ids=["a"])


def test_panel_stats_on_a_demo_manifest(tiny_demo):
    m = pd.read_csv(tiny_demo)
    st = tool.panel_stats(m)
    assert list(st.index) == list(dp.KINDS) and list(st.columns) == list(tool.STAT_COLUMNS)
    assert st["n"].sum() == len(m)
    assert st.loc["reference", "share_100"] > 0.8
    assert st.loc["anchor", "mean"] < st.loc["system", "mean"]
