"""Manifest validation and the data module: folds, splits, batches, padding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gml.data.datamodule import GMLDataModule, assign_folds, collate
from gml.data.manifest import Manifest, ManifestError
from gml.features.pair import pad_frames

from .conftest import SHARED


def _write(tmp_path, df, name="m.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def _good_frame(noise_manifest):
    return pd.read_csv(noise_manifest, dtype=str, keep_default_na=False)


def test_manifest_reads_and_resolves(noise_manifest):
    m = Manifest.read(noise_manifest)
    st = m.stimuli()
    assert len(st) == 6 * 3 and (st["n_listeners"] == 5).all()
    assert all(p.startswith(str(noise_manifest.parent)) for p in m.audio_files())
    assert "snr_db" in m.ratings.columns


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d.drop(columns=["score"]), r"missing column\(s\) score"),
        (
            lambda d: d.assign(score=d["score"].where(d.index != 3, "abc")),
            r"row 5, column 'score': 'abc' is not a number",
        ),
        (
            lambda d: d.assign(score=d["score"].where(d.index != 0, "101")),
            r"row 2, column 'score': 101 is outside 0-100",
        ),
        (
            lambda d: d.assign(coded=d["coded"].where(d.index != 7, "wav/missing.wav")),
            r"row \d+, column 'coded': audio file not found: .*missing.wav",
        ),
        (
            lambda d: d.assign(listener=d["listener"].where(d.index != 1, "")),
            r"row 3, column 'listener': empty value",
        ),
        (
            lambda d: d.assign(split="train").assign(
                split=lambda x: x["split"].where(x.index != 2, "dev")
            ),
            r"row 4, column 'split': 'dev'",
        ),
        (lambda d: pd.concat([d, d.iloc[[0]]]), r"rated stimulus .* more than once"),
    ],
)
def test_manifest_errors_name_row_and_column(tmp_path, noise_manifest, mutate, pattern):
    df = mutate(_good_frame(noise_manifest))
    # keep relative audio paths valid by writing beside the original
    p = _write(noise_manifest.parent, df, f"bad-{tmp_path.name}.csv")
    with pytest.raises(ManifestError, match=pattern) as err:
        Manifest.read(p)
    assert str(p) in str(err.value)


def test_statistics_without_audio(tmp_path, noise_manifest):
    df = _good_frame(noise_manifest).assign(coded="nowhere.wav")
    m = Manifest.read(_write(tmp_path, df), check_audio=False)
    assert len(m.stimuli()) > 0


def test_sisec08_ratings_statistics():
    path = SHARED / "data" / "sisec08-ratings" / "SiSEC08_anonymized.csv"
    if not path.is_file():
        pytest.skip("../shared/data is not present")
    raw = pd.read_csv(path)
    df = pd.DataFrame(
        {
            "test": raw["Testname"],
            "item": raw["Trial"],
            "condition": raw["Condition"],
            "listener": raw["Listener"],
            "score": raw["Ratingscore"],
            "reference": "ref.wav",
            "coded": raw["Trial"] + "_" + raw["Condition"] + ".wav",
        }
    )
    st = Manifest.from_frame(df, check_audio=False).stimuli()
    assert len(st) == 14 * 11 and st["n_listeners"].max() == 14
    from scipy import stats as sps

    g = raw.groupby(["Trial", "Condition"])["Ratingscore"]
    row = st.iloc[0]
    scores = g.get_group((row["item"], row["condition"])).to_numpy()
    np.testing.assert_allclose(row["mean"], scores.mean())
    lo, hi = sps.t.interval(0.95, len(scores) - 1, loc=scores.mean(), scale=sps.sem(scores))
    np.testing.assert_allclose(row["ci95"], (hi - lo) / 2, rtol=1e-9)


def test_folds_group_items():
    keys = pd.DataFrame({"test": ["a"] * 13 + ["b"] * 7, "item": [f"i{k}" for k in range(20)]})
    folds = assign_folds(keys, 5, seed=3)
    assert set(folds) == set(range(5))
    # each (test, item) appears once, so no item can be in two folds; each test spans folds
    assert len(set(folds[:13])) == 5 and len(set(folds[13:])) == 5
    np.testing.assert_array_equal(folds, assign_folds(keys, 5, seed=3))


def _dm(manifest, tmp_path, **kw):
    dm = GMLDataModule(str(manifest), cache_dir=str(tmp_path / "cache"), progress=False, **kw)
    dm.setup("fit")
    return dm


def test_partitions_never_share_an_item(tiny_demo, tmp_path):
    seen = {}
    for fold in range(5):
        dm = _dm(tiny_demo, tmp_path, fold=fold)
        st = dm.stimuli
        by_item = st.groupby(["test", "item"])["partition"].nunique()
        assert (by_item == 1).all()  # an item's stimuli all share one partition
        for key in (
            st.loc[st["partition"] == "test", ["test", "item"]]
            .drop_duplicates()
            .itertuples(index=False)
        ):
            assert key not in seen, f"{key} held out by folds {seen[key]} and {fold}"
            seen[key] = fold
        assert set(st["partition"]) == {"train", "val", "test"}
        assert dm.test_sets == ["demo-music", "demo-speech"]
    assert len(seen) == 10  # every item is held out exactly once over the 5 folds


def test_split_column_decides(split_manifest, tmp_path):
    dm = _dm(split_manifest, tmp_path)
    st = dm.stimuli
    assert (st["partition"] == st["split"]).all()


def test_batches(noise_manifest, tmp_path):
    dm = _dm(noise_manifest, tmp_path, batch_size=4, eval_batch_size=3)
    train = next(iter(dm.train_dataloader()))
    assert train["features"].shape[:4] == (4, 4, 2, 32) and train["target"].shape == (4,)
    n_train_ratings = sum(
        len(dm._stimuli.scores[i]) for i in np.flatnonzero(dm.partition == "train")
    )
    assert len(dm.train_dataloader().dataset) == n_train_ratings
    (test_loader,) = dm.test_dataloader()
    b = next(iter(test_loader))
    assert b["scores"].shape == (3, 5) and b["mask"].all()
    torch.testing.assert_close(b["target"], b["scores"].mean(1))
    dm.train_target = "mean"
    assert len(dm.train_dataloader().dataset) == int((dm.partition == "train").sum())


def test_collate_pads_both_sides_and_panels():
    a = {
        "features": torch.ones(4, 2, 32, 3),
        "scores": torch.tensor([1.0, 2.0]),
        "target": 1.5,
        "index": 0,
        "subj_mean": 1.5,
        "subj_ci": 6.35,
        "n_listeners": 2,
    }
    b = {
        "features": torch.ones(4, 2, 32, 6),
        "scores": torch.tensor([3.0, 4.0, 5.0]),
        "target": 4.0,
        "index": 1,
        "subj_mean": 4.0,
        "subj_ci": 2.48,
        "n_listeners": 3,
    }
    out = collate([a, b])
    assert out["features"].shape == (2, 4, 2, 32, 6)
    np.testing.assert_array_equal(out["features"][0, 0, 0, 0].numpy(), [0, 1, 1, 1, 0, 0])
    assert out["mask"].tolist() == [[True, True, False], [True, True, True]]
    assert out["n_listeners"].tolist() == [2, 3] and out["subj_mean"].tolist() == [1.5, 4.0]
    assert pad_frames(torch.ones(1, 5), 5).shape == (1, 5)


def test_feature_cache_reused(noise_manifest, tmp_path):
    _dm(noise_manifest, tmp_path)
    entries = sorted((tmp_path / "cache" / "features").glob("*.npy"))
    assert entries
    mtimes = [e.stat().st_mtime_ns for e in entries]
    _dm(noise_manifest, tmp_path)
    assert [e.stat().st_mtime_ns for e in entries] == mtimes


def test_fold_role_val_is_the_papers_schedule(tiny_demo, tmp_path):
    vals = []
    for fold in range(5):
        dm = _dm(tiny_demo, tmp_path, fold=fold, fold_role="val")
        st = dm.stimuli
        assert set(st["partition"]) == {"train", "val"}
        vals.append(
            set(
                map(
                    tuple,
                    st.loc[st["partition"] == "val", ["test", "item"]].drop_duplicates().to_numpy(),
                )
            )
        )
    assert (
        sum(len(v) for v in vals) == 10 and len(set().union(*vals)) == 10
    )  # each item validates once


def test_fold_role_val_keeps_split_test_rows(split_manifest, tmp_path):
    dm = _dm(split_manifest, tmp_path, fold_role="val", num_folds=2)
    st = dm.stimuli
    assert (st.loc[st["split"] == "test", "partition"] == "test").all()
    assert set(st.loc[st["split"] != "test", "partition"]) == {"train", "val"}


def test_folds_stable_when_a_test_is_added():
    keys = pd.DataFrame({"test": ["b"] * 9, "item": [f"i{k}" for k in range(9)]})
    more = pd.concat([pd.DataFrame({"test": ["a"] * 4, "item": [f"x{k}" for k in range(4)]}), keys])
    before = assign_folds(keys, 5, seed=1)
    after = assign_folds(more.reset_index(drop=True), 5, seed=1)[4:]
    np.testing.assert_array_equal(before, after)


def test_a_truncated_file_is_an_error_naming_row_and_file(noise_manifest, tmp_path):
    """A WAV header with a few samples used to give all-zero features and a score of -27."""
    import shutil

    import pandas as pd
    import soundfile as sf

    from gml.data.datamodule import GMLDataModule
    from gml.data.manifest import ManifestError

    root = tmp_path / "copy"
    shutil.copytree(noise_manifest.parent, root)
    df = pd.read_csv(root / "manifest.csv")
    sf.write(root / "wav" / "cut.wav", np.zeros(4, np.float32), 48000)
    df.loc[df["coded"] == df["coded"].iloc[7], "coded"] = "wav/cut.wav"
    df.to_csv(root / "manifest.csv", index=False)
    dm = GMLDataModule(str(root / "manifest.csv"), progress=False, cache_dir=str(tmp_path / "c"))
    with pytest.raises(
        ManifestError, match=r"manifest\.csv: row \d+, column 'coded': .*cut\.wav: lasts 0\.1 ms"
    ):
        dm.setup("fit")


def test_two_references_for_one_item_name_rows_and_files(noise_manifest, tmp_path):
    import pandas as pd

    from gml.data.manifest import Manifest, ManifestError

    df = pd.read_csv(noise_manifest)
    other = df.loc[df["item"] == "item1", "reference"].iloc[0]
    row = int(np.flatnonzero((df["item"] == "item0") & (df["condition"] == "snr5"))[0])
    df.loc[(df["item"] == "item0") & (df["condition"] == "snr5"), "reference"] = other
    with pytest.raises(
        ManifestError,
        match=rf"rows 2 and {row + 2}, column 'reference': item noise-test/item0 names two reference files .*item0_ref\.wav and .*item1_ref\.wav",
    ):
        Manifest.from_frame(df, base_dir=noise_manifest.parent, source="m.csv")


def test_data_module_takes_a_manifest_or_an_import_result(noise_manifest, tmp_path):
    from types import SimpleNamespace

    from gml.data.datamodule import GMLDataModule
    from gml.data.manifest import Manifest

    m = Manifest.read(noise_manifest)
    for source in (m, SimpleNamespace(manifest=m)):  # an importer's result has .manifest
        dm = GMLDataModule(source, progress=False, cache_dir=str(tmp_path / "c"))
        dm.setup("fit")
        assert dm.manifest is m and dm.manifest_path() == noise_manifest
        assert len(dm.stimuli) == 18


def test_length_mismatch_in_training_data_warns_naming_both_files(tmp_path):
    import pandas as pd
    import soundfile as sf

    from gml.data.datamodule import GMLDataModule
    from gml.errors import GMLWarning

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "ref.wav", rng.standard_normal((48000, 2)).astype(np.float32) * 0.1, 48000)
    sf.write(
        tmp_path / "long.wav", rng.standard_normal((4 * 48000, 2)).astype(np.float32) * 0.1, 48000
    )
    rows = [{"test": "t", "item": "i", "condition": "c", "listener": f"L{k}", "score": 50,
             "reference": "ref.wav", "coded": "long.wav"} for k in range(2)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    dm = GMLDataModule(str(tmp_path / "m.csv"), progress=False, cache_dir=str(tmp_path / "c"))
    with pytest.warns(
        GMLWarning, match=r"1 stimuli .*long\.wav is 3\.\d\d s longer than .*ref\.wav"
    ):
        dm.setup("test")
