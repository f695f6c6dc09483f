"""Subsets (all / systems) and the baselines every evaluation reports beside the model:
constant spread, condition oracle, noise ceiling / floor (gml.baselines), checked against direct
pandas / scipy computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps

from gml import baselines as base
from gml.stats import ci_halfwidth, stimulus_table

from .conftest import fit_tiny


def _ratings(seed=0, items=6, listeners=12):
    """A MUSHRA-like test: a hidden reference near 100, an anchor, two systems whose quality
    varies with the item, each listener rating every stimulus."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(items):
        for cond, (mu, sd) in {
            "ref": (98, 2), "anchor": (15, 8), "A": (40 + 5 * i, 12), "B": (70 - 3 * i, 6)
        }.items():  # fmt: skip
            for k in range(listeners):
                score = float(np.clip(rng.normal(mu, sd), 0, 100))
                role = {"ref": "hidden_reference", "anchor": "low_anchor"}.get(cond, "")
                rows.append(("t", f"i{i}", cond, f"L{k}", score, role))
    return pd.DataFrame(rows, columns=["test", "item", "condition", "listener", "score", "role"])


def _stimuli(ratings, test_items=("i0", "i1")):
    st = stimulus_table(ratings, {"role": ("role", "first")})
    st["partition"] = np.where(st["item"].isin(test_items), "test", "train")
    return st


def test_pooled_std_is_the_root_mean_variance():
    assert base.pooled_std([3.0, 4.0, np.nan]) == pytest.approx(np.sqrt((9 + 16) / 2))
    assert np.isnan(base.pooled_std([np.nan]))


def test_condition_oracle_and_constant_spread_match_a_direct_computation():
    ratings = _ratings()
    st = _stimuli(ratings)
    test_idx = np.flatnonzero(st["partition"] == "test")
    b = base.baseline_predictions(st, test_idx)
    train = st[st["partition"] == "train"]
    oracle = b[b["baseline"] == base.CONDITION_ORACLE].set_index(["item", "condition"])
    for (_item, cond), row in oracle.iterrows():
        fit = train[train["condition"] == cond]
        assert row["predicted_mean"] == pytest.approx(fit["mean"].mean())
        sd = max(np.sqrt((fit["std"] ** 2).mean()), base.MIN_ORACLE_STD)
        assert row["predicted_std"] == pytest.approx(sd)
        assert row["predicted_ci95"] == pytest.approx(
            sps.t.ppf(0.975, row["n_listeners"] - 1) * sd / np.sqrt(row["n_listeners"])
        )
        assert not row["fallback"]
    const = b[b["baseline"] == base.CONSTANT_SPREAD]
    assert set(const["fitted_on"]) == {"all", "systems"}
    all_sd = np.sqrt((train["std"] ** 2).mean())
    sys_sd = np.sqrt((train.loc[train["role"] == "", "std"] ** 2).mean())
    assert const.loc[const["fitted_on"] == "all", "predicted_std"].unique() == pytest.approx(all_sd)
    assert const.loc[const["fitted_on"] == "systems", "predicted_std"].unique() == pytest.approx(
        sys_sd
    )
    assert const["predicted_mean"].isna().all()


def test_oracle_falls_back_for_a_condition_never_trained_on():
    ratings = _ratings()
    ratings.loc[ratings["item"].eq("i0") & ratings["condition"].eq("B"), "condition"] = "new"
    st = _stimuli(ratings)
    b = base.baseline_predictions(st, np.flatnonzero(st["partition"] == "test"))
    row = b[(b["baseline"] == base.CONDITION_ORACLE) & (b["condition"] == "new")].iloc[0]
    train = st[st["partition"] == "train"]
    assert row["fallback"] and row["predicted_mean"] == pytest.approx(train["mean"].mean())


def _predictions(st, idx, mean, std):
    s = st.iloc[idx]
    return pd.DataFrame(
        {
            "test": s["test"].to_numpy(), "item": s["item"].to_numpy(),
            "condition": s["condition"].to_numpy(), "n_listeners": s["n_listeners"].to_numpy(),
            "subjective_mean": s["mean"].to_numpy(), "subjective_ci95": s["ci95"].to_numpy(),
            "predicted_mean": mean, "predicted_std": std,
            "predicted_ci95": ci_halfwidth(np.asarray(std), s["n_listeners"].to_numpy()),
            "role": s["role"].to_numpy(),
        }
    )  # fmt: skip


def test_subset_results_match_scipy_on_each_subset():
    ratings = _ratings(items=8)
    st = _stimuli(ratings, test_items=[f"i{i}" for i in range(8)])
    idx = np.arange(len(st))
    rng = np.random.default_rng(1)
    pred = _predictions(st, idx, st["mean"].to_numpy() + rng.normal(0, 5, len(st)),
                        np.full(len(st), 9.0))  # fmt: skip
    scores = ratings[["test", "item", "condition", "score"]].assign(
        nll=rng.uniform(3, 5, len(ratings)), pit=rng.uniform(0, 1, len(ratings))
    )
    res = base.subset_results(pred, scores)
    assert set(res) == {"t", "t:systems"}
    for name, mask in (("t", np.ones(len(pred), bool)), ("t:systems", pred["role"].eq(""))):
        p = pred[mask]
        r = res[name]
        assert r["mean_pearson"] == pytest.approx(
            sps.pearsonr(p["predicted_mean"], p["subjective_mean"])[0], abs=1e-5
        )
        assert r["ci_rmse"] == pytest.approx(
            np.sqrt(np.mean((p["predicted_ci95"] - p["subjective_ci95"]) ** 2)), rel=1e-5
        )
        s = scores.merge(p[["test", "item", "condition"]])
        assert r["nll"] == pytest.approx(s["nll"].mean())
        assert r["coverage_50"] == pytest.approx((np.abs(s["pit"] - 0.5) <= 0.25).mean())
        assert r["n_stimuli"] == len(p)
    assert res["t"]["n_stimuli"] == 32 and res["t:systems"]["n_stimuli"] == 16


