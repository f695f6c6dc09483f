"""Heads for the bounded MUSHRA scale (censored, beta, mixture): the contract of test_heads.py
(NLL vs scipy, moments of samples, cdf, CI), exact moments, the listener's window mixture,
extreme parameters, a few training steps, and one fit of each shipped config through the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy import stats as sps
from torch.distributions import Categorical, MixtureSameFamily

from gml.heads import (
    BetaHead,
    CensoredGaussianHead,
    CensoredLogistic,
    CensoredLogisticHead,
    CensoredNormal,
    DistributionHead,
    LocationScaleMixture,
    MixtureHead,
    ScaledBeta,
    get_head,
    list_heads,
)

REPO = Path(__file__).resolve().parents[1]
NEW_HEADS = [CensoredLogisticHead, CensoredGaussianHead, BetaHead, MixtureHead]
CENSORED = [(CensoredLogistic, sps.logistic), (CensoredNormal, sps.norm)]
f64 = torch.float64


def _ids(classes) -> list[str]:
    return [c.__name__ for c in classes]


def _raw(head: DistributionHead, rows: list[list[float]]) -> torch.Tensor:
    """Raw parameters: each row's values repeated over the head's ``num_params``."""
    n = head.num_params
    return torch.tensor([[r[i % len(r)] for i in range(n)] for r in rows])


# -- censored: likelihood and exact moments ------------------------------------------------


@pytest.mark.parametrize("cls,ref", CENSORED, ids=["logistic", "normal"])
def test_censored_nll_matches_scipy(cls, ref):
    mu, sigma = np.array([20.0, 90.0, 50.0]), np.array([5.0, 8.0, 15.0])
    scores = np.array([[0.0, 100.0, 50.0], [0.4, 99.6, 0.6], [99.4, 12.0, 100.0]])  # [N, B]
    got = -cls(torch.tensor(mu, dtype=f64), torch.tensor(sigma, dtype=f64)).log_prob(
        torch.tensor(scores, dtype=f64)
    )
    low = ref.logcdf(0.0, mu, sigma)
    high = ref.logsf(100.0, mu, sigma)
    inner = ref.logpdf(scores, mu, sigma)
    want = -np.where(scores <= 0.5, low, np.where(scores >= 99.5, high, inner))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    # through the head's NLL (defined once in the base class), with a mask
    head = CensoredLogisticHead() if cls is CensoredLogistic else CensoredGaussianHead()
    d = cls(torch.tensor(mu, dtype=f64), torch.tensor(sigma, dtype=f64))
    mask = torch.tensor([[True, True, False]] * 3)
    nll = head.nll(d, torch.tensor(scores.T, dtype=f64), mask)
    np.testing.assert_allclose(nll.numpy(), want.T[:, :2].mean(1), rtol=1e-10)


def test_censored_tolerance_is_configurable():
    mu, sigma = torch.tensor([10.0]), torch.tensor([5.0])
    s = torch.tensor([0.3])
    strict = CensoredLogistic(mu, sigma, tol=0.0).log_prob(s)
    loose = CensoredLogistic(mu, sigma, tol=0.5).log_prob(s)
    torch.testing.assert_close(strict, torch.tensor([sps.logistic.logpdf(0.3, 10, 5)]).float())
    torch.testing.assert_close(loose, torch.tensor([sps.logistic.logcdf(0.0, 10, 5)]).float())
    head = CensoredGaussianHead(tol=2.0)
    head.build(3)
    assert head(torch.zeros(1, 3)).tol == 2.0
    with pytest.raises(ValueError, match="tol"):
        CensoredNormal(mu, sigma, tol=60.0)


def _clipped_moments(ref, mu: float, sigma: float) -> tuple[float, float]:
    """Mean and std of clip(X, 0, 100) by numerical integration, about ``c`` = the latent mean
    clipped to the scale (so that ``E[(Y − c)²] − E[Y − c]²`` does not cancel)."""
    c = min(max(mu, 0.0), 100.0)
    cuts = sorted({0.0, 100.0, *np.clip([mu - sigma, mu, mu + sigma], 0.0, 100.0)})

    def moment(k: int) -> float:
        ends = (0.0 - c) ** k * ref.cdf(0.0, mu, sigma) + (100.0 - c) ** k * ref.sf(
            100.0, mu, sigma
        )
        inner = sum(
            integrate.quad(
                lambda x: (x - c) ** k * ref.pdf(x, mu, sigma),
                lo,
                hi,
                epsabs=1e-13,
                epsrel=1e-12,
                limit=200,
            )[0]
            for lo, hi in zip(cuts[:-1], cuts[1:])
        )
        return ends + inner

    m1, m2 = moment(1), moment(2)
    return c + m1, math.sqrt(max(m2 - m1 * m1, 0.0))


@pytest.mark.parametrize("cls,ref", CENSORED, ids=["logistic", "normal"])
@pytest.mark.parametrize(
    "mu,sigma",
    [(50, 10), (95, 8), (5, 3), (-10, 5), (130, 20), (100, 2), (0, 1), (50, 200), (-300, 50),
     (50, 0.05), (99.9, 0.05), (60, 30)],
)  # fmt: skip
def test_censored_mean_and_std_are_exact(cls, ref, mu, sigma):
    d = cls(torch.tensor(float(mu), dtype=f64), torch.tensor(float(sigma), dtype=f64))
    mean, std = _clipped_moments(ref, float(mu), float(sigma))
    np.testing.assert_allclose(float(d.mean), mean, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(float(d.stddev), std, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cls", [c for c, _ in CENSORED], ids=["logistic", "normal"])
def test_censored_samples_match_moments_and_end_masses(cls):
    torch.manual_seed(0)
    d = cls(torch.tensor([95.0, 8.0, 50.0]), torch.tensor([6.0, 5.0, 12.0]))
    n = 200_000
    x = d.sample((n,))
    assert x.min() >= 0 and x.max() <= 100
    # moments: tolerances of 5 standard errors, estimated from the draws themselves
    se_mean = x.std(0) / math.sqrt(n)
    assert ((x.mean(0) - d.mean).abs() < 5 * se_mean).all()
    dev2 = (x - x.mean(0)).pow(2)
    se_var = dev2.std(0) / math.sqrt(n)
    assert ((dev2.mean(0) - d.variance).abs() < 5 * se_var).all()
    # the share of draws exactly at an end is the cdf's jump there
    at_low, at_high = (x == 0).double().mean(0), (x == 100).double().mean(0)
    p_low = d.cdf(torch.zeros(3)).double()
    p_high = 1 - d.cdf(torch.full((3,), 100.0 - 1e-3)).double()
    torch.testing.assert_close(p_low, d.mass_low.double())
    torch.testing.assert_close(p_high, d.mass_high.double(), atol=1e-4, rtol=0)
    for share, p in ((at_low, p_low), (at_high, p_high)):
        assert ((share - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 1e-4).all()
    assert at_high[0] > 0.05 and at_low[1] > 0.05  # the test really exercises the masses
    # generalised inverse of the cdf: clipped latent quantiles
    q = d.icdf(torch.tensor([[0.01], [0.5], [0.99]]))
    assert q.min() >= 0 and q.max() <= 100
    assert (d.cdf(q) >= torch.tensor([[0.01], [0.5], [0.99]]) - 1e-5).all()


def test_censored_rsample_has_gradients():
    loc = torch.tensor([90.0], requires_grad=True)
    scale = torch.tensor([10.0], requires_grad=True)
    CensoredLogistic(loc, scale).rsample((50,)).sum().backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(scale.grad).all()


# -- beta ------------------------------------------------------------------------------------


def test_beta_nll_matches_scipy_with_squeeze():
    a, b = np.array([2.0, 0.6, 30.0]), np.array([5.0, 0.4, 1.5])
    scores = np.array([[0.0, 100.0, 50.0], [37.0, 0.0, 100.0], [100.0, 62.5, 99.0]])  # [N, B]
    d = ScaledBeta(torch.tensor(a, dtype=f64), torch.tensor(b, dtype=f64), virtual_n=100)
    got = -d.log_prob(torch.tensor(scores, dtype=f64))
    squeezed = (scores / 100 * 99 + 0.5) / 100
    want = -(sps.beta.logpdf(squeezed, a, b) - math.log(100.0))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    # the squeeze: half a point at n = 100, configurable
    torch.testing.assert_close(
        d.squeeze(torch.tensor([0.0, 50.0, 100.0], dtype=f64)),
        torch.tensor([0.005, 0.5, 0.995], dtype=f64),
    )
    d10 = ScaledBeta(2.0, 3.0, virtual_n=10)
    torch.testing.assert_close(d10.squeeze(torch.tensor([0.0, 100.0])), torch.tensor([0.05, 0.95]))


def test_beta_head_parametrisation():
    head = BetaHead()
    raw = torch.tensor([[0.0, 0.0], [2.0, -1.0]])
    d = head.distribution(raw)
    mu = 1e-3 + (1 - 2e-3) * torch.sigmoid(raw[:, 0])
    kappa = 0.5 + 20.0 * torch.nn.functional.softplus(raw[:, 1])
    torch.testing.assert_close(d.concentration1, mu * kappa)
    torch.testing.assert_close(d.concentration0, (1 - mu) * kappa)
    torch.testing.assert_close(d.mean, 100 * mu)
    torch.testing.assert_close(d.variance, 1e4 * mu * (1 - mu) / (kappa + 1))


def test_beta_samples_moments_and_cdf():
    torch.manual_seed(0)
    a, b = torch.tensor([2.0, 0.5, 40.0]), torch.tensor([3.0, 0.5, 2.0])
    d = ScaledBeta(a, b)
    n = 200_000
    x = d.sample((n,))
    assert x.min() >= 0 and x.max() <= 100
    se_mean = x.std(0) / math.sqrt(n)
    assert ((x.mean(0) - d.mean).abs() < 5 * se_mean).all()
    dev2 = (x - x.mean(0)).pow(2)
    assert ((dev2.mean(0) - d.variance).abs() < 5 * dev2.std(0) / math.sqrt(n)).all()
    q = torch.tensor([[-5.0], [0.0], [10.0], [50.0], [97.0], [100.0], [120.0]])
    want = sps.beta.cdf(np.clip(q.numpy() / 100, 0, 1), a.numpy(), b.numpy())
    np.testing.assert_allclose(d.cdf(q).numpy(), want, rtol=1e-5, atol=1e-7)
    assert (d.cdf(q[:2]) == 0).all() and (d.cdf(q[-2:]) == 1).all()
    assert d.rsample((3,)).shape == (3, 3)


# -- mixture ---------------------------------------------------------------------------------


@pytest.mark.parametrize("base,ref", [("logistic", sps.logistic), ("gaussian", sps.norm)])
def test_mixture_nll_matches_direct_computation(base, ref):
    head = MixtureHead(components=3, base=base)
    assert head.num_params == 9 and DistributionHead.num_params == 2
    params = torch.tensor([[0.1, -0.4, 0.8, 0.0, 1.0, -2.0, 0.3, -0.2, 1.5]], dtype=f64)
    d = head.distribution(params)
    assert isinstance(d, LocationScaleMixture) and d.batch_shape == (1,)
    loc = 50 + 50 * params[0, :3].numpy()
    scale = 0.05 + head.scale_unit * np.log1p(np.exp(params[0, 3:6].numpy()))
    logw = params[0, 6:].numpy() - np.log(np.exp(params[0, 6:].numpy()).sum())
    s = np.array([0.0, 31.0, 55.0, 100.0])
    want = -np.log(np.exp(logw + ref.logpdf(s[:, None], loc, scale)).sum(1))
    got = head.nll(d, torch.tensor(s[None], dtype=f64))
    np.testing.assert_allclose(got.numpy(), [want.mean()], rtol=1e-10)
    np.testing.assert_allclose(d.weights[0].numpy(), np.exp(logw), rtol=1e-10)


def test_mixture_samples_moments_and_build():
    torch.manual_seed(0)
    head = MixtureHead(components=2, base="gaussian")
    head.build(4)
    assert head.proj.out_features == 6
    torch.testing.assert_close(head.proj.bias[:2].detach(), torch.tensor([-0.4, 0.4]))
    params = torch.tensor([[-0.6, 0.7, 0.0, -0.5, 0.2, -0.2], [0.0, 0.1, 1.0, 1.0, 0.0, 0.0]])
    d = head.distribution(params)
    n = 200_000
    x = d.sample((n,))
    se_mean = x.std(0) / math.sqrt(n)
    assert ((x.mean(0) - d.mean).abs() < 5 * se_mean).all()
    dev2 = (x - x.mean(0)).pow(2)
    assert ((dev2.mean(0) - d.variance).abs() < 5 * dev2.std(0) / math.sqrt(n)).all()
    # a split panel: the mixture's mean lies between the groups, its spread covers both
    assert d.stddev[0] > 30
    e = d.expand((3, 2))
    assert e.batch_shape == (3, 2) and isinstance(e, LocationScaleMixture)
    torch.testing.assert_close(e.mean[1], d.mean)


# -- every new head: the shared contract -----------------------------------------------------


@pytest.mark.parametrize("head_cls", NEW_HEADS, ids=_ids(NEW_HEADS))
def test_cdf_monotone_within_unit_interval(head_cls):
    head = head_cls()
    params = _raw(head, [[0.0, 0.0], [1.2, -1.0], [-0.9, 0.5], [0.3, 2.0]])
    d = head.distribution(params)
    grid = torch.linspace(-20, 120, 561).unsqueeze(1)  # [G, 1] against batch [4]
    c = d.cdf(grid)
    assert c.shape == (561, 4) and torch.isfinite(c).all()
    assert (c >= 0).all() and (c <= 1).all() and (c.diff(dim=0) >= -1e-6).all()
    if head_cls is not MixtureHead:  # bounded support: no mass outside the scale
        assert (c[grid[:, 0] < 0] == 0).all() and (c[grid[:, 0] >= 100] == 1).all()


@pytest.mark.parametrize("head_cls", NEW_HEADS, ids=_ids(NEW_HEADS))
def test_ci95_matches_scipy(head_cls):
    head = head_cls()
    d = head.distribution(_raw(head, [[0.2, 0.0], [0.9, -0.5]]))
    n = torch.tensor([10, 28])
    ci = head.ci95(d, n)
    std = d.stddev.numpy()
    want = [sps.t.ppf(0.975, k - 1) * s / np.sqrt(k) for s, k in zip(std, n.numpy())]
    np.testing.assert_allclose(ci.numpy(), want, rtol=1e-5)


@pytest.mark.parametrize("head_cls", NEW_HEADS, ids=_ids(NEW_HEADS))
def test_extreme_params_and_end_scores_stay_finite(head_cls):
    head = head_cls()
    head.build(4)
    combos = [[50.0], [-50.0], [50.0, -50.0], [-50.0, 50.0], [0.0], [50.0, 0.0], [-50.0, 0.0]]
    raw = _raw(head, combos).requires_grad_()
    d = head.distribution(raw)
    scores = torch.tensor([0.0, 100.0, 0.4, 99.7, 50.0]).expand(len(combos), 5)
    nll = head.nll(d, scores)
    assert torch.isfinite(nll).all()
    (grad,) = torch.autograd.grad(nll.sum(), raw)
    assert torch.isfinite(grad).all()
    with torch.no_grad():
        d = head.distribution(raw)
        assert torch.isfinite(d.mean).all() and torch.isfinite(d.stddev).all()
        assert (d.stddev >= 0).all()
        assert torch.isfinite(d.cdf(torch.tensor([[0.0], [50.0], [100.0]]))).all()
        assert torch.isfinite(d.sample((100,))).all()
    if head_cls is not MixtureHead:
        assert (d.mean >= 0).all() and (d.mean <= 100).all()
    # through the projection too (the module's path), for huge features
    out = head(torch.full((2, 4), 1e3))
    assert torch.isfinite(head.nll(out, torch.tensor([0.0, 100.0]))).all()


@pytest.mark.parametrize("head_cls", NEW_HEADS, ids=_ids(NEW_HEADS))
def test_window_mixture_of_the_listener(head_cls):
    """What gml.listener does with a pair's analysis windows: a MixtureSameFamily over them."""
    from gml.listener import quantiles

    torch.manual_seed(0)
    head = head_cls()
    params = torch.randn(5, head.num_params) * 0.5  # [W, num_params]
    comp = head.distribution(params)
    assert comp.batch_shape == (5,)
    dist = MixtureSameFamily(Categorical(logits=torch.zeros(5)), comp, validate_args=False)
    assert dist.batch_shape == ()
    torch.testing.assert_close(dist.mean, comp.mean.mean())
    var = comp.variance.mean() + comp.mean.var(unbiased=False)
    torch.testing.assert_close(dist.stddev, var.sqrt())
    c = dist.cdf(torch.tensor([0.0, 25.0, 50.0, 100.0]))
    assert torch.isfinite(c).all() and (c.diff() >= 0).all()
    x = dist.sample((4000,))
    assert x.shape == (4000,) and torch.isfinite(x).all()
    assert abs(float(x.mean() - dist.mean)) < 5 * float(dist.stddev) / math.sqrt(4000)
    lp = dist.log_prob(torch.tensor([[10.0], [100.0]]))
    assert lp.shape == (2, 1) and torch.isfinite(lp).all()
    q = quantiles(dist)
    assert torch.isfinite(q).all() and (q.diff() >= 0).all()
    assert dist.expand((2,)).batch_shape == (2,)


