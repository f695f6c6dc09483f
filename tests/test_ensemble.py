"""Ensembles: several checkpoints as one listener; listener spread vs model disagreement."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

import gml
from gml.cli import main
from gml.heads import EqualMixture, Logistic

from .conftest import fit_tiny, write_pair


@pytest.fixture(scope="module")
def second_run(noise_manifest, tmp_path_factory):
    return fit_tiny(noise_manifest, tmp_path_factory.mktemp("seed1"), "--seed_everything", "1")


def test_equal_mixture_moments_and_likelihood():
    a = Logistic(torch.tensor([40.0, 70.0]), torch.tensor([5.0, 3.0]))
    b = torch.distributions.Normal(torch.tensor([50.0, 72.0]), torch.tensor([8.0, 2.0]))
    mix = EqualMixture([a, b])
    means = torch.stack([a.mean, b.mean])
    var = torch.stack([a.variance, b.variance])
    torch.testing.assert_close(mix.mean, means.mean(0))
    torch.testing.assert_close(mix.listener_stddev, var.mean(0).sqrt())
    torch.testing.assert_close(mix.model_stddev, means.std(0, unbiased=False))
    # law of total variance: the mixture's variance is the sum of both kinds of spread
    torch.testing.assert_close(mix.variance, var.mean(0) + means.var(0, unbiased=False))
    x = torch.tensor([45.0, 71.0])
    direct = torch.log((a.log_prob(x).exp() + b.log_prob(x).exp()) / 2)
    torch.testing.assert_close(mix.log_prob(x), direct)
    torch.testing.assert_close(mix.cdf(x), (a.cdf(x) + b.cdf(x)) / 2)
    torch.manual_seed(0)
    s = mix.sample((40000,))
    assert s.shape == (40000, 2)
    sd = mix.stddev
    assert torch.all((s.mean(0) - mix.mean).abs() < 4 * sd / math.sqrt(40000))
    torch.testing.assert_close(s.std(0), sd, rtol=0.03, atol=0)


def test_ensemble_listener_separates_the_two_spreads(tiny_run, second_run, tmp_path):
    ref, cod = write_pair(tmp_path)
    a = gml.load(tiny_run, device="cpu").predict(ref, cod)
    b = gml.load(second_run, device="cpu").predict(ref, cod)
    both = gml.load([tiny_run, second_run], device="cpu").predict(ref, cod, n_listeners=20)
    assert both.members == 2 and math.isnan(a.model_std)
    assert both.mean == pytest.approx((a.mean + b.mean) / 2, abs=1e-4)
    assert both.std == pytest.approx(math.sqrt((a.std**2 + b.std**2) / 2), rel=1e-5)
    assert both.model_std == pytest.approx(abs(a.mean - b.mean) / 2, abs=1e-4)
    # the CI for N listeners uses the listener spread only
    assert both.ci95 == pytest.approx(a.ci95 * both.std / a.std, rel=1e-5)
    # quantiles come from the whole mixture (both kinds of spread)
    assert float(both.distribution.cdf(torch.tensor(both.q50))) == pytest.approx(0.5, abs=1e-3)


def test_the_same_model_twice_has_no_disagreement(tiny_run, tmp_path):
    ref, cod = write_pair(tmp_path)
    one = gml.load(tiny_run, device="cpu").predict(ref, cod)
    twice = gml.load([tiny_run, tiny_run], device="cpu").predict(ref, cod)
    assert twice.model_std == pytest.approx(0.0, abs=1e-5)
    assert (twice.mean, twice.std) == pytest.approx((one.mean, one.std), abs=1e-4)


def test_ensemble_test_cli_and_evaluate(tiny_run, second_run, tmp_path, capsys):
    out = tmp_path / "ens"
    main(["test", "--ckpt", str(tiny_run / "best.ckpt"), "--ckpt", str(second_run / "best.ckpt"),
          "--out", str(out), "--data.progress", "false", "--trainer.accelerator", "cpu"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "ensemble of 2 checkpoints" in printed and "Rp mean" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["members"]) == 2
    preds = pd.read_csv(out / "predictions.csv")
    assert (preds["predicted_model_std"] >= 0).all()
    # the listener-spread CI: t * std / sqrt(N) with the stimulus's own N
    from gml.stats import ci_halfwidth

    pd.testing.assert_series_equal(
        preds["predicted_ci95"],
        pd.Series(
            ci_halfwidth(preds["predicted_std"], preds["n_listeners"]), name="predicted_ci95"
        ),
        atol=1e-3,
    )


def test_predict_cli_with_two_models(tiny_run, second_run, tmp_path, capsys):
    ref, cod = write_pair(tmp_path)
    main(["predict", "--ckpt", str(tiny_run), "--ckpt", str(second_run), "--reference", str(ref),
          "--coded", str(cod), "--out", str(tmp_path / "p.json"), "--no-progress"])  # fmt: skip
    obj = json.loads((tmp_path / "p.json").read_text())
    assert obj["members"] == 2 and obj["model_std"] >= 0
