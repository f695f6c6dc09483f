"""gml.stats, gml.metrics.functional and gml.metrics.collection against scipy / numpy."""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from torchmetrics import Metric

from gml.metrics import (
    CIRMSE,
    METRIC_KEYS,
    TABLE_COLUMNS,
    UPDATE_KWARGS,
    CIPearson,
    CISpearman,
    ExcludedFromCI,
    MeanNLL,
    MeanPearson,
    MeanSpearman,
    OutlierRatio,
    ci_halfwidth,
    ci_rmse,
    metric_collection,
    outlier_ratio,
    stimulus_stats,
    t_quantile,
)

torch.set_num_threads(1)

SISEC = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "sisec08-ratings"
    / "SiSEC08_anonymized.csv"
)
BATCHES = (1, 7, 30, 2, 60)  # uneven batch sizes, including a single stimulus
NAN = float("nan")


# --------------------------------------------------------------------------- helpers
def ragged_scores(
    rng: np.random.Generator, lengths: list[int]
) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
    """Ragged listener scores as a list and as a padded ``[B, Nmax]`` tensor with mask."""
    rows = [
        np.clip(rng.normal(rng.uniform(20, 90), rng.uniform(1, 15), n), 0, 100) for n in lengths
    ]
    rows = [np.round(r) if i % 3 == 0 else r for i, r in enumerate(rows)]  # some exact ties
    nmax = max(lengths)
    scores = torch.full((len(rows), nmax), 12345.0, dtype=torch.float64)  # junk padding
    mask = torch.zeros(len(rows), nmax, dtype=torch.bool)
    for i, r in enumerate(rows):
        scores[i, : len(r)] = torch.from_numpy(r)
        mask[i, : len(r)] = True
    return rows, scores, mask


def make_stimuli(seed: int = 0, b: int = sum(BATCHES)) -> dict[str, torch.Tensor]:
    """All update kwargs for ``b`` stimuli (float32), from real ragged scores; some N = 1."""
    rng = np.random.default_rng(seed)
    lengths = list(rng.integers(2, 25, b))
    lengths[3] = lengths[40] = lengths[77] = 1
    _, scores, mask = ragged_scores(rng, lengths)
    st = stimulus_stats(scores, mask)
    # rounded predictions -> ties in pred_mean; ties in subj_mean from rounded scores
    pred_mean = torch.round(st.mean + torch.from_numpy(rng.normal(0, 8, b)))
    pred_std = torch.from_numpy(rng.uniform(2, 20, b))
    pred_ci = ci_halfwidth(pred_std, st.n)
    nll = torch.from_numpy(rng.normal(4, 1, int(mask.sum())))
    out = {
        "pred_mean": pred_mean,
        "pred_std": pred_std,
        "pred_ci": pred_ci,
        "subj_mean": st.mean,
        "subj_ci": st.ci95,
        "n_listeners": st.n,
        "nll": nll,
    }
    return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}


def batched_update(metric: Metric, data: dict[str, torch.Tensor], sizes=BATCHES) -> None:
    """Update ``metric`` (or a collection) over uneven batches; ``nll`` split proportionally."""
    b = len(data["pred_mean"])
    assert sum(sizes) == b
    nll = data["nll"]
    start = 0
    for i, size in enumerate(sizes):
        lo, hi = start * len(nll) // b, (start + size) * len(nll) // b
        kw = {k: v[start : start + size] for k, v in data.items() if k != "nll"}
        kw["nll"] = nll[lo:hi] if i < len(sizes) - 1 else nll[lo:]
        metric.update(**(kw if not isinstance(metric, Metric) else metric._filter_kwargs(**kw)))
        start += size


