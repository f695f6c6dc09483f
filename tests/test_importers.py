"""gml import: webMUSHRA, BeaqleJS, ODAQ XML and generic CSV results → manifests, on small
synthetic files (plus the real SiSEC08 ratings when ../shared is present)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import soundfile as sf
import yaml

from gml import cli
from gml.data.importers import (
    ImporterError,
    apply_screening,
    assign_roles,
    import_beaqlejs,
    import_odaq,
    import_table,
    import_webmushra,
    lowpass,
    parse_map,
    render_lowpass_anchor,
    screen_listeners,
)
from gml.data.manifest import Manifest
from tests.conftest import SHARED

SISEC = SHARED / "data" / "sisec08-ratings" / "SiSEC08_anonymized.csv"
WEBMUSHRA_COLUMNS = ["trial_id", "rating_stimulus", "rating_score", "rating_time", "rating_comment"]


@pytest.fixture(autouse=True)
def _import_command(monkeypatch):
    """Run `gml import` through the real `gml` entry point, registered or not (yet)."""
    monkeypatch.setitem(cli.EXTRA_COMMANDS, "import", ("gml.cli.import_", "import results"))


def _gml(*args: str) -> None:
    cli.main(["import", *map(str, args)])


def _fails(capsys, *args: str) -> str:
    """Run `gml import`, expect the one-line error exit, return the line."""
    with pytest.raises(SystemExit) as exc:
        _gml(*args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gml: error: ") and "\n" not in err, err
    return err


def _noise(path: Path, seconds=0.25, rate=48000, channels=2, subtype="PCM_16", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = 0.2 * rng.standard_normal((int(seconds * rate), channels))
    sf.write(path, data if channels > 1 else data[:, 0], rate, subtype=subtype)
    return path


# -- webMUSHRA ------------------------------------------------------------------------------


def _config(
    root: Path, test_id: str, trials=("trial1", "trial2"), keys=("C1", "C2"), seconds=0.25, **kw
):
    """A webMUSHRA config in webMUSHRA's layout: ``root/configs/<test>.yaml`` whose audio paths
    are relative to ``root`` (the webMUSHRA folder). The second trial sits in a randomised
    group (a nested list), as webMUSHRA allows."""
    pages = [{"type": "generic", "id": "welcome", "name": "Welcome", "content": "hi"}]
    for k, trial in enumerate(trials):
        folder = f"configs/resources/audio/{test_id}/{trial}"
        _noise(root / folder / "ref.wav", seconds, seed=k)
        for j, key in enumerate(keys):
            _noise(root / folder / f"{key}.wav", seconds, seed=100 + 10 * k + j)
        page = {
            "type": "mushra",
            "id": trial,
            "name": f"Trial {trial}",
            "content": "rate",
            "showWaveform": True,
            "enableLooping": True,
            "reference": f"{folder}/ref.wav",
            "createAnchor35": True,
            "createAnchor70": True,
            "stimuli": {key: f"{folder}/{key}.wav" for key in keys},
        }
        pages.append(page if k % 2 == 0 else ["random", page])
    pages.append(
        {
            "type": "finish",
            "name": "Thanks",
            "questionnaire": [
                {"type": "text", "label": "eMail", "name": "email"},
                {"type": "number", "label": "Age", "name": "age", "min": 0, "max": 100},
                {"type": "likert", "name": "gender", "label": "Gender", "response": []},
            ],
        }
    )
    doc = {"testname": f"Test {test_id}", "testId": test_id, "bufferSize": 2048, "pages": pages}
    doc.update(kw)
    path = root / "configs" / f"{test_id}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _session_rows(test_id, answers, uuid, trials, keys, base_score, comment=""):
    rows = []
    for t in trials:
        for stim, score in (
            ("reference", 100 - base_score % 7),
            *((k, base_score + 10 * j) for j, k in enumerate(keys)),
            ("anchor35", 10 + base_score % 5),
            ("anchor70", 30 + base_score % 9),
        ):
            head = [test_id, *answers] + ([uuid] if uuid is not None else [])
            rows.append([*head, t, stim, score, 1234 + score, comment])
    return rows


def _results(
    path: Path,
    test_id: str,
    sessions: list[tuple],
    uuid: bool,
    questionnaire=True,
    trials=("trial1", "trial2"),
    keys=("C1", "C2"),
):
    """``mushra.csv`` as webMUSHRA writes it: header once, then each session's block."""
    q = ["email", "age", "gender"] if questionnaire else []
    header = ["session_test_id", *q] + (["session_uuid"] if uuid else []) + WEBMUSHRA_COLUMNS
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for k, (answers, base) in enumerate(sessions):
            sid = f"uuid-{test_id}-{k}" if uuid else None
            comment = 'sounds, well, "odd"\nsecond line' if k == 0 else ""
            answers = answers if questionnaire else []
            w.writerows(_session_rows(test_id, answers, sid, trials, keys, base, comment))
    return path


ANSWERS = [("a@x.org", "31", "female"), ("b@y.org", "45", "male"), ("a@x.org", "31", "female")]


