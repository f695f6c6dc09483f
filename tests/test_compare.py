"""gml compare: predicted A - B, simulated paired-t-test power and the N for 80 % power, from
known distributions (no model) and end to end through the CLI with a tiny trained listener."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from scipy import stats as sps
from torch.distributions import Normal

from gml.compare import (
    ALL_ITEMS,
    compare_items,
    first_reaching,
    format_overall,
    format_table,
    match_items,
    paired_power_curve,
)
from gml.errors import GMLError
from gml.heads import Logistic

from .conftest import write_pair

K = 4000  # panels: the binomial SD of a power estimate is at most 0.5 / sqrt(K) = 0.008


def binomial_tol(p: float, k: int = K, sds: float = 4.0) -> float:
    """Tolerance of a simulated share of ``k`` panels around ``p``: ``sds`` binomial SDs
    (plus a floor for p near 0 or 1, where the SD vanishes)."""
    return sds * math.sqrt(max(p * (1 - p), 0.01) / k)


def normal(mean: float, sd: float) -> Normal:
    return Normal(torch.tensor(float(mean)), torch.tensor(float(sd)))


def analytic_paired_power(mean_diff: float, sd_diff: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test for normal differences: noncentral t."""
    df, nc = n - 1, mean_diff / sd_diff * math.sqrt(n)
    crit = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


# ----------------------------------------------------------------------------- statistics


def test_power_curve_is_the_share_of_ttest_rel_rejections():
    rng = np.random.default_rng(3)
    a = rng.normal(60, 10, (300, 15))
    b = rng.normal(57, 10, (300, 15))
    curve = paired_power_curve(a - b)
    assert curve.shape == (14,)  # n = 2 ... 15
    for n in (2, 3, 8, 15):
        p = sps.ttest_rel(a[:, :n], b[:, :n], axis=1).pvalue
        assert curve[n - 2] == pytest.approx(np.mean(p < 0.05), abs=1e-12)


def test_constant_panels_have_a_defined_verdict():
    # all differences 0 (A and B both at the top of the slider): t = 0/0, never significant;
    # all equal but not 0 (A at 100, B at 0): t is infinite, always significant
    diffs = np.array([[0.0] * 6, [0.0] * 6, [100.0] * 6, [100.0] * 6])
    assert paired_power_curve(diffs).tolist() == [0.5] * 5


def test_equal_codecs_give_the_false_positive_rate():
    dists = [Logistic(50.0, 5.0), Logistic(35.0, 8.0)]
    c = compare_items(dists, list(dists), n_listeners=20, n_panels=K, seed=1)
    for power in [*c.items["power"], c.overall["power"]]:
        assert power == pytest.approx(0.05, abs=binomial_tol(0.05))
    # every panel size tests at 5 %: the curve stays flat around alpha
    assert c.curves.to_numpy().mean() == pytest.approx(0.05, abs=binomial_tol(0.05))
    assert c.items["mean_diff"].tolist() == [0.0, 0.0]
    assert c.items["n80"].isna().all() and c.overall["n80"] is None
    assert "> 100" in format_table(c)


def test_a_large_difference_is_found_by_a_few_listeners():
    c = compare_items([Logistic(75.0, 3.0)], [Logistic(40.0, 3.0)], 20, 2000, seed=0)
    row = c.items.iloc[0]
    assert row["mean_diff"] == pytest.approx(35.0)
    assert row["power"] == 1.0 and c.overall["power"] == 1.0
    assert 2 <= row["n80"] <= 4


def test_power_matches_the_noncentral_t_for_normal_scores():
    # far from 0 and 100, so clipping is negligible and A - B is normal with SD sqrt(200)
    mean_diff, sd_diff = 5.0, math.sqrt(200.0)
    c = compare_items([normal(60, 10)], [normal(55, 10)], 30, K, seed=2, max_listeners=120)
    row = c.items.iloc[0]
    assert row["sd_diff"] == pytest.approx(sd_diff)
    assert row["ci95"] == pytest.approx(sps.t.ppf(0.975, 29) * sd_diff / math.sqrt(30))
    assert (row["low"], row["high"]) == pytest.approx((5.0 - row["ci95"], 5.0 + row["ci95"]))
    for n in (3, 10, 30, 60, 120):
        expected = analytic_paired_power(mean_diff, sd_diff, n)
        assert c.curves.loc[n, "item0"] == pytest.approx(expected, abs=binomial_tol(expected))
    assert row["power"] == c.curves.loc[30, "item0"]
    # the analytic N for 80 %: the simulated one lies within a few listeners of it
    exact = next(n for n in range(2, 200) if analytic_paired_power(5.0, sd_diff, n) >= 0.8)
    assert abs(row["n80"] - exact) <= 5