def reference(data: dict[str, torch.Tensor]) -> dict[str, float]:
    """Every metric computed in float64 by scipy / numpy."""
    d = {k: v.double().numpy() for k, v in data.items()}
    ci_ok = np.isfinite(d["pred_ci"]) & np.isfinite(d["subj_ci"])
    or_ok = np.isfinite(d["subj_ci"])
    dev = np.abs(d["pred_mean"] - d["subj_mean"])[or_ok]
    return {
        "mean_pearson": scipy.stats.pearsonr(d["pred_mean"], d["subj_mean"])[0],
        "mean_spearman": scipy.stats.spearmanr(d["pred_mean"], d["subj_mean"])[0],
        "outlier_ratio": float(np.mean(dev > d["subj_ci"][or_ok])),
        "ci_pearson": scipy.stats.pearsonr(d["pred_ci"][ci_ok], d["subj_ci"][ci_ok])[0],
        "ci_spearman": scipy.stats.spearmanr(d["pred_ci"][ci_ok], d["subj_ci"][ci_ok])[0],
        "ci_rmse": float(np.sqrt(np.mean((d["pred_ci"] - d["subj_ci"])[ci_ok] ** 2))),
        "nll": float(np.mean(d["nll"])),
        "ci_excluded": float(np.sum(d["n_listeners"] < 2)),
    }


# --------------------------------------------------------------------------- stats
def test_t_quantile_matches_scipy_and_keeps_kind() -> None:
    n = np.arange(2, 120)
    expected = scipy.stats.t.ppf(0.975, n - 1)
    np.testing.assert_allclose(t_quantile(n), expected, rtol=1e-12)
    np.testing.assert_allclose(t_quantile(n, level=0.9), scipy.stats.t.ppf(0.95, n - 1))
    q = t_quantile(10)
    assert isinstance(q, float) and q == pytest.approx(scipy.stats.t.ppf(0.975, 9), rel=1e-12)
    assert math.isnan(t_quantile(1)) and math.isnan(t_quantile(0))
    for dtype in (torch.float32, torch.float64):
        qt = t_quantile(torch.tensor([0.0, 1.0, 2.0, 30.0], dtype=dtype))
        assert qt.dtype == dtype and qt.shape == (4,)
        assert torch.isnan(qt[:2]).all()
        np.testing.assert_allclose(qt[2:].numpy(), scipy.stats.t.ppf(0.975, [1, 29]), rtol=1e-6)
    ql = t_quantile(torch.tensor([[1, 5], [8, 20]]))
    assert ql.dtype == torch.get_default_dtype() and ql.shape == (2, 2) and torch.isnan(ql[0, 0])
    with pytest.raises(ValueError):
        t_quantile(5, level=1.0)


def test_numpy_t_quantile_matches_scipy_everywhere() -> None:
    """gml's own t quantile (no scipy on the scoring path) against scipy over integer and
    fractional degrees of freedom, both sides of the switch to the expansion, and the levels
    anyone asks for; closed forms for 1 and 2 degrees of freedom."""
    from gml.student_t import t_upper_quantile

    df = np.concatenate(
        [np.arange(1, 130), [1.0001, 1.5, 2.5, 3.3, 7.7, 999.0, 999.99, 1000.0, 1e4, 1e6, 1e12]]
    )
    for level in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.99999, 1 - 1e-9):
        p = 0.5 * (1 + level)
        np.testing.assert_allclose(t_upper_quantile(df, p), scipy.stats.t.ppf(p, df), rtol=1e-10)
        cauchy = 1 / math.tan(math.pi * (1 - p))  # from its tail, as gml solves it
        assert t_upper_quantile(np.array([1.0]), p)[0] == pytest.approx(cauchy, rel=1e-10)
        two = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
        assert t_upper_quantile(np.array([2.0]), p)[0] == pytest.approx(two, rel=1e-10)
    assert t_upper_quantile(np.array([3.0, 50.0]), 0.5).tolist() == [0.0, 0.0]
    assert t_upper_quantile(np.ones((2, 3)) * 9, 0.975).shape == (2, 3)
    with pytest.raises(ValueError):
        t_upper_quantile(np.array([0.5]), 0.975)
    with pytest.raises(ValueError):
        t_upper_quantile(np.array([5.0]), 0.4)