def test_webmushra_with_uuid(tmp_path):
    cfg = _config(tmp_path / "wm", "t1")
    res = _results(
        tmp_path / "wm" / "results" / "t1" / "mushra.csv",
        "t1",
        list(zip(ANSWERS, (40, 50, 60))),
        uuid=True,
    )
    result = import_webmushra([res], [cfg], out_dir=tmp_path / "out")
    r = result.manifest.ratings
    assert sorted(r["listener"].unique()) == ["uuid-t1-0", "uuid-t1-1", "uuid-t1-2"]
    assert set(r["test"]) == {"t1"} and set(r["item"]) == {"trial1", "trial2"}
    assert set(r["condition"]) == {"reference", "C1", "C2", "anchor35", "anchor70"}
    assert len(r) == 3 * 2 * 5
    # the hidden reference is the reference itself; stimuli keys map through the config
    hidden = r[r["condition"] == "reference"]
    assert (hidden["coded"] == hidden["reference"]).all()
    c1 = r[(r["condition"] == "C1") & (r["item"] == "trial2")]
    assert c1["coded"].iloc[0].endswith("configs/resources/audio/t1/trial2/C1.wav")
    roles = r.groupby("condition")["role"].first().to_dict()
    assert roles == {
        "reference": "hidden_reference",
        "anchor35": "low_anchor",
        "anchor70": "mid_anchor",
        "C1": "",
        "C2": "",
    }
    first = r[(r["listener"] == "uuid-t1-0") & (r["condition"] == "C2") & (r["item"] == "trial1")]
    assert first["score"].item() == 50.0 and first["rating_time"].item() == "1284"
    assert first["rating_comment"].item() == 'sounds, well, "odd"\nsecond line'
    # questionnaire answers (personal data) stay out unless asked for
    assert not any(c.startswith("q_") or c == "email" for c in r.columns)
    kept = import_webmushra([res], [cfg], out_dir=tmp_path / "out", keep_questionnaire=True)
    q = kept.manifest.ratings
    assert set(q["q_email"]) == {"a@x.org", "b@y.org"} and set(q["q_age"]) == {"31", "45"}
    assert result.counts()["listeners"] == 3 and result.missing_audio == 0


def test_webmushra_without_uuid_sessions_appended(tmp_path):
    """Older webMUSHRA: no session_uuid. Sessions are told apart by questionnaire answers and
    by a (trial, stimulus) coming round again; identical answers (the same person twice, or
    an empty questionnaire) still make two sessions."""
    cfg = _config(tmp_path / "wm", "t1")
    res = _results(
        tmp_path / "wm" / "results" / "t1" / "mushra.csv",
        "t1",
        list(zip(ANSWERS, (40, 50, 60))),
        uuid=False,
    )
    result = import_webmushra([res], [cfg], out_dir=tmp_path)
    r = result.manifest.ratings
    ids = list(dict.fromkeys(r["listener"]))
    assert len(ids) == 3 and [i[:7] for i in ids] == ["t1-s001", "t1-s002", "t1-s003"]
    assert ids[0][-6:] == ids[2][-6:] != ids[1][-6:]  # hash of the answers
    assert r.groupby("listener").size().eq(10).all()
    assert any("no session_uuid" in n for n in result.notes)
    # no questionnaire columns at all: ids are just the session order
    res2 = _results(
        tmp_path / "r2" / "mushra.csv", "t1", [((), 40), ((), 70)], uuid=False, questionnaire=False
    )
    r2 = import_webmushra([res2], [cfg], out_dir=tmp_path).manifest.ratings
    assert sorted(r2["listener"].unique()) == ["t1-s001", "t1-s002"]


def test_webmushra_two_tests_one_manifest(tmp_path):
    root = tmp_path / "wm"
    cfg_a = _config(root, "testA")
    cfg_b = _config(root, "testB", trials=("trial1", "trial2"))
    res_a = _results(
        root / "results" / "testA" / "mushra.csv",
        "testA",
        list(zip(ANSWERS[:2], (40, 50))),
        uuid=True,
    )
    res_b = _results(
        root / "results" / "testB" / "mushra.csv",
        "testB",
        list(zip(ANSWERS[:3], (45, 55, 65))),
        uuid=False,
    )
    result = import_webmushra([res_a, res_b], [cfg_a, cfg_b], out_dir=tmp_path / "out")
    r = result.manifest.ratings
    assert r.groupby("test")["listener"].nunique().to_dict() == {"testA": 2, "testB": 3}
    # the same trial id in two tests is two items, with two sets of anchors
    assert result.counts()["items"] == 4 and result.counts()["tests"] == 2
    assert len(result.anchors) == 8
    a = r[(r["condition"] == "anchor70")].groupby("test")["coded"].unique()
    assert "anchors/testA/trial1_anchor70.wav" in a["testA"][0].replace("\\", "/")


