"""Evaluation plots: coverage statistics, PNG files and logging to experiment loggers."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gml.plots import (
    DEFAULT_LEVELS,
    NO_CDF_TEXT,
    calibration_figure,
    central_coverage,
    cis_figure,
    log_plots,
    means_figure,
    safe_name,
    save_figure,
    save_test_set_plots,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _texts(fig) -> list[str]:
    """Every text drawn on a figure (titles, labels, annotations)."""
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text)]


def _check_png(path: Path) -> tuple[int, int]:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    h, w = imread(path).shape[:2]
    assert 200 <= h <= 2000 and 200 <= w <= 2000
    return h, w


# ----------------------------------------------------------------------------- coverage


def test_central_coverage_matches_numpy():
    rng = np.random.default_rng(0)
    pit = rng.uniform(size=500)
    pit[::7] = np.nan  # ignored
    finite = pit[np.isfinite(pit)]
    levels = (0.05, 0.25, 0.5, 0.95, 1.0)
    got = central_coverage(pit, levels)
    assert list(got.columns) == ["level", "coverage", "n"]
    want = [np.mean(np.abs(finite - 0.5) <= lv / 2) for lv in levels]
    np.testing.assert_allclose(got["coverage"], want)
    assert (got["n"] == len(finite)).all()
    assert got["coverage"].iloc[-1] == 1.0
    # a PIT table, a Series and an array give the same answer
    table = pd.DataFrame({"test": "t", "score": 50.0, "pit": pit})
    pd.testing.assert_frame_equal(central_coverage(table, levels), got)
    pd.testing.assert_frame_equal(central_coverage(pd.Series(pit), levels), got)
    assert np.allclose(central_coverage(pit)["level"], DEFAULT_LEVELS)


def test_central_coverage_calibrated_and_too_narrow():
    rng = np.random.default_rng(1)
    n = 20_000
    levels = np.asarray(DEFAULT_LEVELS)
    sd = np.sqrt(levels * (1 - levels) / n)  # binomial SD of an observed coverage
    # calibrated: the PIT is uniform, so coverage is level up to sampling noise
    cov = central_coverage(rng.uniform(size=n))["coverage"].to_numpy()
    assert np.all(np.abs(cov - levels) <= 4 * sd)
    # too narrow: the model says N(50, 10), the scores come from N(50, 20)
    scores = rng.normal(50.0, 20.0, size=n)
    cov = central_coverage(sps.norm.cdf(scores, 50.0, 10.0))["coverage"].to_numpy()
    assert np.all(cov < levels - 4 * sd)
    # too wide covers more than nominal
    scores = rng.normal(50.0, 5.0, size=n)
    cov = central_coverage(sps.norm.cdf(scores, 50.0, 10.0))["coverage"].to_numpy()
    assert np.all(cov > levels + 4 * sd)


def test_central_coverage_without_pit_and_bad_levels():
    for empty in (None, np.full(5, np.nan), []):
        got = central_coverage(empty, (0.5, 0.9))
        assert got["coverage"].isna().all() and (got["n"] == 0).all()
    with pytest.raises(ValueError):
        central_coverage([0.5], (0.0,))
    with pytest.raises(ValueError):
        central_coverage([0.5], (1.5,))


# ----------------------------------------------------------------------------- files


def _predictions(rng: np.random.Generator, point: bool = False) -> pd.DataFrame:
    rows = []
    for test, n_stimuli in (("music", 12), ("speech set/v2", 8)):
        for i in range(n_stimuli):
            n = 1 if (test == "music" and i == 0) else 8  # one stimulus has no subjective CI
            subj = rng.uniform(10, 95)
            pred = subj + rng.normal(0, 8)
            std = np.nan if point or (test == "speech set/v2" and i < 3) else rng.uniform(8, 20)
            rows.append(
                {
                    "test": test,
                    "item": f"item{i // 4}",
                    "condition": f"c{i % 4}",
                    "n_listeners": n,
                    "subjective_mean": subj,
                    "subjective_ci95": np.nan if n < 2 else rng.uniform(4, 15),
                    "predicted_mean": pred,
                    "predicted_std": std,
                    "predicted_ci95": std * sps.t.ppf(0.975, n - 1) / np.sqrt(n)
                    if n >= 2
                    else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _pit_table(predictions: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for r in predictions.itertuples():
        for score in rng.normal(r.subjective_mean, 12, size=r.n_listeners):
            std = r.predicted_std
            pit = sps.norm.cdf(score, r.predicted_mean, std) if np.isfinite(std) else np.nan
            rows.append((r.test, r.item, r.condition, float(score), pit))
    return pd.DataFrame(rows, columns=["test", "item", "condition", "score", "pit"])


def test_save_test_set_plots_writes_pngs(tmp_path):
    rng = np.random.default_rng(2)
    preds = _predictions(rng)
    pit = _pit_table(preds, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots = save_test_set_plots(preds, pit, tmp_path)
    assert list(plots) == ["music", "speech set/v2"]
    plot_dir = tmp_path / "plots"
    expected = set()
    for test, stem in (("music", "music"), ("speech set/v2", "speech_set_v2")):
        assert set(plots[test]) == {"means", "cis", "calibration"}
        for kind, path in plots[test].items():
            assert path == plot_dir / f"{stem}-{kind}.png"
            _check_png(path)
            expected.add(path.name)
    # nothing else in the folder: no temporary files left behind
    assert {p.name for p in plot_dir.iterdir()} == expected
    # without a PIT table there is no calibration plot
    again = save_test_set_plots(preds, None, tmp_path / "other")
    assert all(set(d) == {"means", "cis"} for d in again.values())


def test_safe_name_and_collisions(tmp_path):
    assert safe_name("a b/c:d") == "a_b_c_d"
    assert safe_name("ok-1_x.y") == "ok-1_x.y"
    assert safe_name(".hidden") == "_hidden"
    assert safe_name("") == "_"
    preds = _predictions(np.random.default_rng(3))
    preds = preds[preds["test"] == "music"]
    twins = pd.concat([preds.assign(test="a b"), preds.assign(test="a/b")])
    plots = save_test_set_plots(twins, None, tmp_path)
    stems = {p.name for d in plots.values() for p in d.values()}
    assert stems == {"a_b-means.png", "a_b-cis.png", "a_b-2-means.png", "a_b-2-cis.png"}


def test_point_predictor_plots(tmp_path):
    rng = np.random.default_rng(4)
    preds = _predictions(rng, point=True)
    assert preds["predicted_ci95"].isna().all()
    pit = _pit_table(preds, rng)
    assert pit["pit"].isna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots = save_test_set_plots(preds, pit, tmp_path)
        for paths in plots.values():
            for path in paths.values():
                _check_png(path)
        fig = calibration_figure(pit, "music")
        assert any(NO_CDF_TEXT in t for t in _texts(fig))
        assert any("no predicted CI" in t for t in _texts(cis_figure(preds, "music")))
        assert any(t.startswith("Pearson r = 0.") for t in _texts(means_figure(preds, "music")))


def test_means_axes_cover_the_data():
    preds = _predictions(np.random.default_rng(5))
    ax = means_figure(preds, "t").axes[0]
    assert ax.get_xlim()[0] <= 0 and ax.get_xlim()[1] >= 100
    wide = preds.assign(predicted_mean=preds["predicted_mean"] + 60)
    ax = means_figure(wide, "t").axes[0]
    assert ax.get_ylim()[1] >= (wide["predicted_mean"] + wide["predicted_ci95"]).max()
    # an empty frame still draws (axes at the MUSHRA range, r not available)
    fig = means_figure(preds.iloc[:0], "empty")
    assert any("n/a" in t for t in _texts(fig))


def test_save_figure_is_atomic_on_failure(tmp_path, monkeypatch):
    fig = cis_figure(_predictions(np.random.default_rng(6)), "t")
    path = save_figure(fig, tmp_path / "sub" / "x.png")
    _check_png(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError):
        save_figure(fig, path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]


# ----------------------------------------------------------------------------- loggers


@pytest.fixture
def saved_plots(tmp_path) -> dict[str, dict[str, Path]]:
    rng = np.random.default_rng(7)
    preds = _predictions(rng)
    return save_test_set_plots(preds, _pit_table(preds, rng), tmp_path / "run")


def _tensorboard_available() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX"))


@pytest.mark.skipif(not _tensorboard_available(), reason="needs tensorboard or tensorboardX")
def test_log_plots_tensorboard(tmp_path, saved_plots):
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path / "tb", name="run")
    n_png = sum(len(d) for d in saved_plots.values())
    assert log_plots(logger, saved_plots, step=3) == n_png == 6
    logger.finalize("success")
    assert list(Path(logger.log_dir).glob("events.out.tfevents.*"))


def test_log_plots_tensorboard_calls(saved_plots):
    """The add_image calls, with a TensorBoardLogger whose writer is a recorder (runs without
    tensorboard installed)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    class Recorder:
        def __init__(self):
            self.calls = []
            self.flushed = False

        def add_image(self, tag, image, global_step=None, dataformats="CHW"):
            self.calls.append((tag, image, global_step, dataformats))

        def flush(self):
            self.flushed = True

    class FakeTB(TensorBoardLogger):
        def __init__(self):  # skips the tensorboard import check
            self.recorder = Recorder()

        @property
        def experiment(self):
            return self.recorder

    logger = FakeTB()
    assert log_plots(logger, saved_plots, step=5) == 6
    tags = [c[0] for c in logger.recorder.calls]
    assert "test/music/means" in tags and "test/speech set/v2/calibration" in tags
    for _, image, step, fmt in logger.recorder.calls:
        assert step == 5 and fmt == "HWC"
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] >= 200 and image.min() < 128 < image.max()
    assert logger.recorder.flushed
    # a list of loggers (trainer.loggers) logs to each
    assert log_plots([logger, None], saved_plots, prefix="val") == 6
    assert logger.recorder.calls[-1][0].startswith("val/")


def test_log_plots_wandb_and_others(tmp_path, saved_plots):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    class FakeWandb(WandbLogger):
        def __init__(self):  # no wandb run
            self.calls = []

        def log_image(self, key, images, step=None, **kwargs):
            self.calls.append((key, images, step))

    logger = FakeWandb()
    assert log_plots(logger, saved_plots) == 6
    key, images, step = logger.calls[0]
    assert key == "test/music/means" and step is None
    assert images == [str(saved_plots["music"]["means"])]
    assert log_plots(CSVLogger(tmp_path / "csv"), saved_plots) == 0
    assert log_plots(None, saved_plots) == 0
    assert log_plots(object(), saved_plots) == 0
