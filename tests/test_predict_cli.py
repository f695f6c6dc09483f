"""``gml predict`` in its four input forms, the JSON/CSV schema, ``gml configs`` and shipped
configs by name from any folder."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from gml.cli import main, resolve_config
from gml.errors import GMLError
from gml.listener import PREDICTION_FIELDS

from .conftest import SHARED, write_pair

VISQOL = SHARED / "data" / "visqol-conformance"


def _run(capsys, *args: str) -> str:
    main(["predict", *args, "--no-progress"])
    return capsys.readouterr().out


def test_one_pair_json_schema(tiny_run, tmp_path, capsys):
    ref, cod = write_pair(tmp_path)
    out = _run(capsys, "--ckpt", str(tiny_run), "--reference", str(ref), "--coded", str(cod),
               "--listeners", "12", "--out", str(tmp_path / "p.json"), "--simulate", "5")  # fmt: skip
    assert "predicted mean score" in out and "95 % CI,  12 listeners" in out
    obj = json.loads((tmp_path / "p.json").read_text())
    assert set(obj) == set(PREDICTION_FIELDS) | {"panels"}
    assert obj["n_listeners"] == 12 and obj["reference_rate"] == 48000
    assert len(obj["panels"]) == 5 and len(obj["panels"][0]["scores"]) == 12


def test_one_pair_csv(tiny_run, tmp_path, capsys):
    ref, cod = write_pair(tmp_path)
    _run(capsys, "--ckpt", str(tiny_run / "best.ckpt"), "--reference", str(ref), "--coded",
         str(cod), "--out", str(tmp_path / "p.csv"), "--per-window")  # fmt: skip
    frame = pd.read_csv(tmp_path / "p.csv")
    assert list(frame.columns) == list(PREDICTION_FIELDS) and len(frame) == 1


def test_pairs_csv_carries_columns(tiny_run, tmp_path, capsys):
    pairs = [write_pair(tmp_path / "wav", seed=k) for k in range(3)]
    pd.DataFrame(
        {
            "reference": [f"wav/{r.name}" for r, _ in pairs],
            "coded": [f"wav/{c.name}" for _, c in pairs],
            "codec": ["x", "y", "z"],
        }
    ).to_csv(tmp_path / "pairs.csv", index=False)
    _run(capsys, "--ckpt", str(tiny_run), "--pairs", str(tmp_path / "pairs.csv"),
         "--out", str(tmp_path / "preds.csv"))  # fmt: skip
    frame = pd.read_csv(tmp_path / "preds.csv")
    assert list(frame["codec"]) == ["x", "y", "z"] and len(frame) == 3
    assert set(PREDICTION_FIELDS) <= set(frame.columns)
    # paths in the output are the resolved files
    assert frame["coded"].iloc[0] == str((tmp_path / "wav" / pairs[0][1].name).resolve())


def test_dirs_matched_by_name(tiny_run, tmp_path, capsys):
    (tmp_path / "ref").mkdir()
    (tmp_path / "cod").mkdir()
    for k in range(2):
        r, c = write_pair(tmp_path / "tmp", seed=k)
        shutil.move(r, tmp_path / "ref" / f"item{k}.wav")
        shutil.move(c, tmp_path / "cod" / f"item{k}.wav")
    r, _ = write_pair(tmp_path / "tmp", seed=9)
    shutil.move(r, tmp_path / "ref" / "lonely.wav")
    main(["predict", "--ckpt", str(tiny_run), "--reference-dir", str(tmp_path / "ref"),
          "--coded-dir", str(tmp_path / "cod"), "--out", str(tmp_path / "d.json"), "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert "no coded file for 1 reference(s): lonely.wav" in captured.err
    records = json.loads((tmp_path / "d.json").read_text())
    assert [r["name"] for r in records] == ["item0.wav", "item1.wav"]
    # the files read by a worker process: the same figures, in the same order
    main(["predict", "--ckpt", str(tiny_run), "--reference-dir", str(tmp_path / "ref"),
          "--coded-dir", str(tmp_path / "cod"), "--out", str(tmp_path / "w.json"),
          "--workers", "1", "--no-progress"])  # fmt: skip
    again = json.loads((tmp_path / "w.json").read_text())
    assert [r["name"] for r in again] == ["item0.wav", "item1.wav"]
    assert [r["mean"] for r in again] == pytest.approx([r["mean"] for r in records], abs=1e-4)


def test_manifest_with_subjective_statistics(tiny_run, split_manifest, tmp_path, capsys):
    out = _run(capsys, "--ckpt", str(tiny_run), "--manifest", str(split_manifest),
               "--out", str(tmp_path / "m.csv"))  # fmt: skip
    assert "Pearson(predicted, subjective mean)" in out
    frame = pd.read_csv(tmp_path / "m.csv")
    assert len(frame) == 18
    assert {"subjective_mean", "subjective_ci95", "predicted_mean", "predicted_ci95", "q50"} <= set(
        frame.columns
    )
    assert "snr_db" in frame.columns  # the manifest's extra column travels


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--reference", "nope.wav", "--coded", "nope.wav"], "nope.wav: audio file not found"),
        (["--reference", "a.wav"], "--reference and --coded go together"),
        (["--reference-dir", "x", "--coded-dir", "y"], "x: folder not found"),
        (["--pairs", "missing.csv"], "missing.csv: pairs file not found"),
        (["--reference", __file__, "--coded", __file__, "--workers", "-1"], "--workers -1"),
        (["--manifest", "m.csv", "--pairs", "p.csv"], "give one input form"),
        (["--out", "x.txt", "--reference", "a", "--coded", "b"], "expected a .json or .csv"),
        (
            ["--out", "/proc/gml-x/y.csv", "--reference", "a", "--coded", "b"],
            "--out /proc/gml-x/y.csv: cannot create its folder",
        ),
    ],
)
def test_bad_input_is_one_line(tiny_run, tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--ckpt", str(tiny_run), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("gml: error:") and needle in err and "Traceback" not in err


def test_ckpt_folder_without_best_lists_its_files(tmp_path, capsys):
    (tmp_path / "a.ckpt").write_bytes(b"")
    (tmp_path / "b.ckpt").write_bytes(b"")
    with pytest.raises(SystemExit):
        main(["predict", "--ckpt", str(tmp_path), "--reference", __file__, "--coded", __file__])
    assert "a.ckpt, b.ckpt" in capsys.readouterr().err


@pytest.mark.skipif(not VISQOL.is_dir(), reason="needs ../shared/data/visqol-conformance")
def test_real_codec_pairs_all_forms(tiny_run, tmp_path, capsys):
    """The real AAC/MP3/Opus/low-pass pairs of the ViSQOL conformance set, 48 kHz stereo."""
    pairs = pd.read_csv(VISQOL / "pairs.csv")
    _run(capsys, "--ckpt", str(tiny_run), "--pairs", str(VISQOL / "pairs.csv"),
         "--out", str(tmp_path / "real.csv"))  # fmt: skip
    frame = pd.read_csv(tmp_path / "real.csv")
    assert len(frame) == len(pairs) and list(frame["codec"]) == list(pairs["codec"])
    assert frame["mean"].between(0, 100).all() and (frame["std"] > 0).all()
    assert (frame["reference_rate"] == 48000).all() and (frame["coded_channels"] == 2).all()
    # 7-16 s excerpts: each scored whole (windows only beyond 20 s)
    assert (frame["windows"] == 1).all()

    row = pairs.iloc[1]
    out = _run(capsys, "--ckpt", str(tiny_run), "--reference", str(VISQOL / row["reference"]),
               "--coded", str(VISQOL / row["coded"]))  # fmt: skip
    assert "predicted mean score" in out

    ref_dir, cod_dir = tmp_path / "ref", tmp_path / "cod"
    ref_dir.mkdir()
    cod_dir.mkdir()
    for r in pairs.itertuples():
        (ref_dir / f"{r.codec}.wav").symlink_to(VISQOL / r.reference)
        (cod_dir / f"{r.codec}.wav").symlink_to(VISQOL / r.coded)
    _run(capsys, "--ckpt", str(tiny_run), "--reference-dir", str(ref_dir), "--coded-dir",
         str(cod_dir), "--out", str(tmp_path / "dirs.csv"))  # fmt: skip
    by_dir = pd.read_csv(tmp_path / "dirs.csv").set_index("name")
    for r in frame.itertuples():
        assert by_dir.loc[f"{r.codec}.wav", "mean"] == pytest.approx(r.mean, abs=1e-3)

    manifest = tmp_path / "manifest.csv"
    pairs.assign(
        test="visqol",
        item=pairs["reference"],
        condition=pairs["codec"],
        listener="none",
        score=50.0,
        reference=[str(VISQOL / p) for p in pairs["reference"]],
        coded=[str(VISQOL / p) for p in pairs["coded"]],
    ).to_csv(manifest, index=False)
    _run(capsys, "--ckpt", str(tiny_run), "--manifest", str(manifest),
         "--out", str(tmp_path / "man.csv"))  # fmt: skip
    assert len(pd.read_csv(tmp_path / "man.csv")) == len(pairs)


def test_configs_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("cutmix", "cutmix.yaml", "configs/cutmix.yaml"):
        assert resolve_config(name).endswith("gml/configs/cutmix.yaml")
    with pytest.raises(GMLError, match="not a shipped configuration"):
        resolve_config("nope")
    main(["configs"])
    out = capsys.readouterr().out
    assert "cutmix" in out and "the paper's best model" in out


def test_window_seconds_must_be_positive(tiny_run, tmp_path, capsys):
    ref, cod = write_pair(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--ckpt", str(tiny_run), "--reference", str(ref), "--coded", str(cod),
              "--window-seconds", "0"])  # fmt: skip
    assert exc.value.code == 2
    assert "--window-seconds 0.0; expected a positive number" in capsys.readouterr().err


def _strict(text: str):
    """Parse JSON as JavaScript's JSON.parse would: NaN and Infinity are not JSON."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict_json(tiny_run, tmp_path, capsys):
    """One model has no model disagreement (model_std NaN in Python): the file says null."""
    pairs = [write_pair(tmp_path / "wav", seed=k) for k in range(2)]
    _run(capsys, "--ckpt", str(tiny_run), "--reference", str(pairs[0][0]), "--coded",
         str(pairs[0][1]), "--out", str(tmp_path / "one.json"), "--simulate", "3",
         "--per-window")  # fmt: skip
    one = _strict((tmp_path / "one.json").read_text())
    assert one["model_std"] is None and one["members"] == 1
    pd.DataFrame(
        {"reference": [str(r) for r, _ in pairs], "coded": [str(c) for _, c in pairs]}
    ).to_csv(tmp_path / "pairs.csv", index=False)
    _run(capsys, "--ckpt", str(tiny_run), "--pairs", str(tmp_path / "pairs.csv"),
         "--out", str(tmp_path / "many.json"))  # fmt: skip
    many = _strict((tmp_path / "many.json").read_text())
    assert [r["model_std"] for r in many] == [None, None]