def test_webmushra_paths_relative_to_config_or_audio_root(tmp_path):
    """Paths relative to the config's own folder work too, and --audio-root overrides."""
    root = tmp_path / "wm"
    cfg = _config(root, "t1")
    doc = yaml.safe_load(cfg.read_text())
    for page in doc["pages"]:
        page = page[1] if isinstance(page, list) else page
        if page.get("type") == "mushra":
            page["reference"] = page["reference"].replace("configs/", "", 1)
            page["stimuli"] = {k: v.replace("configs/", "", 1) for k, v in page["stimuli"].items()}
    cfg.write_text(yaml.safe_dump(doc))
    res = _results(root / "results" / "t1" / "mushra.csv", "t1", [(ANSWERS[0], 40)], uuid=True)
    assert import_webmushra([res], [cfg], out_dir=tmp_path).missing_audio == 0
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (root / "configs" / "resources").rename(moved / "resources")
    with pytest.raises(ImporterError, match=r"t1.yaml: page 'trial1', field 'reference'"):
        import_webmushra([res], [cfg], out_dir=tmp_path)
    ok = import_webmushra([res], [cfg], out_dir=tmp_path, audio_root=moved)
    assert ok.manifest.ratings["reference"].str.startswith(str(moved.resolve())).all()


def test_webmushra_audio_through_a_symlink_below_the_manifest_is_relative(tmp_path, capsys):
    """Audio reached through a symbolic link below the manifest's folder (the webMUSHRA
    folder's resources linked to a store elsewhere) is written relative to the manifest, as
    for any file below it, not as the link's absolute target; the manifest reads back."""
    store = tmp_path / "store"
    cfg = _config(store, "t1")  # the audio lives in the store...
    study = tmp_path / "study"
    (study / "wm" / "configs").mkdir(parents=True)
    # ...and the study's webMUSHRA folder reaches it through a link
    (study / "wm" / "configs" / "resources").symlink_to(store / "configs" / "resources")
    shutil.copy(cfg, study / "wm" / "configs" / "t1.yaml")
    res = _results(study / "wm" / "results" / "t1" / "mushra.csv", "t1", [(ANSWERS[0], 40)],
                   uuid=True)  # fmt: skip
    out = study / "manifest.csv"
    _gml("webmushra", res, "--config", study / "wm" / "configs" / "t1.yaml", "--out", out)
    capsys.readouterr()
    raw = pd.read_csv(out, dtype=str)
    for col in ("reference", "coded"):
        assert raw[col].str.startswith(("wm/configs/resources/audio/t1/", "anchors/")).all()
    assert Manifest.read(out).stimuli()["n_listeners"].eq(1).all()  # the files are found


def test_webmushra_no_audio_counts_missing(tmp_path):
    root = tmp_path / "wm"
    cfg = _config(root, "t1")
    res = _results(root / "results" / "t1" / "mushra.csv", "t1", [(ANSWERS[0], 40)], uuid=True)
    audio = root / "configs" / "resources" / "audio" / "t1"
    (audio / "trial1" / "C2.wav").unlink()
    with pytest.raises(ImporterError, match=r"page 'trial1', field 'stimuli', key 'C2'") as exc:
        import_webmushra([res], [cfg], out_dir=tmp_path)
    # reported where webMUSHRA would look: its folder, where the other files were found
    assert f"not found: {audio / 'trial1' / 'C2.wav'} (pass --audio-root" in str(exc.value)
    (audio / "trial2" / "ref.wav").unlink()
    result = import_webmushra([res], [cfg], out_dir=tmp_path / "out", check_audio=False)
    # trial1/C2, and all of trial2 (no reference, so no anchors rendered either)
    assert result.missing_audio == 1 + 5 and len(result.anchors) == 2
    assert result.counts()["stimuli with missing audio"] == 6


def test_anchor_spectrum_and_format(tmp_path):
    ref = _noise(tmp_path / "ref.wav", seconds=1.0, rate=48000, channels=2, subtype="PCM_24")
    x, rate = sf.read(ref, dtype="float64")
    for cutoff in (3500.0, 7000.0):
        out = render_lowpass_anchor(ref, tmp_path / "a" / f"lp{cutoff:.0f}.wav", cutoff)
        info, y = sf.info(out), sf.read(out, dtype="float64")[0]
        assert (info.samplerate, info.channels, info.subtype) == (48000, 2, "PCM_24")
        assert y.shape == x.shape
        f = np.fft.rfftfreq(len(y), 1 / rate)
        py, px = (np.abs(np.fft.rfft(s, axis=0)) ** 2 for s in (y, x))
        above = py[f > 1.3 * cutoff].sum() / py.sum()
        assert above < 1e-3, above  # little energy above the cutoff
        kept = py[f < 0.7 * cutoff].sum() / px[f < 0.7 * cutoff].sum()
        assert 0.97 < kept < 1.03  # the passband is untouched
        # zero phase: the anchor lines up with the reference, no delay
        lag = np.argmax(np.correlate(y[:4000, 0], x[:4000, 0], "full")) - 3999
        assert lag == 0
    mono = _noise(tmp_path / "mono.wav", channels=1, subtype="PCM_16", rate=16000)
    out = render_lowpass_anchor(mono, tmp_path / "m.wav", 7000.0)
    assert (sf.info(out).channels, sf.info(out).subtype, sf.info(out).samplerate) == (
        1,
        "PCM_16",
        16000,
    )
    # a cutoff at or above Nyquist leaves nothing to remove
    assert np.array_equal(lowpass(x, 8000, 7000.0), x)
    assert not list(tmp_path.rglob(".*.tmp"))  # atomic writes leave no temporary files


