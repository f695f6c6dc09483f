"""Post-hoc spread calibration: the factor, the calibrated checkpoint, the CLI."""

from __future__ import annotations

import pytest
import torch

import gml
from gml.calibration import CALIBRATION_KEY, calibrate
from gml.cli import main
from gml.errors import GMLError
from gml.heads import SpreadScaled

from .conftest import write_pair


def test_spread_scaled_equals_a_wider_normal():
    base = torch.distributions.Normal(torch.tensor([30.0, 60.0]), torch.tensor([5.0, 9.0]))
    scaled = SpreadScaled(base, 1.7)
    exact = torch.distributions.Normal(base.mean, base.stddev * 1.7)
    x = torch.tensor([25.0, 80.0])
    torch.testing.assert_close(scaled.log_prob(x), exact.log_prob(x))
    torch.testing.assert_close(scaled.cdf(x), exact.cdf(x))
    torch.testing.assert_close(scaled.stddev, exact.stddev)
    torch.manual_seed(0)
    s = scaled.sample((20000,))
    torch.testing.assert_close(s.std(0), exact.stddev, rtol=0.03, atol=0)


@pytest.fixture(scope="module")
def calibrated(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "cal.ckpt"
    return calibrate(tiny_run / "best.ckpt", "nll", out)


def test_each_factor_optimises_its_own_criterion(calibrated):
    _, fit = calibrated
    assert fit["nll"] > 0 and fit["ci"] > 0 and fit["factor"] == fit["nll"]
    nll, rmse = fit["val_nll"], fit["val_ci_rmse"]
    assert nll["nll"] <= nll["none"] + 1e-6 and nll["nll"] <= nll["ci"] + 1e-6
    assert rmse["ci"] <= rmse["none"] + 1e-6 and rmse["ci"] <= rmse["nll"] + 1e-6


def test_calibrated_checkpoint_scales_the_spread(calibrated, tiny_run, tmp_path):
    path, fit = calibrated
    raw = torch.load(path, map_location="cpu", weights_only=False)
    assert raw[CALIBRATION_KEY]["factor"] == fit["factor"]
    ref, cod = write_pair(tmp_path)
    before = gml.load(tiny_run, device="cpu").predict(ref, cod)
    after = gml.load(path, device="cpu").predict(ref, cod)
    assert after.mean == pytest.approx(before.mean, abs=1e-4)
    assert after.std == pytest.approx(before.std * fit["factor"], rel=1e-4)
    with pytest.raises(GMLError, match="already calibrated"):
        calibrate(path)


def test_calibrate_cli(tiny_run, tmp_path, capsys):
    main(["calibrate", "--ckpt", str(tiny_run), "--method", "ci", "--out",
          str(tmp_path / "c.ckpt"), "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert "by NLL" in out and "by CI error" in out and "<- stored" in out
    assert (tmp_path / "c.ckpt").is_file()


def test_calibrate_cli_stores_the_ci_factor_by_default(tiny_run, tmp_path, capsys):
    out = tmp_path / "c.ckpt"
    main(["calibrate", "--ckpt", str(tiny_run), "--out", str(out), "--no-progress"])
    stored = [line for line in capsys.readouterr().out.splitlines() if "<- stored" in line]
    assert len(stored) == 1 and stored[0].startswith("by CI error")
    fit = torch.load(out, map_location="cpu", weights_only=False)[CALIBRATION_KEY]
    assert fit["method"] == "ci" and fit["factor"] == pytest.approx(fit["ci"])


def test_calibrate_names_its_output_and_what_the_factor_rests_on(tiny_run, tmp_path, capsys):
    import shutil

    from gml.calibration import MIN_ITEMS
    from gml.checkpoint import build_datamodule
    from gml.cli import calibrate as calibrate_cli

    assert calibrate_cli.MIN_ITEMS == MIN_ITEMS
    with pytest.raises(SystemExit):
        main(["calibrate", "--help"])
    assert "RUN/best-calibrated.ckpt" in " ".join(capsys.readouterr().out.split())
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    dm = build_datamodule(run / "best.ckpt", progress=False)
    dm.setup()
    val = dm.stimuli[dm.stimuli["partition"] == "val"]
    items = len(val[["test", "item"]].drop_duplicates())
    assert 0 < items < MIN_ITEMS  # the tiny run validates on too few items to trust
    main(["calibrate", "--ckpt", str(run), "--no-progress"])
    out, err = capsys.readouterr()
    assert "gml: warning: " in err and f"rests on {items} validation item" in err
    assert f"fewer than {MIN_ITEMS}: too few to trust" in err
    assert f"validation: {items} item{'s' * (items != 1)}, {len(val)} stimuli" in out
    assert f"gml: wrote {run / 'best-calibrated.ckpt'}" in out