def test_ci_halfwidth_matches_scipy_interval() -> None:
    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 13, 40):
        x = rng.normal(50, 10, n)
        lo, hi = scipy.stats.t.interval(0.95, n - 1, loc=x.mean(), scale=scipy.stats.sem(x))
        half = ci_halfwidth(x.std(ddof=1), n)
        assert isinstance(half, float)
        assert half == pytest.approx((hi - lo) / 2, rel=1e-12)
        lo, hi = scipy.stats.t.interval(0.8, n - 1, loc=x.mean(), scale=scipy.stats.sem(x))
        assert ci_halfwidth(x.std(ddof=1), n, level=0.8) == pytest.approx((hi - lo) / 2)
    # numpy broadcasting, NaN for N < 2
    out = ci_halfwidth(np.array([[1.0], [2.0]]), np.array([1, 2, 10]))
    assert out.shape == (2, 3) and np.isnan(out[:, 0]).all()
    np.testing.assert_allclose(out[1, 2], 2 * scipy.stats.t.ppf(0.975, 9) / math.sqrt(10))


def test_ci_halfwidth_tensor_autograd_and_dtype() -> None:
    std = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    n = torch.tensor([1, 4, 25])
    ci = ci_halfwidth(std, n)
    assert ci.dtype == torch.float32 and torch.isnan(ci[0])
    factor = scipy.stats.t.ppf(0.975, np.array([3, 24])) / np.sqrt([4, 25])
    np.testing.assert_allclose(ci[1:].detach().numpy(), [2, 3] * factor, rtol=1e-6)
    ci[1:].sum().backward()
    np.testing.assert_allclose(std.grad[1:].numpy(), factor, rtol=1e-6)
    assert std.grad[0] == 0
    # scalar N with a tensor std; tensor N with a float std
    assert ci_halfwidth(torch.ones(2, dtype=torch.float64), 10).dtype == torch.float64
    assert isinstance(ci_halfwidth(2.0, torch.tensor([5, 6])), torch.Tensor)


def test_stimulus_stats_matches_numpy_on_ragged_data() -> None:
    rng = np.random.default_rng(2)
    lengths = [0, 1, 2, 3, 7, 12, 1, 20, 5]
    rows, scores, mask = ragged_scores(rng, lengths)
    st = stimulus_stats(scores, mask)
    assert st.n.dtype == torch.long and st.n.tolist() == lengths
    assert st.mean.dtype == torch.float64
    for i, r in enumerate(rows):
        if len(r) == 0:
            assert torch.isnan(st.mean[i])
        else:
            assert st.mean[i].item() == pytest.approx(r.mean(), rel=1e-12)
        if len(r) < 2:
            assert torch.isnan(st.std[i]) and torch.isnan(st.ci95[i])
            continue
        assert st.std[i].item() == pytest.approx(r.std(ddof=1), rel=1e-10)
        lo, hi = scipy.stats.t.interval(0.95, len(r) - 1, loc=r.mean(), scale=scipy.stats.sem(r))
        assert st.ci95[i].item() == pytest.approx((hi - lo) / 2, rel=1e-10)
    # mask=None: NaN padding means "no score"
    nan_padded = torch.where(mask, scores, torch.tensor(NAN, dtype=scores.dtype))
    st2 = stimulus_stats(nan_padded)
    for a, b in zip(st, st2, strict=True):
        torch.testing.assert_close(a, b, equal_nan=True)
    # integer scores, float32 default out
    st3 = stimulus_stats(torch.tensor([[50, 60, 70]]))
    assert st3.mean.dtype == torch.get_default_dtype() and st3.std.item() == pytest.approx(10.0)
    with pytest.raises(ValueError):
        stimulus_stats(torch.zeros(3))