def test_webmushra_round_trip_cli(tmp_path, capsys):
    """results CSV + YAML config + audio → `gml import` → a manifest Manifest.read accepts with
    audio checks on, anchors rendered beside it."""
    root = tmp_path / "wm"
    cfg = _config(root, "t1")
    res = _results(
        root / "results" / "t1" / "mushra.csv", "t1", list(zip(ANSWERS, (40, 50, 60))), uuid=True
    )
    out = tmp_path / "data" / "manifest.csv"
    _gml("webmushra", res, "--config", cfg, "--out", out)
    printed = capsys.readouterr().out
    for needle in (
        "tests",
        "items",
        "conditions",
        "listeners",
        "ratings",
        "stimuli with missing audio",
        "listeners screened out",
        f"wrote {out}",
    ):
        assert needle in printed, printed
    m = Manifest.read(out)  # check_audio on
    assert len(m.ratings) == 30 and len(m.stimuli()) == 10
    assert (tmp_path / "data" / "anchors" / "t1" / "trial2_anchor35.wav").is_file()
    raw = pd.read_csv(out, dtype=str)
    assert raw.loc[raw["condition"] == "anchor35", "coded"].str.startswith("anchors/").all()
    st = m.stimuli().set_index(["item", "condition"])
    assert st.loc[("trial1", "C1"), "mean"] == pytest.approx(50.0)  # 40, 50, 60
    assert st.loc[("trial1", "C1"), "ci95"] == pytest.approx(
        scipy.stats.t.ppf(0.975, 2) * 10 / np.sqrt(3)
    )


def test_webmushra_errors_are_one_line(tmp_path, capsys):
    root = tmp_path / "wm"
    cfg = _config(root, "t1")
    res = _results(root / "results" / "t1" / "mushra.csv", "t1", [(ANSWERS[0], 40)], uuid=True)
    out = tmp_path / "m.csv"

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("testId: t1\npages:\n  - type: mushra\n    id: [unclosed\n")
    err = _fails(capsys, "webmushra", res, "--config", bad_yaml, "--out", out)
    assert "bad.yaml: not valid YAML at line" in err

    no_stimuli = tmp_path / "nostim.yaml"
    no_stimuli.write_text(
        "testId: t1\npages:\n  - type: mushra\n    id: trial1\n    reference: r.wav\n"
    )
    err = _fails(capsys, "webmushra", res, "--config", no_stimuli, "--out", out)
    assert "nostim.yaml: page 'trial1': field 'stimuli': expected a mapping" in err

    text = res.read_text()
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(text.replace(",C2,", ",C9,", 1))
    err = _fails(capsys, "webmushra", unknown, "--config", cfg, "--out", out)
    assert "unknown.csv: row 4, column 'rating_stimulus': 'C9' is not a stimulus of page" in err
    assert "expected one of C1, C2, reference, anchor35, anchor70" in err

    trial = tmp_path / "trial.csv"
    trial.write_text(text.replace(",trial2,", ",trial7,", 1))
    err = _fails(capsys, "webmushra", trial, "--config", cfg, "--out", out)
    assert "column 'trial_id': 'trial7' is not a MUSHRA page" in err

    score = tmp_path / "score.csv"
    score.write_text(text.replace(",C1,40,", ",C1,abc,", 1))
    err = _fails(capsys, "webmushra", score, "--config", cfg, "--out", out)
    assert "score.csv: row 3, column 'rating_score': 'abc' is not a number" in err

    cols = tmp_path / "cols.csv"
    pd.read_csv(res).drop(columns=["rating_score"]).to_csv(cols, index=False)
    err = _fails(capsys, "webmushra", cols, "--config", cfg, "--out", out)
    assert "cols.csv: missing column(s) rating_score" in err

    other = _results(tmp_path / "o" / "mushra.csv", "t2", [(ANSWERS[0], 40)], uuid=True)
    err = _fails(capsys, "webmushra", other, "--config", cfg, "--out", out)
    assert "column 'session_test_id': 't2' is the testId of no --config" in err

    err = _fails(capsys, "webmushra", res, "--config", tmp_path / "none.yaml", "--out", out)
    assert "none.yaml: config file not found" in err
    assert not out.exists()


# -- BeaqleJS -------------------------------------------------------------------------------