def test_oracle_nll_and_coverage_are_those_of_a_logistic_with_its_moments():
    ratings = _ratings()
    st = _stimuli(ratings)
    idx = np.flatnonzero(st["partition"] == "test")
    b = base.baseline_predictions(st, idx)
    pred = _predictions(st, idx, st["mean"].to_numpy()[idx], st["std"].to_numpy()[idx])
    res = base.baseline_results(b, pred, ratings, n_boot=20)
    oracle = b[b["baseline"] == base.CONDITION_ORACLE]
    s = ratings.merge(oracle, on=["test", "item", "condition"])
    scale = s["predicted_std"] * np.sqrt(3) / np.pi
    nll = -sps.logistic.logpdf(s["score"], s["predicted_mean"], scale).mean()
    r = res["t"][base.CONDITION_ORACLE]
    assert r["nll"] == pytest.approx(nll)
    cdf = sps.logistic.cdf(s["score"], s["predicted_mean"], scale)
    assert r["coverage_90"] == pytest.approx((np.abs(cdf - 0.5) <= 0.45).mean())
    assert list(res["t:systems"]) == list(base.BASELINES)
    assert res["t:systems"][base.CONSTANT_SPREAD]["constant_std"] != pytest.approx(
        res["t"][base.CONSTANT_SPREAD]["constant_std"]
    )


def test_noise_ceiling_falls_with_the_panel_size():
    def scores(listeners, seed=0):
        rng = np.random.default_rng(seed)
        rows = [
            ("t", f"i{i}", "c", k, float(rng.normal(10 + 3 * i, 4 + (i % 5)))) for i in range(30)
            for k in range(listeners)
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=["test", "item", "condition", "listener", "score"])

    big = base.noise_ceiling(scores(400), n_boot=50)
    small = base.noise_ceiling(scores(5), n_boot=50)
    assert big["mean_pearson"] > 0.99 and big["ci_pearson"] > 0.9 and big["ci_rmse"] < 0.3
    assert small["mean_pearson"] < big["mean_pearson"] and small["ci_rmse"] > 1.0
    # the true mean falls outside a panel's 95 % CI about 5 % of the time (a bit more: the
    # bootstrap's panels are drawn from the observed scores)
    assert 0.02 < big["outlier_ratio"] < 0.09
    assert base.noise_ceiling(scores(5), n_boot=50, seed=3) != small  # seeded, not constant
    assert base.noise_ceiling(scores(5), n_boot=50) == small


@pytest.mark.slow
def test_gml_test_reports_subsets_and_baselines(tiny_demo, tmp_path, capsys):
    from gml.cli import main

    run = fit_tiny(tiny_demo, tmp_path)
    main(["test", "--ckpt", str(run / "best.ckpt"), "--trainer.enable_progress_bar", "false"])
    out = capsys.readouterr().out
    assert "demo-music:systems" in out and "condition oracle" in out and "noise ceiling" in out
    folder = run / "test-best"
    m = json.loads((folder / "metrics.json").read_text())
    assert set(m["test_sets"]) == {
        "demo-music", "demo-music:systems", "demo-speech", "demo-speech:systems"
    }  # fmt: skip
    preds = pd.read_csv(folder / "predictions.csv", keep_default_na=False)
    for test, rows in preds.groupby("test"):
        sys_rows = rows[rows["role"] == ""]
        r = m["test_sets"][f"{test}:systems"]
        assert r["n_stimuli"] == len(sys_rows) < len(rows)
        assert r["mean_pearson"] == pytest.approx(
            sps.pearsonr(sys_rows["predicted_mean"], sys_rows["subjective_mean"])[0], abs=2e-3
        )
        assert set(m["baselines"][test]) == set(base.BASELINES)
    # the unclamped mean, the per-score NLL, and the baselines' predictions per stimulus
    assert "predicted_mean_raw" in preds
    assert (preds["predicted_mean"] == preds["predicted_mean_raw"].clip(0, 100)).all() or (
        np.abs(preds["predicted_mean"] - preds["predicted_mean_raw"].clip(0, 100)) < 1e-3
    ).all()
    pit = pd.read_csv(folder / "pit.csv")
    assert m["test_sets"]["demo-music"]["nll"] == pytest.approx(
        pit.loc[pit["test"] == "demo-music", "nll"].mean(), rel=1e-4
    )
    b = pd.read_csv(folder / "baselines.csv")
    assert set(b["baseline"]) == {base.CONDITION_ORACLE, base.CONSTANT_SPREAD}