# --------------------------------------------------------------------------- functional
def test_outlier_ratio_hand_made() -> None:
    subj_mean = torch.tensor([50.0, 50.0, 50.0, 50.0, 50.0, 30.0])
    subj_ci = torch.tensor([5.0, 5.0, 5.0, 5.0, 5.0, NAN])  # last: N = 1, ignored
    pred_mean = torch.tensor([55.0, 44.9, 50.0, 56.0, 45.0, 99.0])
    # |d| = 5 (on the edge: inside), 5.1 (out), 0, 6 (out), 5 (inside)
    assert outlier_ratio(pred_mean, subj_mean, subj_ci).item() == pytest.approx(2 / 5)
    metric = OutlierRatio()
    metric.update(pred_mean[:2], subj_mean[:2], subj_ci[:2])
    metric.update(pred_mean[2:], subj_mean[2:], subj_ci[2:])
    assert metric.compute().item() == pytest.approx(2 / 5)
    # no subjective CI at all -> NaN; NaN prediction -> NaN (a failure, not missing data)
    assert torch.isnan(outlier_ratio(pred_mean[5:], subj_mean[5:], subj_ci[5:]))
    bad = pred_mean.clone()
    bad[0] = NAN
    assert torch.isnan(outlier_ratio(bad, subj_mean, subj_ci))


def test_ci_rmse_ignores_nan() -> None:
    pred = torch.tensor([1.0, 2.0, NAN, 4.0, 5.0])
    subj = torch.tensor([1.5, NAN, 3.0, 2.0, 5.0])
    expected = math.sqrt((0.5**2 + 2.0**2 + 0.0) / 3)
    assert ci_rmse(pred, subj).item() == pytest.approx(expected, rel=1e-6)
    assert torch.isnan(ci_rmse(torch.full((3,), NAN), torch.ones(3)))


# --------------------------------------------------------------------------- metric classes
def test_update_signatures_use_the_vocabulary() -> None:
    coll = metric_collection()
    assert list(coll.keys()) == sorted(METRIC_KEYS)  # torchmetrics sorts dict keys
    assert set(coll.keys()) == set(METRIC_KEYS)
    assert [c[0] for c in TABLE_COLUMNS] == list(METRIC_KEYS[:-1])
    for metric in coll.values():
        params = inspect.signature(metric.update).parameters
        assert params and set(params) <= set(UPDATE_KWARGS), type(metric).__name__


@pytest.mark.parametrize("seed", [0, 1])
def test_collection_matches_scipy_over_uneven_batches(seed: int) -> None:
    data = make_stimuli(seed)
    coll = metric_collection()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no loud warnings on normal data
        batched_update(coll, data)
        got = {k: v.item() for k, v in coll.compute().items()}
    ref = reference(data)
    assert ref["ci_excluded"] == 3
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(ref[key], rel=2e-5, abs=2e-6), key
    # each class alone, updated with its own kwargs only
    for cls, key in [
        (MeanPearson, "mean_pearson"),
        (MeanSpearman, "mean_spearman"),
        (OutlierRatio, "outlier_ratio"),
        (CIPearson, "ci_pearson"),
        (CISpearman, "ci_spearman"),
        (CIRMSE, "ci_rmse"),
        (MeanNLL, "nll"),
        (ExcludedFromCI, "ci_excluded"),
    ]:
        metric = cls()
        batched_update(metric, data, sizes=(100,))
        assert metric.compute().item() == pytest.approx(ref[key], rel=2e-5, abs=2e-6), key


def test_spearman_with_heavy_ties() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, 200).astype(np.float32)
    y = (x + rng.integers(0, 3, 200)).astype(np.float32)
    metric = MeanSpearman()
    for chunk in np.array_split(np.arange(200), [1, 50, 53, 140]):
        metric.update(torch.from_numpy(x[chunk]), torch.from_numpy(y[chunk]))
    assert metric.compute().item() == pytest.approx(scipy.stats.spearmanr(x, y)[0], rel=1e-6)