def _beaqle(root: Path, name: str, scores: dict, user=True, unrated=True) -> Path:
    """A BeaqleJS MUSHRA results file: test sets, then the user object last."""
    doc = []
    for k, (tid, s) in enumerate(scores.items()):
        files = {
            "Reference": f"audio/{tid}_ref.wav",
            "1": f"audio/{tid}_a.wav",
            "2": f"audio/{tid}_b.wav",
            "anchor": f"audio/{tid}_lp.wav",
        }
        for f in files.values():
            if not (root / f).exists():
                _noise(root / f, seed=k)
        ratings = dict(zip(files, s))
        doc.append({"TestID": tid, "Runtime": 20000 + k, "rating": ratings, "filename": files})
    if unrated:
        doc.append({"TestID": "never_shown"})
    if user:
        doc.append({"UserName": name.upper(), "UserEmail": f"{name}@x.org", "UserComment": "ok"})
    path = root / "results" / f"mytest_{name}_2024.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_beaqlejs(tmp_path, capsys):
    f1 = _beaqle(tmp_path, "ann", {"Schubert": [100, 60, 40, 10], "Bach": [95, 70, 35, 20]})
    f2 = _beaqle(tmp_path, "bob", {"Schubert": [85, 55, 45, 15], "Bach": [100, 65, 30, 25]})
    result = import_beaqlejs([f1, f2], test="mytest", out_dir=tmp_path)
    r = result.manifest.ratings
    assert set(r["listener"]) == {"mytest_ann_2024", "mytest_bob_2024"}
    assert set(r["item"]) == {"Schubert", "Bach"} and set(r["test"]) == {"mytest"}
    assert set(r["condition"]) == {"Reference", "1", "2", "anchor"}
    hidden = r[r["condition"] == "Reference"]
    assert (hidden["coded"] == hidden["reference"]).all()
    assert set(hidden["role"]) == {"hidden_reference"}
    assert r.loc[r["condition"] == "1", "reference"].str.endswith("_ref.wav").all()
    assert set(r["runtime"]) == {"20000", "20001"}
    assert any("never_shown" in n or "without ratings" in n for n in result.notes)
    by_name = import_beaqlejs([f1, f2], out_dir=tmp_path, listener_from="name")
    assert set(by_name.manifest.ratings["listener"]) == {"ANN", "BOB"}
    # the CLI, with the anchor named for screening: bob rated the hidden reference < 90 once
    out = tmp_path / "m.csv"
    _gml("beaqlejs", f1, f2, "--test", "mytest", "--out", out, "--screen", "--anchor", "anchor")
    printed = capsys.readouterr().out
    assert "mytest/mytest_bob_2024: ref<90 1/2" in printed and "OUT:" in printed
    assert set(Manifest.read(out).ratings["listener"]) == {"mytest_ann_2024"}


def test_beaqlejs_errors(tmp_path, capsys):
    out = tmp_path / "m.csv"
    f = _beaqle(tmp_path, "ann", {"Schubert": [100, 60, 40, 10]})
    doc = json.loads(f.read_text())
    bad = tmp_path / "obj.json"
    bad.write_text(json.dumps({"TestID": "x"}))
    assert "obj.json: expected a JSON array" in _fails(capsys, "beaqlejs", bad, "--out", out)
    bad.write_text("[{")
    assert "obj.json: not valid JSON at line 1" in _fails(capsys, "beaqlejs", bad, "--out", out)
    noref = json.loads(json.dumps(doc))
    del noref[0]["filename"]["Reference"], noref[0]["rating"]["Reference"]
    bad.write_text(json.dumps(noref))
    err = _fails(capsys, "beaqlejs", bad, "--out", out)
    assert "test set [0] (TestID 'Schubert'): field 'filename' has no 'Reference' label" in err
    score = json.loads(json.dumps(doc))
    score[0]["rating"]["2"] = 140
    bad.write_text(json.dumps(score))
    err = _fails(capsys, "beaqlejs", bad, "--out", out)
    assert "test set [0] (TestID 'Schubert'), rating '2': 140 is outside 0-100" in err
    nofile = json.loads(json.dumps(doc))
    nofile[0]["filename"]["2"] = "audio/gone.wav"
    bad.write_text(json.dumps(nofile))
    err = _fails(capsys, "beaqlejs", bad, "--out", out)
    assert "field 'filename', label '2': audio file not found" in err and "gone.wav" in err


# -- ODAQ XML -------------------------------------------------------------------------------

FILES = ("Item01_reference.wav", "Item01_LP35.wav", "Item01_LP70.wav", "Item01_codecA.wav")


def _odaq(root: Path, subject: str, scores: dict[str, list], test="ODAQ_test") -> Path:
    trials = []
    for trial, s in scores.items():
        files = [f.replace("Item01", trial) for f in FILES]
        for j, f in enumerate(files):
            if not (root / "audio" / trial / f).exists():
                _noise(root / "audio" / trial / f, seed=j)
        tests = "\n".join(
            f'      <testFile fileName="{f}" score="{v}" plays="{j + 1}"/>'
            for j, (f, v) in enumerate(zip(files, s))
        )
        trials.append(
            f'    <trial trialName="{trial}" trialSeconds="61.5" referencePlays="3">\n'
            f"{tests}\n    </trial>"
        )
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<MUSHRA>\n  <info subjectName="{subject}" '
        f'testName="{test}" stimuliDirectory="C:\\stimuli" trialsPerSession="2" '
        f'testStatus="finished"/>\n  <trials>\n' + "\n".join(trials) + "\n  </trials>\n</MUSHRA>\n"
    )
    path = root / "results" / f"{subject}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(xml)
    return path


