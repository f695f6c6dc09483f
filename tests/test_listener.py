"""The Python API: gml.load(...).predict / simulate, windows for long excerpts, the frontend
owned by the model, evaluation as library code (trainer.test and gml.evaluate)."""

from __future__ import annotations

import json
import math
import os

import lightning as L
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from scipy import stats as sps

import gml
from gml.checkpoint import build_datamodule, load_module, read_config
from gml.errors import GMLError
from gml.evaluation import TestReport
from gml.features import GammatoneFrontend
from gml.heads import Logistic
from gml.listener import PREDICTION_FIELDS, Listener, Panels, quantiles, simulate_panels

from .conftest import fit_tiny, write_pair


@pytest.fixture(scope="module")
def listener(tiny_run):
    return gml.load(tiny_run / "best.ckpt", device="cpu")


def test_predict_one_pair(listener, tmp_path):
    ref, cod = write_pair(tmp_path)
    pred = listener.predict(ref, cod, n_listeners=20)
    assert pred.reference == str(ref) and pred.coded == str(cod)
    assert 0 <= pred.mean <= 100 and pred.std > 0
    # the CI is the t-based half-width for N listeners from the predicted spread
    t = sps.t.ppf(0.975, 19)
    assert pred.ci95 == pytest.approx(t * pred.std / math.sqrt(20), rel=1e-6)
    q = [pred.q05, pred.q25, pred.q50, pred.q75, pred.q95]
    assert q == sorted(q) and all(0 <= v <= 100 for v in q)
    # quantiles are those of the head's distribution (a logistic for this checkpoint)
    dist = pred.distribution
    assert float(dist.cdf(torch.tensor(pred.q25))) == pytest.approx(0.25, abs=1e-4)
    assert (pred.reference_rate, pred.reference_channels, pred.windows) == (48000, 2, 1)
    assert pred.duration == pytest.approx(2.0)
    assert set(pred.to_dict()) == set(PREDICTION_FIELDS)


def test_arrays_equal_paths_and_record_rates(listener, tmp_path):
    ref, cod = write_pair(tmp_path, rate=44100, mono=True)
    from_paths = listener.predict(ref, cod)
    a, sr = sf.read(ref, dtype="float32")
    b, _ = sf.read(cod, dtype="float32")
    from_arrays = listener.predict((a, sr), (torch.from_numpy(b), sr))
    assert from_arrays.mean == pytest.approx(from_paths.mean, abs=1e-4)
    assert from_arrays.std == pytest.approx(from_paths.std, abs=1e-4)
    assert (from_paths.reference_rate, from_paths.coded_channels) == (44100, 1)
    assert from_arrays.reference == "<array>"


def test_many_pairs_batched_equal_one_at_a_time(listener, tiny_run, tmp_path):
    pairs = [write_pair(tmp_path, seconds=s, seed=k) for k, s in enumerate((1.0, 2.0, 1.0, 3.0))]
    batched = gml.load(tiny_run, device="cpu", batch_size=4)
    one = gml.load(tiny_run, device="cpu", batch_size=1)
    assert listener.batch_size == 8  # the CPU default
    frame = batched.predict([r for r, _ in pairs], [c for _, c in pairs], n_listeners=12)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    assert list(frame.columns) == list(PREDICTION_FIELDS)
    for row, (r, c) in zip(frame.itertuples(), pairs):
        single = one.predict(r, c, n_listeners=12)
        assert row.mean == pytest.approx(single.mean, abs=1e-4)
        assert row.ci95 == pytest.approx(single.ci95, abs=1e-4)


def test_long_excerpt_windows_and_mixture(tiny_run, tmp_path):
    lis = gml.load(tiny_run, device="cpu", window_seconds=2.0)  # a run folder works too
    ref, cod = write_pair(tmp_path, seconds=5.5)
    pred = lis.predict(ref, cod, per_window=True)
    w = pred.per_window
    # 2 s windows (97 frames) every 48 frames (0.96 s): starts 0, 0.96, 1.92, 2.88 s, and a
    # last window that ends with the excerpt
    assert pred.windows == len(w) == 5
    np.testing.assert_allclose(w["start"].iloc[:4], [0.0, 0.96, 1.92, 2.88], atol=1e-6)
    assert w["end"].iloc[-1] == pytest.approx(5.5, abs=0.02)
    assert (w["end"] - w["start"]).round(3).eq(2.0).all()
    # equal-weight mixture: mean of means, variance = mean variance + variance of means
    assert pred.mean == pytest.approx(w["mean"].mean(), abs=1e-4)
    var = (w["std"] ** 2).mean() + w["mean"].var(ddof=0)
    assert pred.std == pytest.approx(math.sqrt(var), rel=1e-4)