def test_nan_handling() -> None:
    data = make_stimuli(4)
    ref = reference(data)
    # point predictor: no spread -> pred_ci NaN; no density -> nll NaN
    point = dict(data, pred_ci=torch.full_like(data["pred_ci"], NAN))
    point["pred_std"] = torch.zeros_like(data["pred_std"])
    point["nll"] = torch.full_like(data["nll"], NAN)
    coll = metric_collection()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batched_update(coll, point)
        got = coll.compute()
    for key in ("ci_pearson", "ci_spearman", "ci_rmse", "nll"):
        assert torch.isnan(got[key]), key
    for key in ("mean_pearson", "mean_spearman", "outlier_ratio", "ci_excluded"):
        assert got[key].item() == pytest.approx(ref[key], rel=2e-5), key
    assert got["ci_excluded"].item() == 3
    # a NaN predicted mean is not silently dropped
    bad = dict(data, pred_mean=data["pred_mean"].clone())
    bad["pred_mean"][10] = NAN
    coll = metric_collection()
    batched_update(coll, bad)
    got = coll.compute()
    for key in ("mean_pearson", "mean_spearman", "outlier_ratio"):
        assert torch.isnan(got[key]), key
    assert got["ci_pearson"].item() == pytest.approx(ref["ci_pearson"], rel=2e-5)


def test_degenerate_correlations_are_nan_quietly() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cls in (MeanPearson, MeanSpearman, CIPearson, CISpearman):
            one = cls()
            one.update(torch.tensor([1.0]), torch.tensor([2.0]))
            assert torch.isnan(one.compute()), cls.__name__
            const = cls()
            const.update(torch.tensor([3.0, 3.0, 3.0]), torch.tensor([1.0, 2.0, 3.0]))
            assert torch.isnan(const.compute()), cls.__name__
        ci = CIPearson()
        ci.update(torch.tensor([1.0, NAN, 3.0]), torch.tensor([NAN, 2.0, 1.0]))
        assert torch.isnan(ci.compute())
        for cls in (MeanNLL, CIRMSE):  # updated with nothing usable
            m = cls()
            m.update(*[torch.empty(0)] * len(inspect.signature(m.update).parameters))
            assert torch.isnan(m.compute())


def test_clones_per_test_set_are_independent() -> None:
    base = metric_collection()
    a, b = base.clone(prefix="demo-music/"), base.clone(prefix="demo-speech/")
    da, db = make_stimuli(5), make_stimuli(6)
    batched_update(a, da)
    batched_update(b, db)
    ra, rb = a.compute(), b.compute()
    assert set(ra) == {f"demo-music/{k}" for k in METRIC_KEYS}
    assert set(rb) == {f"demo-speech/{k}" for k in METRIC_KEYS}
    for key in ("mean_pearson", "mean_spearman", "ci_pearson", "ci_rmse", "nll"):
        assert ra[f"demo-music/{key}"].item() != rb[f"demo-speech/{key}"].item()
        assert ra[f"demo-music/{key}"].item() == pytest.approx(reference(da)[key], rel=2e-5)
    a.reset()
    batched_update(a, db)
    for key in METRIC_KEYS:
        assert a.compute()[f"demo-music/{key}"].item() == pytest.approx(
            rb[f"demo-speech/{key}"].item(), rel=1e-6
        )


def test_no_state_aliasing_when_first_batch_has_no_ci() -> None:
    """torchmetrics compute groups would alias ci_spearman to mean_spearman here."""
    data = make_stimuli(7)
    first = dict(data, pred_ci=data["pred_ci"].clone())
    first["pred_ci"][:1] = NAN
    coll = metric_collection()
    batched_update(coll, first)
    got = coll.compute()
    ref = reference(first)
    assert got["ci_spearman"].item() == pytest.approx(ref["ci_spearman"], rel=2e-5)
    assert got["mean_spearman"].item() == pytest.approx(ref["mean_spearman"], rel=2e-5)