def test_odaq_several_listeners(tmp_path):
    xmls = [
        _odaq(tmp_path, "S01", {"LP_Item01": [100, 12, 40, 70], "SH_Item02": [98, 8, 35, 80]}),
        _odaq(tmp_path, "S02", {"LP_Item01": [92, 20, 45, 60], "SH_Item02": [100, 15, 50, 75]}),
        _odaq(tmp_path, "S03", {"LP_Item01": [80, 10, 95, 50], "SH_Item02": [85, 5, 92, 55]}),
    ]
    result = import_odaq(xmls, audio_root=tmp_path / "audio", out_dir=tmp_path)
    r = result.manifest.ratings
    assert set(r["listener"]) == {"S01", "S02", "S03"} and set(r["test"]) == {"ODAQ_test"}
    assert set(r["item"]) == {"LP_Item01", "SH_Item02"} and len(r) == 24
    assert "LP_Item01_codecA" in set(r["condition"])
    ref = r[r["role"] == "hidden_reference"]
    assert (ref["coded"] == ref["reference"]).all() and len(ref) == 6
    assert ref["reference"].str.endswith("audio/LP_Item01/LP_Item01_reference.wav").any()
    assert set(r.loc[r["condition"].str.endswith("LP70"), "role"]) == {"mid_anchor"}
    assert set(r.loc[r["condition"].str.endswith("LP35"), "role"]) == {"low_anchor"}
    assert set(r["plays"]) == {"1", "2", "3", "4"}
    # S03 fails both criteria (reference < 90 and 7 kHz anchor > 90 in every trial)
    screened = apply_screening(result)
    assert screened.screening.excluded() == [("ODAQ_test", "S03")]
    assert "S03" not in set(screened.manifest.ratings["listener"])
    # files directly in the audio root work too, and the reference pattern is configurable
    flat = tmp_path / "flat"
    for f in (tmp_path / "audio").rglob("*.wav"):
        flat.mkdir(exist_ok=True)
        (flat / f.name.replace("reference", "orig")).write_bytes(f.read_bytes())
    renamed = [tmp_path / f"r{k}.xml" for k in range(3)]
    for src, dst in zip(xmls, renamed):
        dst.write_text(src.read_text().replace("reference", "orig"))
    r2 = import_odaq(renamed, audio_root=flat, reference_pattern="_orig", out_dir=tmp_path)
    assert r2.manifest.ratings["reference"].str.endswith("flat/LP_Item01_orig.wav").any()


def test_odaq_errors(tmp_path, capsys):
    out = tmp_path / "m.csv"
    x = _odaq(tmp_path, "S01", {"LP_Item01": [100, 12, 40, 70]})
    text = x.read_text()
    err = _fails(
        capsys,
        "odaq",
        x,
        "--audio-root",
        tmp_path / "audio",
        "--out",
        out,
        "--reference-pattern",
        "nomatch",
    )
    assert "trial 'LP_Item01': 0 testFiles match the reference pattern 'nomatch'" in err
    bad = tmp_path / "bad.xml"
    bad.write_text(text.replace("</trials>", ""))
    assert "bad.xml: not valid XML at line" in _fails(capsys, "odaq", bad, "--out", out)
    bad.write_text(text.replace('score="40"', 'score="forty"'))
    err = _fails(capsys, "odaq", bad, "--audio-root", tmp_path / "audio", "--out", out)
    assert "testFile 'LP_Item01_LP70.wav', attribute 'score': 'forty' is not a number" in err
    bad.write_text(text.replace("<MUSHRA>", "<ABX>").replace("</MUSHRA>", "</ABX>"))
    assert "root element <ABX>; expected <MUSHRA>" in _fails(capsys, "odaq", bad, "--out", out)


# -- generic CSV ----------------------------------------------------------------------------


def _table(root: Path) -> Path:
    rows = []
    for trial in ("t1", "t2"):
        _noise(root / "audio" / trial / "orig.wav")
        for j, cond in enumerate(("orig", "codecA", "codecB")):
            _noise(root / "audio" / trial / f"{cond}.wav", seed=j)
            for k, who in enumerate(("L1", "L2", "L3")):
                rows.append(
                    {
                        "Listener": who,
                        "Trial": trial,
                        "Condition": cond,
                        "Ratingscore": (95 + k if cond == "orig" else 40 + 10 * k),
                        "Fold": "train" if trial == "t1" else "test",
                        "Session": f"day{k}",
                    }
                )
    path = root / "ratings.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_csv_map_constants_templates(tmp_path, capsys):
    src = _table(tmp_path)
    mapping = (
        "score=Ratingscore,listener=Listener,item=Trial,condition=Condition,test=exp1,"
        "reference=audio/{Trial}/orig.wav,coded=audio/{item}/{Condition}.wav,split=Fold"
    )
    result = import_table(src, mapping, out_dir=tmp_path)
    r = result.manifest.ratings
    assert set(r["test"]) == {"exp1"} and len(r) == 18
    assert r["coded"].str.endswith("audio/t2/codecB.wav").any()
    assert r["reference"].str.endswith("orig.wav").all()
    assert set(r["split"]) == {"train", "test"} and set(r["Session"]) == {"day0", "day1", "day2"}
    assert "test <- constant 'exp1'" in result.notes[0]
    assert "reference <- template 'audio/{Trial}/orig.wav'" in result.notes[0]
    assert parse_map(["a=b, c = {x}/{y}", "d=e"]) == {"a": "b", "c": "{x}/{y}", "d": "e"}
    out = tmp_path / "m.csv"
    _gml(
        "csv",
        src,
        "--map",
        mapping,
        "--out",
        out,
        "--drop-unmapped",
        "--screen",
        "--hidden-reference",
        "orig",
        "--screening-report",
        tmp_path / "screen.csv",
    )
    m = Manifest.read(out)
    assert "Session" not in m.ratings and set(m.ratings["role"]) == {"hidden_reference", ""}
    rep = pd.read_csv(tmp_path / "screen.csv")
    assert list(rep["excluded"]) == [False, False, False]
    assert "0 of 3 listener(s) screened out" in capsys.readouterr().out