def test_simulated_panels_converge_to_the_analytic_figures():
    dist = Logistic(torch.tensor(55.0), torch.tensor(6.0))  # std 10.9, all mass inside 0-100
    n, k = 20, 4000
    scores = simulate_panels(dist, n, k, seed=1)
    again = simulate_panels(dist, n, k, seed=1)
    np.testing.assert_array_equal(scores, again)  # a fixed seed reproduces the panels
    panels = Panels(scores)
    sigma = float(dist.stddev)
    # mean of panel means: SD of the estimate is sigma / sqrt(n k)
    assert abs(panels.means.mean() - 55.0) < 4 * sigma / math.sqrt(n * k)
    # spread of panel means: sigma / sqrt(n), estimated from k panels (rel. SD ~ 1/sqrt(2k))
    assert panels.means.std(ddof=1) == pytest.approx(sigma / math.sqrt(n), rel=4 / math.sqrt(2 * k))
    # panel variances average to sigma^2 (unbiased); the analytic CI follows from it
    s2 = scores.var(axis=1, ddof=1)
    assert abs(s2.mean() - sigma**2) < 4 * s2.std(ddof=1) / math.sqrt(k)
    analytic_ci = sps.t.ppf(0.975, n - 1) * sigma / math.sqrt(n)
    assert math.sqrt(s2.mean()) * sps.t.ppf(0.975, n - 1) / math.sqrt(n) == pytest.approx(
        analytic_ci, rel=4 * s2.std(ddof=1) / math.sqrt(k) / sigma**2
    )
    # a t-based 95 % CI covers the true mean in about 95 % of panels
    covered = np.abs(panels.means - 55.0) <= panels.ci95
    assert abs(covered.mean() - 0.95) < 4 * math.sqrt(0.95 * 0.05 / k)


def test_simulated_scores_stay_on_the_scale():
    scores = simulate_panels(Logistic(torch.tensor(97.0), torch.tensor(5.0)), 10, 200, seed=0)
    assert scores.min() >= 0 and scores.max() <= 100 and (scores == 100).mean() > 0.2


def test_simulated_panel_intervals_stay_on_the_scale():
    """A panel near the bottom of the scale: its CI is cut at 0, like ci95_low/high."""
    panels = Panels(simulate_panels(Logistic(torch.tensor(1.0), torch.tensor(4.0)), 10, 200))
    table = panels.summary()
    assert table["low"].min() == 0.0 and table["high"].max() <= 100.0
    assert (table["mean"] - table["ci95"]).min() < 0  # (which a plain mean - ci95 leaves)
    inside = table["mean"] - table["ci95"] >= 0
    np.testing.assert_allclose(table.loc[inside, "low"], (table["mean"] - table["ci95"])[inside])


def test_listener_simulate(listener, tmp_path):
    ref, cod = write_pair(tmp_path)
    panels = listener.simulate(ref, cod, n_listeners=15, n_panels=50, seed=3)
    assert panels.scores.shape == (50, 15) and panels.summary().shape == (50, 5)
    assert np.isfinite(panels.ci95).all()


def test_quantiles_match_icdf():
    d = Logistic(torch.tensor(40.0), torch.tensor(5.0))
    q = quantiles(d, (0.05, 0.5, 0.95))
    expected = d.icdf(torch.tensor([0.05, 0.5, 0.95]))
    torch.testing.assert_close(q.float(), expected, atol=1e-3, rtol=0)


def test_clamped_mean_is_flagged(listener, tmp_path, monkeypatch):
    ref, cod = write_pair(tmp_path)
    head = listener.module.head
    monkeypatch.setattr(head, "score_offset", -80.0)  # push every prediction below 0
    pred = listener.predict(ref, cod)
    assert pred.clamped and pred.mean == 0.0 and pred.q05 == 0.0 and pred.p_outside > 0.5


