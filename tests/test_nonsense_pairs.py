"""Pairs that can be scored but whose score means little: unrelated signals, a silent coded
signal, a very short excerpt, mono against stereo. Each gives one ``GMLWarning`` line (printed
by the CLI as ``gml: warning: ...``) and a ``warnings`` entry in the result, and the score
stays finite."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import gml
from gml.cli import main
from gml.errors import GMLWarning

FS = 48000


@pytest.fixture(scope="module")
def listener(tiny_run):
    return gml.load(tiny_run, device="cpu")


def _write(path, data, rate=FS):
    sf.write(path, np.asarray(data, np.float32), rate, subtype="FLOAT")
    return str(path)


def _music(seconds=2.0, channels=2, seed=0):
    """Tones with a slow tremolo plus a little noise: something a codec would code."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    x = 0.2 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x = x + 0.1 * np.sin(2 * np.pi * 990 * t) + 0.01 * rng.standard_normal(len(t))
    return np.stack([x, 0.8 * x], axis=1) if channels == 2 else x


@pytest.fixture
def files(tmp_path):
    """A reference, a coded version of it, and the nonsense partners."""
    rng = np.random.default_rng(1)
    ref = _music()
    return {
        "reference": _write(tmp_path / "ref.wav", ref),
        "coded": _write(tmp_path / "cod.wav", ref + 0.01 * rng.standard_normal(ref.shape)),
        "other": _write(tmp_path / "other.wav", 0.2 * rng.standard_normal(ref.shape)),
        "silent": _write(tmp_path / "silent.wav", np.zeros_like(ref)),
        "quiet": _write(tmp_path / "quiet.wav", ref * 10 ** (-55 / 20)),  # ~ -75 dBFS bands
        "mono": _write(tmp_path / "mono.wav", ref[:, 0]),
        "mono_ref": _write(tmp_path / "mono_ref.wav", ref[:, 0]),
        "short_ref": _write(tmp_path / "short_ref.wav", ref[: int(0.2 * FS)]),
        "short_cod": _write(tmp_path / "short_cod.wav", ref[: int(0.2 * FS)] * 0.9),
    }


#: (reference, coded, a regular expression the one warning must match)
CASES = {
    "unrelated": (
        "reference",
        "other",
        r"other\.wav and its reference .*ref\.wav look unrelated: their waveforms correlate "
        r"at most 0\.\d\d \(below 0\.1\)",
    ),
    "silent": ("reference", "silent", r"silent\.wav is silent \(all its bands at the features"),
    "near-silent": (
        "reference",
        "quiet",
        r"quiet\.wav is near-silent \(its loudest band peaks at -7\d dBFS",
    ),
    "short": (
        "short_ref",
        "short_cod",
        r"short_cod\.wav and its reference .*short_ref\.wav last 0\.20 s, less than 1 s",
    ),
    "mono coded": (
        "reference",
        "mono",
        r"mono\.wav is mono and its reference .*ref\.wav stereo; the mono one is used as L = R",
    ),
    "stereo coded": (
        "mono_ref",
        "coded",
        r"cod\.wav is stereo and its reference .*mono_ref\.wav mono",
    ),
}


def test_a_regular_pair_has_no_warnings(listener, files, recwarn):
    pred = listener.predict(files["reference"], files["coded"])
    assert pred.warnings == []
    assert not [w for w in recwarn if issubclass(w.category, GMLWarning)]


@pytest.mark.parametrize("case", list(CASES))
def test_each_nonsense_pair_warns_once_and_says_so_in_the_result(listener, files, case):
    ref, cod, pattern = CASES[case]
    with pytest.warns(GMLWarning) as caught:
        pred = listener.predict(files[ref], files[cod])
    messages = [str(w.message) for w in caught if issubclass(w.category, GMLWarning)]
    assert len(messages) == 1 and pred.warnings == messages
    assert len(messages[0].splitlines()) == 1
    assert re.search(pattern, messages[0]), messages[0]
    assert all(math.isfinite(v) for v in (pred.mean, pred.std, pred.ci95, pred.q05, pred.q95))