def test_n80_is_the_first_n_on_the_grid_that_reaches_80_percent():
    c = compare_items(
        [normal(60, 10), normal(62, 12)], [normal(54, 10), normal(56, 12)], 20, 1000, seed=4
    )
    for name in [*c.items["name"], ALL_ITEMS]:
        curve = c.curves[name]
        reached = curve.index[curve >= 0.8]
        n80 = c.overall["n80"] if name == ALL_ITEMS else c.items.set_index("name").at[name, "n80"]
        assert n80 == reached[0]
        assert (curve.loc[: n80 - 1] < 0.8).all()
    assert first_reaching(np.array([0.1, 0.85, 0.7, 0.9]), np.array([2, 3, 4, 5])) == 3
    assert first_reaching(np.array([0.1, 0.2]), np.array([2, 3])) is None


def test_not_reached_within_max_listeners():
    c = compare_items([normal(60, 10)], [normal(58, 10)], 20, 500, seed=0, max_listeners=10)
    assert pd.isna(c.items.at[0, "n80"])
    assert c.curves.index.max() == 20  # simulated up to the planned N all the same
    assert "> 10" in format_table(c) and "not reached with up to 10 listeners" in format_overall(c)


def test_over_all_items():
    a = [normal(60, 10), normal(50, 12), normal(70, 8)]
    b = [normal(57, 10), normal(48, 12), normal(66, 8)]
    c = compare_items(a, b, 20, 2000, seed=5)
    o = c.overall
    assert o["name"] == ALL_ITEMS
    assert o["mean_diff"] == pytest.approx(c.items["mean_diff"].mean())
    # one listener's mean over 3 independent items: SD sqrt(sum of the variances) / 3
    assert o["sd_diff"] == pytest.approx(math.sqrt(2 * (100 + 144 + 64)) / 3)
    assert o["ci95"] == pytest.approx(sps.t.ppf(0.975, 19) * o["sd_diff"] / math.sqrt(20))
    expected = analytic_paired_power(o["mean_diff"], o["sd_diff"], 20)
    assert o["power"] == pytest.approx(expected, abs=binomial_tol(expected, 2000))
    # consistent small differences add up: the test over all items is the more powerful one
    assert o["power"] > c.items["power"].max()
    assert o["n80"] < c.items["n80"].min()
    table = c.table()
    assert list(table["name"]) == ["item0", "item1", "item2", ALL_ITEMS]


def test_scores_are_clipped_like_on_a_slider():
    # both codecs predicted near the top: most scores are 100 for both; no false alarms
    top = Logistic(110.0, 2.0)
    c = compare_items([top], [top], 20, 500, seed=0)
    assert c.items.at[0, "power"] <= 0.05
    assert c.items.at[0, "mean_a"] == 100.0  # clamped as gml predict reports it


def test_reproducible_with_a_seed():
    a, b = [normal(60, 10), Logistic(40.0, 6.0)], [normal(57, 10), Logistic(41.0, 6.0)]
    one = compare_items(a, b, 20, 500, seed=7)
    two = compare_items(a, b, 20, 500, seed=7)
    other = compare_items(a, b, 20, 500, seed=8)
    pd.testing.assert_frame_equal(one.items, two.items)
    pd.testing.assert_frame_equal(one.curves, two.curves)
    assert one.overall == two.overall
    assert not one.curves.equals(other.curves)


def test_invalid_settings():
    d = [normal(50, 10)]
    with pytest.raises(ValueError):
        compare_items(d, d, n_listeners=1)
    with pytest.raises(ValueError):
        compare_items(d, [*d, *d])
    with pytest.raises(ValueError):
        compare_items([], [])
    with pytest.raises(ValueError):
        compare_items([*d, *d], [*d, *d], names=["x", "x"])


# ----------------------------------------------------------------------------- folders