@pytest.mark.parametrize("offset", [-80.0, -10.0, 0.0, 100.0, 40.0])
def test_the_ci_is_that_of_slider_scores_and_stays_on_the_scale(
    listener, tmp_path, monkeypatch, offset
):
    """``ci95_low``/``ci95_high`` come from scores as a slider records them (the predicted
    distribution clipped to 0-100): never outside the scale, centred on the clipped
    distribution's mean when not cut, and equal to mean ± ci95 away from the ends."""
    ref, cod = write_pair(tmp_path)
    monkeypatch.setattr(listener.module.head, "score_offset", offset)
    pred = listener.predict(ref, cod, n_listeners=20)
    assert 0.0 <= pred.ci95_low <= pred.ci95_high <= 100.0
    clipped = pred.distribution.sample((400_000,)).double().clamp(0, 100)
    assert pred.slider_mean == pytest.approx(float(clipped.mean()), abs=0.1)
    assert pred.slider_std == pytest.approx(float(clipped.std()), abs=0.1)
    half = sps.t.ppf(0.975, 19) * pred.slider_std / math.sqrt(20)
    assert pred.ci95_low == pytest.approx(max(0.0, pred.slider_mean - half), abs=1e-9)
    assert pred.ci95_high == pytest.approx(min(100.0, pred.slider_mean + half), abs=1e-9)
    if pred.p_outside < 1e-3:  # away from the ends: the model's own interval
        assert pred.ci95_low == pytest.approx(pred.mean - pred.ci95, abs=0.05)
        assert pred.ci95_high == pytest.approx(pred.mean + pred.ci95, abs=0.05)


@pytest.mark.parametrize(
    "heads",
    [("logistic",), ("censored_logistic",), ("beta",), ("mixture",), ("logistic", "gaussian")],
)
def test_slider_moments_are_those_of_each_members_clipped_mixture(heads):
    """Mean and SD of the slider scores equal a fine numerical integration of each member's
    window mixture clipped to 0-100 (for an ensemble: means averaged, variances averaged,
    as for the listener spread), for bounded and unbounded heads."""
    from torch.distributions import Categorical, MixtureSameFamily

    from gml.backbones import InSENet
    from gml.heads import get_head
    from gml.module import GMLModule
    from gml.scoring.statistics import FIGURES, mixture_figures, slider_interval

    torch.manual_seed(1)
    members = [GMLModule(backbone=InSENet("tiny"), head=get_head(h)) for h in heads]
    width = members[0].head.proj.out_features
    # windows far below 0, around 0 and inside: the clipping matters for some pairs
    params = [torch.randn(w, len(members), width) * 2.0 for w in (1, 3, 2)]
    flat = torch.cat(params)
    comps = [m.spread_distribution(flat[:, k]) for k, m in enumerate(members)]
    figures = dict(zip(FIGURES, mixture_figures(comps, [len(p) for p in params]).tolist()))
    x = (torch.arange(20000, dtype=torch.float64) + 0.5) * 100 / 20000
    for i, p in enumerate(params):
        means, variances = [], []
        for k, m in enumerate(members):
            comps = m.spread_distribution(p[:, k].double())
            mix = MixtureSameFamily(Categorical(logits=torch.zeros(len(p))), comps)
            above = 1 - mix.cdf(x)
            mean = float((above * 100 / 20000).sum())
            means.append(mean)
            variances.append(float((2 * x * above * 100 / 20000).sum()) - mean**2)
        slider_mean, slider_std = figures["slider_mean"][i], figures["slider_std"][i]
        assert slider_mean == pytest.approx(np.mean(means), abs=0.01)
        assert slider_std == pytest.approx(math.sqrt(np.mean(variances)), abs=0.02)
        low, high = slider_interval(slider_mean, slider_std, 20)
        assert 0.0 <= low <= high <= 100.0


# -- the frontend belongs to the model -------------------------------------------------------


def test_frontend_settings_travel_in_the_checkpoint(noise_manifest, tmp_path):
    run = fit_tiny(noise_manifest, tmp_path, "--model.frontend.init_args.rel_floor_db", "30")
    cfg = read_config(run / "best.ckpt")
    assert cfg["model"]["frontend"]["init_args"]["rel_floor_db"] == 30
    assert "frontend" not in cfg["data"]  # linked from the model, not configured twice
    lis = gml.load(run / "best.ckpt", device="cpu")
    assert lis.frontend.settings()["rel_floor_db"] == 30
    dm = build_datamodule(run / "best.ckpt", frontend=lis.frontend)
    assert dm.frontend is lis.frontend


def test_a_data_module_with_another_frontend_is_refused(tiny_run, noise_manifest):
    model = load_module(tiny_run / "best.ckpt")
    from gml.data.datamodule import GMLDataModule

    dm = GMLDataModule(
        str(noise_manifest), frontend=GammatoneFrontend(abs_floor_db=-60.0), progress=False
    )
    trainer = L.Trainer(logger=False, enable_progress_bar=False, max_epochs=1, accelerator="cpu")
    with pytest.raises(GMLError, match="abs_floor_db -60.0 vs -45.0"):
        trainer.fit(model, dm)


