"""Broken and unusual audio through the scoring path (``gml.load(...).predict`` and
``gml predict``): a clear error naming the file, or a finite score with a warning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

import gml
from gml.cli import main
from gml.errors import GMLError, GMLWarning

FS = 48000


@pytest.fixture(scope="module")
def listener(tiny_run):
    return gml.load(tiny_run, device="cpu")


def _write(path, data, rate=FS, subtype="FLOAT"):
    sf.write(path, np.asarray(data, np.float32), rate, subtype=subtype)
    return path


def _tone(seconds=2.0, rate=FS, channels=2, amp=0.3):
    t = np.arange(int(seconds * rate)) / rate
    x = amp * np.sin(2 * np.pi * 440 * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_stereo_reference_with_mono_coded(listener, tmp_path):
    ref = _write(tmp_path / "ref.wav", _tone())
    cod = _write(tmp_path / "cod.wav", _tone(channels=1))
    pred = listener.predict(ref, cod)
    assert (pred.reference_channels, pred.coded_channels) == (2, 1) and math.isfinite(pred.mean)


def test_low_sample_rate_warns(listener, tmp_path):
    ref = _write(tmp_path / "ref.wav", _tone())
    cod = _write(tmp_path / "cod8k.wav", _tone(rate=8000), rate=8000)
    with pytest.warns(GMLWarning, match=r"cod8k\.wav: sample rate 8000 Hz; the bands above 4000"):
        pred = listener.predict(ref, cod)
    assert pred.coded_rate == 8000 and math.isfinite(pred.mean)


def test_length_mismatch_warns_naming_both_files(listener, tmp_path):
    ref = _write(tmp_path / "ref.wav", _tone(2.0))
    cod = _write(tmp_path / "long.wav", _tone(4.0))
    with pytest.warns(
        GMLWarning, match=r"long\.wav is \d\.\d\d s longer than its reference .*ref\.wav"
    ):
        listener.predict(ref, cod)


@pytest.mark.parametrize("which", ["reference", "coded", "both"])
def test_all_zero_signals_give_a_finite_score(listener, tmp_path, which):
    silent = _write(tmp_path / "silent.wav", np.zeros((FS, 2)))
    tone = _write(tmp_path / "tone.wav", _tone(1.0))
    ref = silent if which in ("reference", "both") else tone
    cod = silent if which in ("coded", "both") else tone
    pred = listener.predict(ref, cod)
    assert all(math.isfinite(v) for v in (pred.mean, pred.std, pred.ci95, pred.q05))
    assert pred.delay_ms == 0.0


def test_clipped_full_scale_signal(listener, tmp_path):
    ref = _write(tmp_path / "ref.wav", _tone())
    clipped = np.clip(_tone(amp=4.0), -1.0, 1.0)
    cod = _write(tmp_path / "clip.wav", clipped, subtype="PCM_16")
    assert math.isfinite(listener.predict(ref, cod).mean)


@pytest.mark.parametrize(
    "data, needle",
    [
        (np.full((FS, 2), np.nan), "NaN or infinite"),
        (np.zeros((FS, 3)), "has 3 channels"),
        (np.zeros((100, 2)), "shorter than one 80 ms analysis frame"),
    ],
)
def test_unusable_audio_is_an_error_naming_the_file(listener, tmp_path, data, needle):
    ref = _write(tmp_path / "ref.wav", _tone())
    bad = _write(tmp_path / "bad.wav", data)
    with pytest.raises(GMLError, match=rf"bad\.wav: .*{needle}"):
        listener.predict(ref, bad)


def test_the_cli_answers_bad_audio_in_one_line(tiny_run, tmp_path, capsys):
    ref = _write(tmp_path / "ref.wav", _tone())
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00not audio")
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--ckpt", str(tiny_run), "--reference", str(ref), "--coded",
              str(tmp_path / "junk.wav"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("gml: error: ") and "junk.wav" in err
    assert "Traceback" not in err


def test_the_cli_prints_warnings_as_one_line(tiny_run, tmp_path, capsys):
    ref = _write(tmp_path / "ref.wav", _tone())
    cod = _write(tmp_path / "cod8k.wav", _tone(rate=8000), rate=8000)
    main(["predict", "--ckpt", str(tiny_run), "--reference", str(ref), "--coded", str(cod),
          "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert "gml: warning: " in err and "cod8k.wav: sample rate 8000 Hz" in err


def test_a_test_set_with_no_stimuli_is_one_line(tiny_run, split_manifest, tmp_path, capsys):
    import pandas as pd

    df = pd.read_csv(split_manifest)
    df["split"] = "train"  # nothing left to test after the split filter
    df["reference"] = [str(split_manifest.parent / p) for p in df["reference"]]
    df["coded"] = [str(split_manifest.parent / p) for p in df["coded"]]
    df.to_csv(tmp_path / "no_test.csv", index=False)
    with pytest.raises(SystemExit) as exc:
        main(["test", "--ckpt", str(tiny_run), "--data.manifest", str(tmp_path / "no_test.csv"),
              "--data.progress", "false", "--trainer.enable_progress_bar", "false"])  # fmt: skip
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no_test.csv: no stimuli in the test partition" in err
    assert "Traceback" not in err
