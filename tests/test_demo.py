"""Tests for the synthetic demo listening test (gml.data.demo)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from gml.data import demo
from gml.data.demo import degradations, install
from gml.data.demo import panel as demo_panel

SMALL = dict(
    seconds=1.0, music_items=2, speech_items=2, music_listeners=3, speech_listeners=2, seed=0
)
MEDIUM = dict(
    seconds=1.0, music_items=8, speech_items=4, music_listeners=8, speech_listeners=5, seed=0
)
REQUIRED = ["test", "item", "condition", "listener", "score", "reference", "coded"]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return demo.make_demo(tmp_path_factory.mktemp("small") / "demo", progress=False, **SMALL)


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> pd.DataFrame:
    m = demo.make_demo(tmp_path_factory.mktemp("medium") / "demo", progress=False, **MEDIUM)
    return pd.read_csv(m)


def _stimulus_means(df: pd.DataFrame) -> pd.DataFrame:
    return (
        df.groupby(["test", "item", "condition"])["score"]
        .agg(["mean", "var", "count"])
        .reset_index()
    )


def test_manifest_schema_and_scores(small):
    df = pd.read_csv(small)
    assert list(df.columns[:7]) == REQUIRED
    assert (df["synthetic"] == 1).all()
    assert pd.api.types.is_integer_dtype(df["score"])
    assert df["score"].between(0, 100).all()
    assert set(df["condition"]) == set(demo.CONDITIONS)
    for name in ("lp35", "lp70"):
        assert name in demo.CONDITIONS
    assert sum(c.startswith(d) for c in demo.CONDITIONS for d in demo.DEGRADATIONS) >= 8
    ref = df[df["condition"] == "reference"]
    assert (ref["coded"] == ref["reference"]).all()
    assert not (df["reference"].str.contains("\\\\") | df["coded"].str.startswith("/")).any()
    # the hidden reference and the anchors are marked, so evaluations report the systems apart
    roles = df.drop_duplicates("condition").set_index("condition")["role"].fillna("")
    assert roles.to_dict() == {c: demo.CONDITION_ROLES.get(c, "") for c in demo.CONDITIONS}
    assert (roles == "").sum() == len(demo.CONDITIONS) - 3


def test_two_tests_with_their_panels(small):
    df = pd.read_csv(small)
    assert set(df["test"]) == {"demo-music", "demo-speech"}
    sizes = {"demo-music": SMALL["music_listeners"], "demo-speech": SMALL["speech_listeners"]}
    items = {"demo-music": SMALL["music_items"], "demo-speech": SMALL["speech_items"]}
    panels = {}
    for test, g in df.groupby("test"):
        panels[test] = set(g["listener"])
        assert len(panels[test]) == sizes[test]
        assert g["item"].nunique() == items[test]
        per_stim = g.groupby(["item", "condition"])["listener"]
        assert (per_stim.nunique() == sizes[test]).all()
        assert (per_stim.size() == sizes[test]).all()
        assert g.groupby("item")["condition"].nunique().eq(len(demo.CONDITIONS)).all()
    assert not panels["demo-music"] & panels["demo-speech"]


def test_audio_files(small):
    root = small.parent
    df = pd.read_csv(small)
    paths = set(df["reference"]) | set(df["coded"])
    assert len(paths) == (SMALL["music_items"] + SMALL["speech_items"]) * len(demo.CONDITIONS)
    n = int(round(SMALL["seconds"] * 48000))
    for rel in paths:
        info = sf.info(root / rel)
        assert info.samplerate == 48000
        assert info.channels == 2
        assert info.frames == n
        assert info.subtype == "PCM_16"
    x, _ = sf.read(root / df["reference"].iloc[0])
    rms = np.sqrt(np.mean(x**2))
    assert 0.05 < rms < 0.2 and np.abs(x).max() < 1.0


def test_sidecar_says_synthetic(small):
    meta = json.loads((small.parent / "demo.json").read_text())
    assert meta["synthetic"] is True
    assert "synthetic" in meta["description"].lower()
    assert meta["params"]["seed"] == SMALL["seed"]
    assert "synthetic" in demo.__doc__.lower()


def test_sidecar_records_the_panel(small):
    meta = json.loads((small.parent / "demo.json").read_text())
    assert meta["panel"]["settings"] == asdict(demo_panel.DEFAULT_SETTINGS)
    assert "simulated" in meta["panel"]["model"]


def test_cached_demo_of_an_older_version_is_regenerated(tmp_path):
    assert demo.DEMO_VERSION >= 2  # v2: panel fitted to real ratings (gml.data.demo.panel)
    kw = {**SMALL, "music_items": 1, "speech_items": 1}
    root = tmp_path / "demo"
    m = demo.make_demo(root, progress=False, **kw)
    meta = json.loads((root / "demo.json").read_text())
    meta["params"]["demo_version"] = 1  # what the v1 generator recorded
    (root / "demo.json").write_text(json.dumps(meta))
    old = m.stat().st_ino
    assert demo.make_demo(root, progress=False, **kw) == m
    assert (
        json.loads((root / "demo.json").read_text())["params"]["demo_version"] == demo.DEMO_VERSION
    )
    assert m.stat().st_ino != old
    assert demo.demo_root(tmp_path).name.startswith(f"demo-v{demo.DEMO_VERSION}-")


def test_deterministic(tmp_path, small):
    again = demo.make_demo(tmp_path / "again", progress=False, **SMALL)
    assert again.read_bytes() == small.read_bytes()
    for rel in sorted(set(pd.read_csv(small)["coded"])):
        assert (again.parent / rel).read_bytes() == (small.parent / rel).read_bytes(), rel
    other = demo.make_demo(tmp_path / "other", progress=False, **{**SMALL, "seed": 1})
    assert other.read_bytes() != small.read_bytes()
    rel = pd.read_csv(small)["reference"].iloc[0]
    assert (other.parent / rel).read_bytes() != (small.parent / rel).read_bytes()


def test_idempotent(small):
    before = {p: p.stat().st_mtime_ns for p in small.parent.rglob("*")}
    assert demo.make_demo(small.parent, progress=False, **SMALL) == small
    after = {p: p.stat().st_mtime_ns for p in small.parent.rglob("*")}
    assert before == after


def test_progress_output(tmp_path, capsys):
    kw = {**SMALL, "music_items": 1, "speech_items": 1}
    demo.make_demo(tmp_path / "quiet", progress=False, **kw)
    assert capsys.readouterr().err == ""
    demo.make_demo(tmp_path / "loud", progress=True, **kw)
    err = capsys.readouterr().err
    assert "synthetic" in err and f"{2 * len(demo.CONDITIONS)}/{2 * len(demo.CONDITIONS)}" in err


def test_demo_root_and_manifest_use_cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GML_CACHE_DIR", str(tmp_path / "cache"))
    root = demo.demo_root()
    assert root.parent == tmp_path / "cache"
    assert root.name.startswith(f"demo-v{demo.DEMO_VERSION}-")
    assert demo.demo_root(music_items=3) != root
    monkeypatch.delenv("GML_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo.demo_root().parent == tmp_path / "xdg" / "gml"
    assert demo.demo_root(tmp_path / "c").parent == tmp_path / "c"
    kw = {**SMALL, "music_items": 1, "speech_items": 1}
    m = demo.demo_manifest(tmp_path / "c", progress=False, **kw)
    assert m == demo.demo_root(tmp_path / "c", **kw) / "manifest.csv" and m.is_file()
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [m.parent.name]


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    real = install._generate

    def boom(out, p, progress):
        (out / "audio").mkdir()
        (out / "audio" / "half.wav").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(install, "_generate", boom)
    with pytest.raises(KeyboardInterrupt):
        demo.make_demo(tmp_path / "demo", progress=False, **SMALL)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(install, "_generate", real)


def test_concurrent_winner_is_kept(tmp_path, monkeypatch):
    kw = {**SMALL, "music_items": 1, "speech_items": 1}
    root = tmp_path / "demo"
    real = install._generate

    def racing(out, p, progress):
        real(out, p, progress)
        monkeypatch.setattr(install, "_generate", real)
        demo.make_demo(root, progress=False, **kw)  # "another process" finishes first
        racing.stamp = (root / "manifest.csv").stat().st_ino

    monkeypatch.setattr(install, "_generate", racing)
    m = demo.make_demo(root, progress=False, **kw)
    assert m.stat().st_ino == racing.stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_replaces_other_params_but_not_foreign_folders(tmp_path):
    kw = {**SMALL, "music_items": 1, "speech_items": 1}
    root = tmp_path / "demo"
    demo.make_demo(root, progress=False, **kw)
    demo.make_demo(root, progress=False, **{**kw, "seed": 3})
    assert json.loads((root / "demo.json").read_text())["params"]["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError):
        demo.make_demo(foreign, progress=False, **kw)
    assert (foreign / "keep.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert demo.make_demo(empty, progress=False, **kw).is_file()


def test_condition_ordering(medium):
    means = medium.groupby(["test", "condition"])["score"].mean()
    for test in ("demo-music", "demo-speech"):
        m = means[test]
        for cond in demo.CONDITIONS[1:]:
            assert m["reference"] > m[cond], (test, cond)
        assert m["lp35"] < m["lp70"], test
    overall = medium.groupby("condition")["score"].mean()
    for d in demo.DEGRADATIONS:
        assert overall[f"{d}_1"] > overall[f"{d}_3"], d


def test_panel_behaves_like_a_real_one(medium):
    """Hidden reference almost always exactly 100; listeners have their own offsets."""
    ref = medium[medium["condition"] == "reference"].set_index(["test", "item", "listener"])
    assert (ref["score"] == 100).mean() > 0.9
    others = medium[medium["condition"] != "reference"]
    top = others.groupby(["test", "item", "listener"])["score"].max().reindex(ref.index)
    assert (top[ref["score"] < 100] == 100).all()  # missed only next to a transparent one
    systems = others[others["condition"].map(demo_panel.demo_kind) == "system"]
    resid = systems["score"] - systems.groupby(["test", "item", "condition"])["score"].transform(
        "mean"
    )
    assert resid.groupby(systems["listener"]).mean().std() > 2.0


def test_audio_matters(medium):
    """Within a degradation condition, stimulus means differ by more than listener noise."""
    st = _stimulus_means(medium)
    music = st[st["test"] == "demo-music"]
    passed = []
    for cond in demo.CONDITIONS[3:]:
        g = music[music["condition"] == cond]
        between = g["mean"].std()
        noise = np.sqrt((g["var"] / g["count"]).mean())  # s.e. of a mean from listener noise
        passed.append(between > 3.0 and between > 2.0 * noise)
    assert sum(passed) >= len(passed) // 2, passed


def test_objective_measure():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24000, 2)) * 0.1
    assert demo.objective_distortion(x, x) == 0.0
    assert demo.distortion_to_quality(0.0) == 100.0
    small_noise = demo.objective_distortion(x, x + 0.001 * rng.standard_normal(x.shape))
    lowpassed = demo.objective_distortion(x, degradations.lowpass(x, 3500))
    assert 0 < small_noise < lowpassed
    q = demo.distortion_to_quality(np.array([0.5, 2.0, 8.0]))
    assert np.all(np.diff(q) < 0)


def test_a_killed_writers_temporary_folder_is_removed_by_the_next_run(tmp_path):
    import subprocess
    import sys

    from gml.data.demo.install import _remove_stale_temps

    root = tmp_path / "demo"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".demo.tmp-{dead}-abc"
    live = tmp_path / f".demo.tmp-{os.getpid()}-def"
    for d in (stale, live):
        (d / "wav").mkdir(parents=True)
    _remove_stale_temps(root)
    assert not stale.exists() and live.exists()  # a running writer's folder stays