def test_old_checkpoint_config_with_data_frontend_is_upgraded(tiny_run, tmp_path):
    import yaml

    from gml.checkpoint import CONFIG_KEY

    ckpt = torch.load(tiny_run / "best.ckpt", map_location="cpu", weights_only=False)
    cfg = yaml.safe_load(ckpt[CONFIG_KEY])
    cfg["data"]["frontend"] = cfg["model"].pop("frontend")
    ckpt[CONFIG_KEY] = yaml.safe_dump(cfg)
    torch.save(ckpt, tmp_path / "old.ckpt")
    model = load_module(tmp_path / "old.ckpt")
    assert model.frontend.settings() == GammatoneFrontend().settings()


# -- evaluation as library code ---------------------------------------------------------------


def test_trainer_test_from_python_writes_the_reports(tiny_run, tmp_path):
    model = load_module(tiny_run / "best.ckpt")
    dm = build_datamodule(tiny_run / "best.ckpt", frontend=model.frontend, progress=False)
    trainer = L.Trainer(
        logger=False,
        enable_progress_bar=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
        callbacks=[TestReport()],  # the reports: gml test and gml.evaluate attach one too
    )
    trainer.test(model, datamodule=dm, verbose=False)
    out = tiny_run / "test-best"  # beside the checkpoint the module came from
    metrics = json.loads((out / "metrics.json").read_text())
    res = metrics["test_sets"]["noise-test"]
    assert {"mean_pearson", "nll", "constant_nll", "coverage_50", "coverage_90"} <= set(res)
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == res["n_stimuli"]
    pit = pd.read_csv(out / "pit.csv")
    assert len(pit) == preds["n_listeners"].sum() and pit["pit"].between(0, 1).all()
    assert (out / "plots" / "noise-test-means.png").is_file()
    # coverage in metrics.json is the share of scores inside the central interval
    assert res["coverage_50"] == pytest.approx(float((abs(pit["pit"] - 0.5) <= 0.25).mean()))


def test_gml_evaluate_on_another_manifest(tiny_run, split_manifest, tmp_path):
    ev = gml.evaluate(
        tiny_run / "best.ckpt", split_manifest, test_all=True, out_dir=tmp_path / "ev"
    )
    assert ev.out_dir == (tmp_path / "ev").resolve()
    assert (tmp_path / "ev" / "metrics.json").is_file()
    assert ev.results["noise-test"]["n_stimuli"] == 18
    assert len(ev.predictions) == 18