def _simulated_ddp(cls: type[Metric], shards: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Compute on rank 0 as DDP would: gather every state from every rank, then reduce."""
    recorded: list[list[torch.Tensor]] = []
    for shard in shards[1:]:
        calls: list[torch.Tensor] = []

        def record(t: torch.Tensor, group=None, calls=calls) -> list[torch.Tensor]:
            calls.append(t.clone())
            return [t]

        other = cls(dist_sync_fn=record, distributed_available_fn=lambda: True)
        batched_update(other, shard, sizes=(len(shard["pred_mean"]),))
        other.compute()
        assert len(calls) == len(other._reductions)  # one gather per state
        recorded.append(calls)
    step = iter(range(10**6))

    def gather(t: torch.Tensor, group=None) -> list[torch.Tensor]:
        i = next(step)
        return [t] + [calls[i] for calls in recorded]

    rank0 = cls(dist_sync_fn=gather, distributed_available_fn=lambda: True)
    batched_update(rank0, shards[0], sizes=(len(shards[0]["pred_mean"]),))
    out = rank0.compute()
    assert next(step) == len(rank0._reductions)  # the states really went through gather
    return out


def test_simulated_ddp_matches_single_process() -> None:
    data = make_stimuli(8)
    ref = reference(data)
    # rank 1 gets no usable CI at all (only N = 1 stimuli) -> empty cat / zero Pearson states
    idx = [torch.arange(0, 3), torch.arange(3, 4), torch.arange(4, 100)]
    assert data["n_listeners"][3] == 1
    shards = []
    for ix in idx:
        lo, hi = (
            int(data["n_listeners"][: ix[0]].sum()),
            int(data["n_listeners"][: ix[-1] + 1].sum()),
        )
        shard = {k: v[ix] for k, v in data.items() if k != "nll"}
        shard["nll"] = data["nll"][lo:hi]
        shards.append(shard)
    # nll is per score; split by listener counts so every score lands on exactly one rank
    assert sum(len(s["nll"]) for s in shards) == len(data["nll"])
    for cls, key in [
        (MeanPearson, "mean_pearson"),
        (MeanSpearman, "mean_spearman"),
        (OutlierRatio, "outlier_ratio"),
        (CIPearson, "ci_pearson"),
        (CISpearman, "ci_spearman"),
        (CIRMSE, "ci_rmse"),
        (MeanNLL, "nll"),
        (ExcludedFromCI, "ci_excluded"),
    ]:
        got = _simulated_ddp(cls, shards).item()
        assert got == pytest.approx(ref[key], rel=2e-5, abs=2e-6), key


# --------------------------------------------------------------------------- real data
def test_sisec08_stimulus_stats_match_pandas() -> None:
    if not SISEC.is_file():
        pytest.skip(f"{SISEC} not present")
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(SISEC)
    assert {"Testname", "Listener", "Trial", "Condition", "Ratingscore"} <= set(df.columns)
    table = (
        df.groupby(["Trial", "Condition"], sort=True)["Ratingscore"]
        .agg(["mean", "std", "count"])
        .reset_index()
    )
    sem = table["std"] / np.sqrt(table["count"])
    with np.errstate(invalid="ignore"):
        lo, hi = scipy.stats.t.interval(0.95, table["count"] - 1, loc=table["mean"], scale=sem)
    # scipy gives NaN for scale 0 (every listener gave the same score); the half-width is 0
    expected_ci = np.where(sem.to_numpy() == 0, 0.0, (hi - lo) / 2)
    assert (sem == 0).any()
    # padded [B, Nmax] in the same stimulus order
    groups = df.groupby(["Trial", "Condition"], sort=True)["Ratingscore"]
    rows = [g.to_numpy(dtype=np.float64) for _, g in groups]
    nmax = max(len(r) for r in rows)
    scores = torch.zeros(len(rows), nmax, dtype=torch.float64)
    mask = torch.zeros(len(rows), nmax, dtype=torch.bool)
    for i, r in enumerate(rows):
        scores[i, : len(r)] = torch.from_numpy(r)
        mask[i, : len(r)] = True
    st = stimulus_stats(scores, mask)
    np.testing.assert_array_equal(st.n.numpy(), table["count"].to_numpy())
    np.testing.assert_allclose(st.mean.numpy(), table["mean"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(st.std.numpy(), table["std"].to_numpy(), rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(st.ci95.numpy(), expected_ci, rtol=1e-10, equal_nan=True)
    assert np.isfinite(st.ci95.numpy()).sum() > 10