def make_codec_folders(root):
    """ref/, a/ and b/ with item0..item2 (B noisier than A); ref/item3 has no B file and
    a/orphan.wav no reference."""
    for k in range(3):
        rp, cp = write_pair(root / "work", seconds=1.0, seed=k)
        for d in ("ref", "a", "b"):
            (root / d).mkdir(exist_ok=True)
        shutil.copy(rp, root / "ref" / f"item{k}.wav")
        shutil.copy(cp, root / "a" / f"item{k}.wav")
        ref, rate = sf.read(rp)
        noisy = ref + np.random.default_rng(10 + k).normal(0, 0.15, ref.shape)
        sf.write(root / "b" / f"item{k}.wav", noisy.astype(np.float32), rate)
    shutil.copy(root / "ref" / "item0.wav", root / "ref" / "item3.wav")
    shutil.copy(root / "a" / "item0.wav", root / "a" / "item3.wav")
    shutil.copy(root / "a" / "item1.wav", root / "a" / "orphan.wav")
    return root / "ref", root / "a", root / "b"


def test_match_items(tmp_path):
    ref, a, b = make_codec_folders(tmp_path)
    m = match_items(ref, a, b)
    assert m.names == ["item0.wav", "item1.wav", "item2.wav"]
    assert [p.split("/")[-2] for p in m.b] == ["b"] * 3
    assert m.missing_in_a == [] and m.missing_in_b == ["item3.wav"]
    assert m.extra_in_a == ["orphan.wav"] and m.extra_in_b == []
    assert any("item3.wav" in n for n in m.notes) and any("orphan.wav" in n for n in m.notes)
    (tmp_path / "c").mkdir()
    with pytest.raises(GMLError, match="no audio files with the same name"):
        match_items(ref, a, tmp_path / "c")
    shutil.copy(b / "item1.wav", tmp_path / "c" / "item1.wav")
    (tmp_path / "d").mkdir()
    shutil.copy(a / "item2.wav", tmp_path / "d" / "item2.wav")
    with pytest.raises(GMLError, match="no reference has a file of the same name in both A and B"):
        match_items(ref, tmp_path / "d", tmp_path / "c")
    with pytest.raises(GMLError, match="A folder not found"):
        match_items(ref, tmp_path / "nowhere", b)


