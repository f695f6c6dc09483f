"""Roles (hidden reference, anchors), ``--where`` row selection, and the import of the real
listening tests of the development data (skipped without ../shared)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.stats
import soundfile as sf

from gml import cli
from gml.data.importers import ImporterError, assign_roles, import_table, parse_where
from gml.data.manifest import ROLES, Manifest, ManifestError, subset_masks
from tests.conftest import SHARED

REAL = SHARED / "data" / "real-tests"


def _audio(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).normal(0, 0.1, 4800).astype("float32"), 48000)
    return path


def _two_task_table(root):
    """A table with two tasks and a replicate trial, as published studies have them."""
    rows = []
    for page in ("p1", "p2"):
        _audio(root / "snd" / page / "ref.wav")
        for j, sound in enumerate(("ref", "anchor", "sysA", "sysB")):
            _audio(root / "snd" / page / f"{sound}.wav", seed=j + 1)
            for task in ("quality", "other"):
                for rep in ("False", "True"):
                    for k, who in enumerate("XYZ"):
                        rows.append(
                            {"task": task, "is_replicate": rep, "page": page, "sound": sound,
                             "who": who, "rating": 10 * j + k + (50 if task == "other" else 0)}
                        )  # fmt: skip
    path = root / "ratings.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


MAP = (
    "test=t,item=page,condition=sound,listener=who,score=rating,"
    "reference=snd/{page}/ref.wav,coded=snd/{page}/{sound}.wav"
)


def test_where_selects_rows_before_mapping(tmp_path):
    src = _two_task_table(tmp_path)
    result = import_table(src, MAP, out_dir=tmp_path, where=["task=quality", "is_replicate!=True"])
    r = result.manifest.ratings
    assert len(r) == 2 * 4 * 3 and set(r["task"]) == {"quality"}
    assert set(r["is_replicate"]) == {"False"} and r["score"].max() < 50
    assert "rows with task=quality and is_replicate!=True: 24 of 96" in result.notes[-1]
    # without --where the replicate trial is a second rating by the same listener: an error
    with pytest.raises(ImporterError, match="rated stimulus .* again"):
        import_table(src, MAP, out_dir=tmp_path)
    assert parse_where("a!=b") == [("a", False, "b")]


def test_where_errors_name_the_column_and_the_file(tmp_path, capsys):
    src = _two_task_table(tmp_path)
    with pytest.raises(ImporterError, match=r"has no column 'tsk' \(columns: task, "):
        import_table(src, MAP, out_dir=tmp_path, where=["tsk=quality"])
    with pytest.raises(ImporterError, match=r"no row has task=qualty \(of 96 rows\)"):
        import_table(src, MAP, out_dir=tmp_path, where=["task=qualty"])
    with pytest.raises(ImporterError, match="expected COLUMN=VALUE"):
        parse_where(["task"])


def test_role_option_marks_conditions_and_manifest_checks_roles(tmp_path, capsys):
    src = _two_task_table(tmp_path)
    out = tmp_path / "m.csv"
    cli.main(["import", "csv", str(src), "--map", MAP, "--out", str(out),
              "--where", "task=quality", "--where", "is_replicate=False",
              "--role", "ref=hidden_reference", "--role", "anch.*=low_anchor"])  # fmt: skip
    m = Manifest.read(out)
    st = m.stimuli()
    assert dict(zip(st["condition"], st["role"])) == {
        "ref": "hidden_reference", "anchor": "low_anchor", "sysA": "", "sysB": ""
    }  # fmt: skip
    masks = subset_masks(st["role"])
    assert masks["all"].all() and list(st.loc[masks["systems"], "condition"].unique()) == [
        "sysA",
        "sysB",
    ]
    # an unknown role is one line naming the option
    with pytest.raises(SystemExit):
        cli.main(["import", "csv", str(src), "--map", MAP, "--out", str(out),
                  "--where", "task=quality", "--where", "is_replicate=False",
                  "--role", "ref=reference"])  # fmt: skip
    assert "--role 'ref=reference': expected CONDITION=ROLE" in capsys.readouterr().err
    with pytest.raises(ImporterError, match="--role 'nope': matches no condition"):
        assign_roles(m.ratings, roles={"nope": "anchor"})
    # a manifest's role column is checked: known values, one role per stimulus
    bad = pd.read_csv(out, dtype=str, keep_default_na=False)
    bad.loc[0, "role"] = "anchr"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ManifestError, match=r"row 2, column 'role': 'anchr'; expected empty"):
        Manifest.read(tmp_path / "bad.csv")
    bad.loc[0, "role"] = ROLES[-1]
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ManifestError, match="has more than one role"):
        Manifest.read(tmp_path / "bad.csv")


def test_subsets_only_when_roles_are_known():
    assert subset_masks(None) == {}
    only = subset_masks(pd.Series(["", ""]))
    assert list(only) == ["all"]
    both = subset_masks(pd.Series(["hidden_reference", "", "anchor"]))
    assert both["systems"].tolist() == [False, True, False]


# -- the real listening tests ---------------------------------------------------------------

needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real-tests")


def _stats(frame: pd.DataFrame, key: list[str], col: str) -> pd.DataFrame:
    """Per-stimulus mean and t-based 95 % CI half-width, computed directly with scipy."""
    g = frame.groupby(key)[col]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.size()})
    out["ci95"] = scipy.stats.t.ppf(0.975, out["n"] - 1) * out["std"] / np.sqrt(out["n"])
    return out


@pytest.fixture(scope="module")
def real_manifests(tmp_path_factory):
    from pathlib import Path

    tools = Path(__file__).resolve().parents[1] / "tools"
    sys.path.insert(0, str(tools))
    try:
        import real_tests
    finally:
        sys.path.remove(str(tools))
    return real_tests.import_all(SHARED, tmp_path_factory.mktemp("real"))


@needs_real
def test_cvssp_import_matches_the_published_table(real_manifests):
    m = Manifest.read(real_manifests["cvssp"])
    st = m.stimuli().set_index(["item", "condition"])
    assert len(m.ratings) == 2880 and len(st) == 128
    assert m.ratings["listener"].nunique() == 24 and st["n_listeners"].between(20, 24).all()
    roles = st["role"].value_counts()
    assert roles["hidden_reference"] == roles["low_anchor"] == roles["anchor"] == 16
    assert roles[""] == 80
    raw = pd.read_csv(REAL / "cvssp-singing-voice-separation" / "data" / "ratings.csv")
    raw = raw[(raw["experiment"] == "quality") & (~raw["is_replicate"])]
    direct = _stats(raw, ["page", "sound"], "rating")
    direct.index.names = ["item", "condition"]
    joined = st.join(direct, rsuffix="_direct", how="inner")
    assert len(joined) == 128
    np.testing.assert_allclose(joined["mean"], joined["mean_direct"], rtol=1e-9)
    np.testing.assert_allclose(joined["ci95"], joined["ci95_direct"], rtol=1e-9)
    assert (joined["n_listeners"] == joined["n"]).all()


@needs_real
def test_barysenka_recipe_matches_the_matlab_array(real_manifests):
    m = Manifest.read(real_manifests["barysenka"])
    st = m.stimuli()
    assert len(m.ratings) == 588 and len(st) == 42 and (st["n_listeners"] == 14).all()
    assert st["item"].nunique() == 12 and (st["role"] == "hidden_reference").sum() == 6
    root = REAL / "barysenka-speech-enhancement" / "matlab"
    data = scipy.io.loadmat(root / "icpr_mushra_data.mat", variable_names=["data"])["data"]
    systems = ["Noisy", "SE+BVM", "BH+BLW", "MMSE-LSA", "MMSE-LSA+SE+BVM", "MMSE-LSA+BH+BLW",
               "Clean"]  # fmt: skip
    envs = ["pink-5", "pink-10", "factory-5", "factory-10", "babble-5", "babble-10"]
    env_of = m.ratings.groupby(["item", "condition"])["environment"].first()
    for _, row in st.iterrows():
        scores = data[
            systems.index(row["condition"]), envs.index(env_of[(row["item"], row["condition"])])
        ]
        s = scores.astype(float)
        assert row["mean"] == pytest.approx(s.mean())
        ci = scipy.stats.t.ppf(0.975, 13) * s.std(ddof=1) / np.sqrt(14)
        assert row["ci95"] == pytest.approx(ci, nan_ok=True)


@needs_real
def test_peer_figures_follow_the_published_scores_and_the_cv_folds(real_manifests):
    """tools/real_peers.py: the no-fit rows are the plain correlations of the published BSS
    Eval/PEASS scores with the subjective means; the fitted rows predict every stimulus once,
    each from a mapping fitted on the other folds' items (gml cv's folds)."""
    from pathlib import Path

    tools = Path(__file__).resolve().parents[1] / "tools"
    sys.path.insert(0, str(tools))
    try:
        import real_peers
    finally:
        sys.path.remove(str(tools))
    path = REAL / "cvssp-singing-voice-separation" / "data" / "bss_eval_and_peass_clean.csv"
    peers = real_peers.bss_peass(path, "cvssp-quality")
    out = real_peers.score(real_manifests["cvssp"], peers)
    assert set(out["subset"]) == {"systems"}  # BSS Eval scores the systems only
    assert (out["stimuli"] == 80).all()
    stim = Manifest.read(real_manifests["cvssp"], check_audio=False).stimuli()
    both = stim.merge(peers, on=["test", "item", "condition"])
    aps = out[(out["peer"] == "APS") & (out["fit"] == "no fit")].iloc[0]
    assert aps["pearson"] == pytest.approx(scipy.stats.pearsonr(both["APS"], both["mean"])[0])
    assert aps["spearman"] == pytest.approx(scipy.stats.spearmanr(both["APS"], both["mean"])[0])
    fitted = out[(out["peer"] == "APS") & (out["fit"] != "no fit")].iloc[0]
    assert 0.5 < fitted["pearson"] < 1 and 0 <= fitted["outlier_ratio"] <= 1
    # the mapping is monotonic: fitted on increasing data it keeps the order
    x = np.linspace(0, 10, 20)
    f = real_peers.fit_mapping(x, 5 + 8 * x + np.sin(x))
    assert np.all(np.diff(f(np.linspace(0, 10, 50))) > 0)