@pytest.mark.parametrize("head_cls", NEW_HEADS, ids=_ids(NEW_HEADS))
def test_head_trains_on_scores_piled_at_100(head_cls):
    torch.manual_seed(0)
    head = head_cls()
    head.build(6)
    features = torch.randn(16, 6)
    scores = torch.full((16, 10), 100.0)
    scores[:, 7:] = torch.empty(16, 3).uniform_(70, 99)  # most listeners at 100, some below
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    start_mean = float(head(features).mean.mean().detach())
    losses = []
    for _ in range(30):
        loss = head.loss(head(features), scores)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 0.5
    # the predicted means move towards the pile (the beta head is the slowest to get there)
    assert float(head(features).mean.mean().detach()) > start_mean + 15


def test_registry_knows_the_new_heads():
    heads = list_heads()
    for name, cls in [
        ("censored_logistic", CensoredLogisticHead),
        ("censored_gaussian", CensoredGaussianHead),
        ("beta", BetaHead),
        ("mixture", MixtureHead),
    ]:
        assert heads[name] is cls and isinstance(get_head(name), cls)
    assert "censoredhead" not in heads  # the intermediate base class is not a head
    assert get_head("mixture", components=3).num_params == 9
    assert isinstance(get_head("gml.heads.BetaHead", virtual_n=50), BetaHead)


# -- the real CLI ----------------------------------------------------------------------------


def test_new_configs_fit_through_the_cli(tiny_demo, tmp_path, monkeypatch):
    from gml.cli import main

    monkeypatch.chdir(tmp_path)
    for name in ("censored", "beta", "mixture"):
        main(
            [
                "fit",
                "--config", str(REPO / "gml" / "configs" / f"{name}.yaml"),
                "--data.manifest", str(tiny_demo),
                "--trainer.fast_dev_run", "1",
                "--trainer.accelerator", "cpu",
                "--data.progress", "false",
                "--model.backbone.init_args.preset", "tiny",
            ]
        )  # fmt: skip
