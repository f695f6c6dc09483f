"""Heads: NLL equations (paper eq. 2 and 3), moments, sampling, CI, registry, user subclasses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from gml.heads import (
    DistributionHead,
    GaussianHead,
    Logistic,
    LogisticHead,
    PointHead,
    get_head,
    list_heads,
)


def test_logistic_nll_is_paper_eq3():
    mu, a = torch.tensor([50.0, 20.0, 90.0]), torch.tensor([3.0, 0.5, 12.0])
    s = torch.tensor([47.0, 35.0, 90.0])
    nll = -Logistic(mu, a).log_prob(s)
    # eq. 3 with the sign of the log-sech term corrected: log(4a) + 2 log cosh((s - mu) / 2a)
    eq3 = torch.log(4 * a) + 2 * torch.log(torch.cosh((s - mu) / (2 * a)))
    torch.testing.assert_close(nll, eq3)
    torch.testing.assert_close(
        nll, torch.as_tensor(-sps.logistic.logpdf(s, mu, a), dtype=torch.float32)
    )


def test_logistic_tails_stay_finite():
    d = Logistic(torch.tensor(50.0), torch.tensor(0.05))
    lp = d.log_prob(torch.tensor([0.0, 100.0]))
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp[0], torch.tensor(-1000.0 - math.log(0.05)), rtol=1e-4, atol=1e-2)


def test_gaussian_nll_is_paper_eq2_corrected():
    head = GaussianHead()
    mu, sigma = torch.tensor([40.0, 70.0]), torch.tensor([5.0, 11.0])
    d = torch.distributions.Normal(mu, sigma)
    s = torch.tensor([33.0, 71.0])
    eq2 = torch.log(sigma * math.sqrt(2 * math.pi)) + (s - mu) ** 2 / (2 * sigma**2)
    torch.testing.assert_close(head.nll(d, s), eq2)


def test_logistic_moments_cdf_and_sampling():
    torch.manual_seed(0)
    d = Logistic(torch.tensor([30.0, 70.0]), torch.tensor([4.0, 9.0]))
    torch.testing.assert_close(d.stddev, torch.tensor([4.0, 9.0]) * math.pi / math.sqrt(3))
    x = d.sample((200_000,))
    torch.testing.assert_close(x.mean(0), d.mean, atol=0.15, rtol=0)
    torch.testing.assert_close(x.std(0), d.stddev, rtol=0.02, atol=0)
    q = torch.tensor([[25.0, 80.0]])
    torch.testing.assert_close(
        d.cdf(q)[0],
        torch.tensor(sps.logistic.cdf([25.0, 80.0], [30, 70], [4, 9]), dtype=torch.float32),
    )
    torch.testing.assert_close(d.icdf(d.cdf(q)), q)


def test_rsample_has_gradients():
    loc = torch.tensor([50.0], requires_grad=True)
    scale = torch.tensor([5.0], requires_grad=True)
    Logistic(loc, scale).rsample((10,)).sum().backward()
    assert loc.grad is not None and scale.grad is not None


@pytest.mark.parametrize("head_cls", [LogisticHead, GaussianHead])
def test_head_scale_positive_and_finite(head_cls):
    head = head_cls()
    head.build(4)
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.copy_(torch.tensor([0.0, -1e4]))
    d = head(torch.zeros(3, 4))
    assert (d.stddev > 0).all() and torch.isfinite(d.stddev).all()
    with torch.no_grad():
        head.proj.bias.copy_(torch.tensor([0.0, 1e4]))
    assert torch.isfinite(head(torch.zeros(3, 4)).stddev).all()


def test_ci95_matches_scipy():
    head = LogisticHead()
    d = Logistic(torch.tensor([50.0, 50.0]), torch.tensor([5.0, 2.0]))
    n = torch.tensor([10, 28])
    ci = head.ci95(d, n)
    std = d.stddev.numpy()
    want = [sps.t.ppf(0.975, k - 1) * s / np.sqrt(k) for s, k in zip(std, n.numpy())]
    np.testing.assert_allclose(ci.numpy(), want, rtol=1e-5)


def test_masked_nll_over_panels():
    head = LogisticHead()
    d = Logistic(torch.tensor([50.0, 60.0]), torch.tensor([5.0, 5.0]))
    scores = torch.tensor([[40.0, 55.0, 0.0], [60.0, 61.0, 70.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    got = head.nll(d, scores, mask)
    want0 = -sps.logistic.logpdf([40, 55], 50, 5).mean()
    want1 = -sps.logistic.logpdf([60, 61, 70], 60, 5).mean()
    np.testing.assert_allclose(got.numpy(), [want0, want1], rtol=1e-5)


def test_point_head_has_no_spread_and_smooth_l1():
    head = PointHead()
    head.build(3)
    d = head(torch.zeros(2, 3))
    assert torch.isnan(d.stddev).all() and torch.isnan(d.log_prob(torch.tensor([50.0, 50.0]))).all()
    target = torch.tensor([10.0, 50.5])
    loss = head.loss(d, target)
    torch.testing.assert_close(loss, torch.nn.functional.smooth_l1_loss(d.mean, target))
    assert PointHead.target == "mean" and LogisticHead.target == "scores"


class CauchyHead(DistributionHead):
    """A user's head defined outside gml."""

    num_params = 2

    def distribution(self, params):
        return torch.distributions.Cauchy(
            self.location(params[..., 0]), torch.nn.functional.softplus(params[..., 1]) + 0.1
        )


def test_registry_and_user_subclass():
    assert {"logistic", "gaussian", "point"} <= set(list_heads())
    assert isinstance(get_head("logistic"), LogisticHead)
    assert "cauchyhead" in list_heads()
    assert isinstance(get_head(f"{__name__}.CauchyHead"), CauchyHead)
    with pytest.raises(KeyError, match="known"):
        get_head("nope")
    h = CauchyHead()
    h.build(2)
    assert h.nll(h(torch.zeros(4, 2)), torch.full((4,), 50.0)).shape == (4,)