def test_csv_same_named_columns_need_no_map(tmp_path):
    src = tmp_path / "m0.csv"
    pd.DataFrame(
        {
            "test": ["a", "a"],
            "item": ["i", "i"],
            "condition": ["c", "c"],
            "listener": ["x", "y"],
            "score": ["10", "20.5"],
            "reference": ["r.wav", "r.wav"],
            "coded": ["c.wav", "c.wav"],
        }
    ).to_csv(src, index=False)
    result = import_table(src, {}, out_dir=tmp_path, check_audio=False)
    assert list(result.manifest.ratings["score"]) == [10.0, 20.5] and result.missing_audio == 1


def test_csv_errors(tmp_path, capsys):
    src = _table(tmp_path)
    out = tmp_path / "m.csv"
    base = "listener=Listener,item=Trial,condition=Condition,test=exp1"
    err = _fails(
        capsys, "csv", src, "--map", base + ",score=Ratngscore", "--no-audio", "--out", out
    )
    assert "--map score=Ratngscore: 'Ratngscore' is not a column of" in err
    err = _fails(capsys, "csv", src, "--map", base + ",score=Ratingscore", "--out", out)
    assert "no mapping for manifest column(s) reference, coded" in err and "--no-audio" in err
    err = _fails(
        capsys,
        "csv",
        src,
        "--map",
        base + ",score=Ratingscore,reference={Nope}/r.wav",
        "--map",
        "coded=x.wav",
        "--out",
        out,
    )
    assert "field {Nope} is neither a column of" in err
    df = pd.read_csv(src, dtype=str)
    df.loc[4, "Ratingscore"] = "n/a"
    df.to_csv(tmp_path / "bad.csv", index=False)
    err = _fails(
        capsys,
        "csv",
        tmp_path / "bad.csv",
        "--map",
        base + ",score=Ratingscore",
        "--no-audio",
        "--out",
        out,
    )
    assert "bad.csv: row 6, column 'Ratingscore': 'n/a' is not a number" in err
    dup = pd.concat([df.iloc[:3], df.iloc[[0]]]).assign(Ratingscore=50)
    dup.to_csv(tmp_path / "dup.csv", index=False)
    err = _fails(
        capsys,
        "csv",
        tmp_path / "dup.csv",
        "--map",
        base + ",score=Ratingscore",
        "--no-audio",
        "--out",
        out,
    )
    assert "dup.csv: row 5: listener 'L1' rated stimulus exp1/t1/orig again (first at" in err
    err = _fails(
        capsys,
        "csv",
        src,
        "--map",
        base + ",score=Ratingscore",
        "--no-audio",
        "--out",
        out,
        "--screen",
    )
    assert "screening: no hidden-reference or mid-anchor ratings" in err
    err = _fails(
        capsys, "csv", src, "--map", base + ",score=Ratingscore,coded={Listener}.wav",
        "--no-audio", "--out", out,
    )  # fmt: skip
    assert "stimulus exp1/t1/orig has coded file" in err and "expected one file per stimulus" in err
    assert "--map" in _fails(capsys, "csv", src, "--map", "nonsense", "--out", out)
    assert not out.exists()


# -- screening ------------------------------------------------------------------------------


def _panel(ref_scores: dict[str, list[float]], anchor_scores: dict[str, list[float]]):
    rows = []
    for who, refs in ref_scores.items():
        for t, (ref, anc) in enumerate(zip(refs, anchor_scores[who])):
            for cond, s in (("hidden", ref), ("lp70", anc), ("codec", 50.0)):
                rows.append(
                    {
                        "test": "T",
                        "item": f"i{t}",
                        "condition": cond,
                        "listener": who,
                        "score": s,
                        "reference": "r.wav",
                        "coded": f"{cond}.wav",
                    }
                )
    return pd.DataFrame(rows)