def test_gml_evaluate_prints_no_lightning_banner_or_by_design_warnings(tiny_run, tmp_path):
    """In Python, as on the command line: no accelerator lines, tips, Lightning-internal
    deprecations or the on_after_batch_transfer note; the caller's logging level of
    Lightning is the same after the call."""
    import subprocess
    import sys

    code = (
        "import logging, gml, lightning.pytorch\n"
        "level = logging.getLogger('lightning.pytorch').level\n"
        f"ev = gml.evaluate({str(tiny_run / 'best.ckpt')!r}, out_dir={str(tmp_path / 'ev')!r})\n"
        "assert logging.getLogger('lightning.pytorch').level == level\n"
        "print('tested', sorted(ev.results))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "tested ['noise-test']", r.stderr
    for noise in ("GPU available", "TPU available", "Tip", "LeafSpec", "on_after_batch_transfer"):
        assert noise not in r.stderr and noise not in r.stdout, r.stderr


def test_listener_module_does_not_import_the_cli():
    import subprocess
    import sys

    code = (
        "import sys, gml.listener, gml.module, gml.evaluation, gml.checkpoint; "
        "print(any(m == 'gml.cli' or m.startswith('gml.cli.') for m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_listener_accepts_a_module(tiny_run, tmp_path):
    lis = Listener(load_module(tiny_run / "best.ckpt"), device="cpu")
    ref, cod = write_pair(tmp_path)
    assert lis.checkpoint.endswith("best.ckpt")
    assert np.isfinite(lis.predict(ref, cod).mean)


def test_randomized_pit_is_uniform_for_a_censored_model():
    from gml.heads import CensoredLogistic
    from gml.module import randomized_pit

    dist = CensoredLogistic(torch.tensor([92.0]), torch.tensor([6.0]))  # ~1/5 of mass at 100
    torch.manual_seed(0)
    scores = dist.sample((20000,))
    assert (scores == 100).float().mean() > 0.15
    pit = randomized_pit(dist, scores).squeeze(1).numpy()
    assert sps.kstest(pit, "uniform").pvalue > 0.001
    plain = dist.cdf(scores).squeeze(1).numpy()  # without randomizing: a pile at 1
    assert sps.kstest(plain, "uniform").pvalue < 1e-6


def test_test_reports_clamp_and_flag_means_outside_the_scale(tiny_run, tmp_path):
    model = load_module(tiny_run / "best.ckpt")
    model.head.score_offset = -80.0  # every predicted mean below 0
    ev = gml.evaluate(model, out_dir=tmp_path / "ev")
    preds = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    assert preds["clamped"].all() and (preds["predicted_mean"] == 0).all()
    assert list(preds.columns[8:10]) == ["predicted_ci95", "clamped"]
    assert np.isfinite(ev.results["noise-test"]["nll"])


def test_lists_can_carry_each_pairs_distribution(listener, tmp_path):
    """``distributions=True``: each row's distribution is the one a single-pair call gives
    (simulated panels and comparisons use it instead of scoring every pair again)."""
    pairs = [write_pair(tmp_path, seconds=1.0 + k, seed=k) for k in range(3)]
    frame = listener.predict(
        [str(r) for r, _ in pairs], [str(c) for _, c in pairs], distributions=True
    )
    assert "distribution" not in PREDICTION_FIELDS and "distribution" in frame
    for dist, (r, c) in zip(frame["distribution"], pairs):
        one = listener.distribution(r, c)
        x = torch.linspace(0, 100, 11)
        assert torch.allclose(dist.cdf(x), one.cdf(x), atol=1e-5)


def test_each_file_is_decoded_once(tiny_run, tmp_path, monkeypatch):
    """The delay search and the features share one decoding of a short file; a file longer
    than a block is read again (for the features), block by block, with the same result."""
    import gml.features.stream as stream

    ref, cod = write_pair(tmp_path, seconds=1.5)
    opened = []

    class CountingSoundFile(sf.SoundFile):
        def __init__(self, name, *args, **kwargs):
            opened.append(os.path.basename(name))
            super().__init__(name, *args, **kwargs)

    monkeypatch.setattr(stream.sf, "SoundFile", CountingSoundFile)
    once = gml.load(tiny_run / "best.ckpt", device="cpu", prefetch=False)
    once.feature_memory = 0
    whole = once.predict(ref, cod)
    assert sorted(opened) == ["cod0.wav", "ref0.wav"]
    opened.clear()
    blocks = gml.load(tiny_run / "best.ckpt", device="cpu", prefetch=False, block_seconds=1.0)
    blocks.feature_memory = 0
    streamed = blocks.predict(ref, cod)
    # its header is looked at, then the delay's head and the features' blocks are read
    assert sorted(opened) == ["cod0.wav"] * 3 + ["ref0.wav"] * 3
    assert (streamed.mean, streamed.std) == pytest.approx((whole.mean, whole.std), abs=1e-5)


def test_a_file_rewritten_while_its_pair_is_scored_is_not_remembered_stale(
    tiny_run, tmp_path, monkeypatch
):
    """Remembered features are keyed on the file as it was when decoded: a coded file that
    changes during the delay search is analysed again on the next call."""
    import gml.features.delay as delay_module

    ref, cod = write_pair(tmp_path, seconds=1.5)
    new_content = sf.read(ref, dtype="float32")[0][: int(1.2 * 48000)] * 0.5
    listener = gml.load(tiny_run / "best.ckpt", device="cpu", prefetch=False)
    search = delay_module.estimate_delay

    def search_then_rewrite(*args, **kwargs):
        found = search(*args, **kwargs)
        sf.write(cod, new_content, 48000)  # another length, so another (mtime, size)
        return found

    monkeypatch.setattr(delay_module, "estimate_delay", search_then_rewrite)
    first = listener.predict(ref, cod)  # scores the content it decoded, before the rewrite
    monkeypatch.setattr(delay_module, "estimate_delay", search)
    again = listener.predict(ref, cod)
    fresh = gml.load(tiny_run / "best.ckpt", device="cpu", prefetch=False).predict(ref, cod)
    assert fresh.mean != pytest.approx(first.mean, abs=1e-3)  # the rewrite changes the score
    assert (again.mean, again.std) == pytest.approx((fresh.mean, fresh.std), abs=1e-5)