def test_lists_carry_a_warnings_column_also_from_worker_processes(tiny_run, files):
    """A DataFrame of many pairs has one list of warnings per row; the worker-process
    reading path (the peaks read on the model's device, the delay searched in the workers
    or, as on a GPU, batched on the model's device) gives the same lines as the one-pair
    path."""
    refs = [files["reference"], files["reference"], files["reference"], files["short_ref"]]
    cods = [files["coded"], files["other"], files["silent"], files["short_cod"]]
    for workers, on_device in ((0, False), (1, False), (1, True)):
        with gml.load(tiny_run, device="cpu", workers=workers) as lis:
            lis.delay_on_device = on_device  # (the GPU default) delays_of_heads_torch
            with pytest.warns(GMLWarning):
                frame = lis.predict(refs, cods, progress=False)
        assert list(frame["warnings"].map(len)) == [0, 1, 1, 1]
        assert "look unrelated" in frame["warnings"][1][0]
        assert "is silent" in frame["warnings"][2][0]
        assert "last 0.20 s" in frame["warnings"][3][0]
        assert np.isfinite(frame["mean"]).all()


@pytest.mark.parametrize("case", list(CASES))
def test_the_cli_prints_each_warning_as_one_line(tiny_run, files, tmp_path, capsys, case):
    ref, cod, pattern = CASES[case]
    out = tmp_path / "p.json"
    main(["predict", "--ckpt", str(tiny_run), "--reference", files[ref], "--coded", files[cod],
          "--out", str(out), "--no-progress"])  # fmt: skip
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gml: w")]
    assert len(lines) == 1 and lines[0].startswith("gml: warning: ")
    assert re.search(pattern, lines[0]), lines[0]
    obj = json.loads(out.read_text())
    assert obj["warnings"] == [lines[0][len("gml: warning: ") :]]


def test_csv_and_json_lists_carry_the_warnings(tiny_run, files, tmp_path, capsys):
    pd.DataFrame(
        {"reference": [files["reference"]] * 2, "coded": [files["coded"], files["silent"]]}
    ).to_csv(tmp_path / "pairs.csv", index=False)
    for suffix in ("csv", "json"):
        main(["predict", "--ckpt", str(tiny_run), "--pairs", str(tmp_path / "pairs.csv"),
              "--out", str(tmp_path / f"preds.{suffix}"), "--no-progress"])  # fmt: skip
    capsys.readouterr()
    table = pd.read_csv(tmp_path / "preds.csv", keep_default_na=False)
    assert table["warnings"][0] == "" and "silent.wav is silent" in table["warnings"][1]
    records = json.loads((tmp_path / "preds.json").read_text())
    assert records[0]["warnings"] == [] and len(records[1]["warnings"]) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_the_same_warnings_and_intervals(tiny_run, files):
    """On a GPU, with worker processes (the delay searched and the peaks read on the
    device) and without (the thread path), the same lines and slider intervals as on CPU."""
    refs = [files["reference"], files["reference"], files["reference"], files["mono_ref"]]
    cods = [files["coded"], files["other"], files["quiet"], files["coded"]]
    with pytest.warns(GMLWarning):
        cpu = gml.load(tiny_run, device="cpu").predict(refs, cods, progress=False)
    for workers in (0, 2):
        with gml.load(tiny_run, device="cuda", workers=workers) as lis:
            with pytest.warns(GMLWarning):
                gpu = lis.predict(refs, cods, progress=False)
        assert list(gpu["warnings"].map(len)) == [0, 1, 1, 1]
        for a, b in zip(cpu["warnings"], gpu["warnings"]):
            # the same checks fire; figures in them may differ in the last digit
            assert [x.split(":")[0] for x in a] == [x.split(":")[0] for x in b]
        for col in ("ci95_low", "ci95_high", "slider_mean", "slider_std"):
            np.testing.assert_allclose(gpu[col], cpu[col], atol=1e-3)