def test_screening_rule(tmp_path):
    n = 20
    ok = [100.0] * n
    low = [100.0] * 17 + [80.0] * 3  # 15 %: not more than 15 %, kept
    bad = [100.0] * 16 + [80.0] * 4  # 20 %: out
    anchors = {
        "good": [40.0] * n,
        "edge": [40.0] * n,
        "badref": [40.0] * n,
        "badanchor": [40.0] * 16 + [95.0] * 4,
    }
    df = _panel({"good": ok, "edge": low, "badref": bad, "badanchor": ok}, anchors)
    df.to_csv(tmp_path / "r.csv", index=False)
    result = import_table(tmp_path / "r.csv", {}, out_dir=tmp_path, check_audio=False)
    # off by default: nothing screened, nobody reported
    assert result.screening is None and result.counts()["listeners screened out"] == 0
    assert "screening off" in result.summary()
    with pytest.raises(ImporterError, match="no hidden-reference or mid-anchor"):
        apply_screening(result)
    ratings = assign_roles(result.manifest.ratings, hidden_reference="hidden", anchor="lp.*")
    report = screen_listeners(ratings)
    t = report.table.set_index("listener")
    assert t.loc["edge", "reference_below"] == 3 and not t.loc["edge", "excluded"]
    assert (
        t.loc["badref", "excluded"] and "hidden reference < 90 in 20%" in t.loc["badref", "reason"]
    )
    assert t.loc["badanchor", "excluded"] and "mid anchor > 90" in t.loc["badanchor", "reason"]
    assert sorted(report.excluded()) == [("T", "badanchor"), ("T", "badref")]
    text = report.format()
    assert "2 of 4 listener(s) screened out" in text and "T/good: ref<90 0/20" in text
    with pytest.raises(ImporterError, match="--anchor 'nothing': matches no condition"):
        assign_roles(ratings, anchor="nothing")


# -- SiSEC08 (real ratings, no audio) -------------------------------------------------------


@pytest.mark.skipif(not SISEC.is_file(), reason="needs ../shared/data/sisec08-ratings")
def test_sisec08_ratings_import(tmp_path, capsys):
    out = tmp_path / "sisec.csv"
    _gml(
        "csv",
        SISEC,
        "--no-audio",
        "--out",
        out,
        "--map",
        "test=Testname,item=Trial,condition=Condition,listener=Listener,score=Ratingscore",
    )
    printed = capsys.readouterr().out
    assert "2156 ratings" in printed
    m = Manifest.read(out, check_audio=False)
    got = m.stimuli().set_index(["item", "condition"]).sort_index()
    raw = pd.read_csv(SISEC)
    g = raw.groupby(["Trial", "Condition"])["Ratingscore"]
    n, mean, std = g.size(), g.mean(), g.std(ddof=1)
    ci = scipy.stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)
    assert len(got) == len(n) == 14 * 11
    np.testing.assert_array_equal(got["n_listeners"].to_numpy(), n.to_numpy())
    np.testing.assert_allclose(got["mean"].to_numpy(), mean.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["std"].to_numpy(), std.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["ci95"].to_numpy(), ci.to_numpy(), rtol=1e-12)
    # BS.1534-3 screening with the test's own names, against a direct computation
    _gml(
        "csv",
        SISEC,
        "--no-audio",
        "--out",
        tmp_path / "screened.csv",
        "--screen",
        "--hidden-reference",
        "orig",
        "--anchor",
        "anchor",
        "--map",
        "test=Testname,item=Trial,condition=Condition,listener=Listener,score=Ratingscore",
    )
    ref = raw[raw["Condition"] == "orig"].groupby("Listener")["Ratingscore"]
    anc = raw[raw["Condition"] == "anchor"].groupby("Listener")["Ratingscore"]
    fail = (ref.apply(lambda s: (s < 90).mean()) > 0.15) | (
        anc.apply(lambda s: (s > 90).mean()) > 0.15
    )
    kept = Manifest.read(tmp_path / "screened.csv", check_audio=False).ratings
    assert set(kept["listener"]) == set(fail.index[~fail])
    assert f"{int(fail.sum())} of 14 listener(s) screened out" in capsys.readouterr().out


def test_webmushra_round_trip_fit_and_test(tmp_path, capsys, monkeypatch):
    """webMUSHRA results + config + audio → gml import → gml fit → gml test."""
    trials = tuple(f"trial{k}" for k in range(1, 6))
    root = tmp_path / "wm"
    cfg = _config(root, "t1", trials=trials, seconds=0.5)
    res = _results(
        root / "results" / "t1" / "mushra.csv",
        "t1",
        list(zip(ANSWERS, (40, 50, 60))),
        uuid=True,
        trials=trials,
    )
    out = tmp_path / "data" / "manifest.csv"
    _gml("webmushra", res, "--config", cfg, "--out", out)
    monkeypatch.chdir(tmp_path)
    cli.main(["fit", "--config", "demo", "--data.manifest", str(out), "--data.num_folds", "5",
              "--model.backbone.init_args.preset", "tiny", "--trainer.max_epochs", "1",
              "--trainer.limit_train_batches", "2", "--trainer.accelerator", "cpu",
              "--trainer.enable_progress_bar", "false", "--data.progress", "false"])  # fmt: skip
    run = tmp_path / "runs" / "demo" / "version_0"
    cli.main(["test", "--ckpt", str(run), "--trainer.enable_progress_bar", "false",
              "--data.progress", "false"])  # fmt: skip
    metrics = json.loads((run / "test-best" / "metrics.json").read_text())
    assert list(metrics["test_sets"]) == ["t1", "t1:systems"]  # the importer marked the roles
    assert metrics["test_sets"]["t1"]["n_stimuli"] == 5
    assert 0 < metrics["test_sets"]["t1:systems"]["n_stimuli"] < 5
    assert "anchor35" in pd.read_csv(run / "test-best" / "predictions.csv")["condition"].tolist()