@pytest.mark.parametrize("offset", [-80.0, -5.0, 0.0, 97.0])
def test_the_printed_ci_never_leaves_the_scale(tiny_run, tmp_path, capsys, monkeypatch, offset):
    """A clamped or near-edge mean: the printed interval is the fields ci95_low/ci95_high
    (scores as a slider records them), inside 0-100, and a note says what it is."""
    import re

    import gml.cli.predict as predict_cli

    real = predict_cli.load_listener

    def shifted(args):
        lis = real(args)
        lis.module.head.score_offset = offset
        return lis

    monkeypatch.setattr(predict_cli, "load_listener", shifted)
    ref, cod = write_pair(tmp_path)
    out = _run(capsys, "--ckpt", str(tiny_run), "--reference", str(ref), "--coded", str(cod),
               "--out", str(tmp_path / "p.json"))  # fmt: skip
    (line,) = [x for x in out.splitlines() if x.startswith("95 % CI")]
    low, high = (float(v) for v in re.search(r"\[(-?[\d.]+), (-?[\d.]+)\]", line).groups())
    assert 0.0 <= low <= high <= 100.0
    obj = _strict((tmp_path / "p.json").read_text())
    assert (low, high) == (round(obj["ci95_low"], 1), round(obj["ci95_high"], 1))
    assert "note: the CI is that of scores as a slider records them" in out
    assert "±" not in line  # the model's half-width does not describe this interval