def test_cli_end_to_end(tiny_run, tmp_path, monkeypatch, capsys):
    from gml.cli import main

    ref, a, b = make_codec_folders(tmp_path / "audio")
    monkeypatch.chdir(tmp_path)  # the default report goes to ./compare-report/
    main(
        [
            "compare",
            "--ckpt", str(tiny_run / "best.ckpt"),
            "--reference-dir", str(ref),
            "--a", str(a),
            "--b", str(b),
            "--listeners", "10",
            "--panels", "200",
            "--max-listeners", "40",
            "--device", "cpu",
            "--no-progress",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert "item3.wav" in err and "orphan.wav" in err  # unmatched files are reported
    assert "N for 80 %" in out and "item2.wav" in out
    assert "all items (3): A - B =" in out
    folder = tmp_path / "compare-report"
    for name in ("report.md", "compare.png", "per_item.csv", "power_curves.csv"):
        assert (folder / name).is_file()
    report = (folder / "report.md").read_text()
    assert "](compare.png)" in report and "paired t-test" in report
    assert "no listener identity" in report and "item3.wav" in report
    table = pd.read_csv(folder / "per_item.csv")
    assert list(table["name"]) == ["item0.wav", "item1.wav", "item2.wav", ALL_ITEMS]
    assert table["power"].between(0, 1).all()
    np.testing.assert_allclose(table["mean_diff"], table["mean_a"] - table["mean_b"], atol=1e-3)
    curves = pd.read_csv(folder / "power_curves.csv", index_col="n")
    assert curves.index.tolist() == list(range(2, 41))


def test_compare_dirs_with_a_listener(tiny_run, tmp_path):
    import gml
    from gml.compare import compare_dirs

    ref, a, b = make_codec_folders(tmp_path)
    listener = gml.load(tiny_run / "best.ckpt", device="cpu")
    c = compare_dirs(listener, ref, a, b, 10, 100, seed=0, max_listeners=20, progress=False)
    assert list(c.items.columns[:4]) == ["name", "reference", "a", "b"]
    assert c.items["b"].tolist() == [str(b / f"item{k}.wav") for k in range(3)]
    assert c.meta["missing_in_b"] == ["item3.wav"] and c.meta["extra_in_a"] == ["orphan.wav"]
    assert c.meta["checkpoint"] == listener.checkpoint
    # the figures are those of the listener's own predictions
    pred = listener.predict(c.items.at[1, "reference"], c.items.at[1, "a"])
    assert c.items.at[1, "mean_a"] == pytest.approx(pred.mean)
    assert c.items.at[1, "std_a"] == pytest.approx(pred.std)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--b": "missing-folder"}, "missing-folder: B folder not found"),
        ({"--b": "empty"}, "no audio files with the same name in both"),
        ({"--listeners": "1"}, "--listeners 1; expected 2 or more"),
        ({"--out": "report.txt"}, "expected a Markdown (.md) file name"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, change, message):
    from gml.cli import main

    ref, a, b = make_codec_folders(tmp_path)
    (tmp_path / "empty").mkdir()
    args = {
        "--ckpt": str(tmp_path / "no.ckpt"),  # never loaded: inputs are checked first
        "--reference-dir": str(ref),
        "--a": str(a),
        "--b": str(b),
    }
    args |= {k: str(tmp_path / v) if k == "--b" else v for k, v in change.items()}
    with pytest.raises(SystemExit) as exc:
        main(["compare", *[x for kv in args.items() for x in kv]])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("gml: error:") and message in err
    assert len(err.strip().splitlines()) == 1


def _mixed_power_items(zeros: int, large: int, seed_shift: float = 0.0):
    """Items with no difference (power ~ alpha), one of intermediate power (A - B = 6 with
    SD(A-B) 14: about 0.4 with 20 listeners) and items with a large difference (power 1),
    in that order."""
    diffs = [0.0] * zeros + [6.0] + [25.0 + k for k in range(large)]
    a = [normal(50.0 + d, 10.0) for d in diffs]
    b = [normal(50.0 + seed_shift, 10.0) for _ in diffs]
    names = [f"item{k:02d}" for k in range(len(diffs))]
    return compare_items(a, b, n_listeners=20, n_panels=400, seed=0, max_listeners=20,
                         names=names), names[zeros]  # fmt: skip


def _panel_labels(fig) -> tuple[list[str], str]:
    ax = fig.axes[1]
    return [t.get_text() for t in ax.get_legend().get_texts()], ax.get_title()


def test_the_power_panel_shows_every_item_up_to_twelve(tmp_path):
    """10 items, one of intermediate power: every item has its curve (the panel showed 6,
    spread over |A - B|, and left out the intermediate one), and the title says so."""
    from gml.compare import comparison_figure, write_report

    c, middle = _mixed_power_items(zeros=3, large=6)
    assert 0.15 < float(c.items.set_index("name").loc[middle, "power"]) < 0.85
    labels, title = _panel_labels(comparison_figure(c))
    assert sorted(labels) == sorted([*c.items["name"], ALL_ITEMS]) and "all 10 items" in title
    write_report(c, tmp_path / "report.md")
    assert "The power panel shows all 10 items." in (tmp_path / "report.md").read_text()


def test_many_items_show_twelve_spread_over_their_power_and_say_which(tmp_path):
    from gml.compare import comparison_figure, curve_items, write_report

    c, middle = _mixed_power_items(zeros=10, large=19)
    shown = curve_items(c)
    assert len(shown) == 12 and middle in shown
    labels, title = _panel_labels(comparison_figure(c))
    assert sorted(labels) == sorted([*shown, ALL_ITEMS])
    assert "12 of 30 items, spread over their power at N = 20" in title
    write_report(c, tmp_path / "report.md")
    report = (tmp_path / "report.md").read_text()
    assert "The power panel shows 12 of 30 items, spread over their power at N = 20: " in report
    assert ", ".join(shown) in report


@pytest.mark.parametrize("command", ["compare", "predict"])
def test_help_prints_percent_signs_once(command, capsys):
    from gml.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "95 % CI" in out and "%%" not in out


def test_readme_says_where_the_compare_report_goes():
    from pathlib import Path

    from gml.cli.compare import DEFAULT_OUT

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"`{DEFAULT_OUT.as_posix()}`" in readme and "per_item.csv" in readme
