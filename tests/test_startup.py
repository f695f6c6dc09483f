"""Scoring needs no trainer: a listener is built from a checkpoint without Lightning, and a
file that is not a checkpoint is refused before anything slow is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

import gml
from gml.checkpoint import load_module, read_config
from gml.errors import GMLError

from .conftest import write_pair

_SCORE_AND_LIST_MODULES = """
import json, sys
import gml
lis = gml.load(sys.argv[1], device="cpu")
pred = lis.predict(sys.argv[2], sys.argv[3])
print(json.dumps({"mean": pred.mean, "modules": sorted(sys.modules)}))
"""


def test_loading_and_scoring_import_no_lightning(tiny_run, tmp_path):
    """``import gml; gml.load(ckpt).predict(...)`` in a fresh process: neither Lightning nor
    the training module is imported (nor pandas: one pair makes no table, nor the slow parts
    of scipy and jsonargparse), and the score is the one of the training module."""
    ref, cod = write_pair(tmp_path, seconds=1.5)
    r = subprocess.run(
        [sys.executable, "-c", _SCORE_AND_LIST_MODULES, str(tiny_run), str(ref), str(cod)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    heavy = [
        m for m in out["modules"] if m.split(".")[0] in ("lightning", "pytorch_lightning", "pandas")
    ]
    assert heavy == []
    # nor what costs a fresh process tenths of a second and scoring does not need: scipy's
    # special functions and FFT (gml.student_t, numpy's FFT), jsonargparse's parser (a
    # checkpoint's resolved configuration is built directly)
    slow = {"scipy.special", "scipy.fft", "scipy.stats", "jsonargparse"}
    assert slow.isdisjoint(out["modules"])
    assert "gml.module" not in out["modules"] and "gml.checkpoint" not in out["modules"]
    from gml.listener import Listener

    trained = Listener(load_module(tiny_run / "best.ckpt"), device="cpu").predict(ref, cod)
    assert out["mean"] == pytest.approx(trained.mean, abs=1e-5)


def test_the_scoring_model_equals_the_training_module(tiny_run):
    """The network rebuilt for scoring holds the training module's weights and gives its
    distribution for the same features."""
    from gml.scoring.model import load_scoring_model

    scoring = load_scoring_model(tiny_run)
    module = load_module(tiny_run)
    assert scoring.state_dict().keys() == module.state_dict().keys()
    x = torch.rand(2, 4, 2, module.frontend.num_bands, 40) * 60
    with torch.no_grad():
        a, b = scoring(x), module(x)
    assert torch.allclose(a.mean, b.mean) and torch.allclose(a.stddev, b.stddev)
    assert scoring.checkpoint_config == read_config(tiny_run)  # as the file carries it


@pytest.mark.parametrize("content", [b"reference,coded\na.wav,b.wav\n", b"", b"RIFF0000WAVE"])
def test_a_file_that_is_not_a_checkpoint_is_refused_at_once(tmp_path, content):
    """A CSV, an empty file or a WAV given as the checkpoint: one line naming the file, in a
    fresh process well under a second after ``import gml`` (torch is not even imported)."""
    bad = tmp_path / "pairs.csv"
    bad.write_bytes(content)
    with pytest.raises(GMLError, match=r"pairs\.csv: not a readable PyTorch checkpoint"):
        gml.load(bad)
    code = (
        "import sys, time, gml\n"
        "t = time.perf_counter()\n"
        "try:\n    gml.load(sys.argv[1])\n"
        "except gml.errors.GMLError:\n    pass\n"
        "print(time.perf_counter() - t, 'torch' in sys.modules)\n"
    )
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    seconds, torch_imported = r.stdout.split()
    assert float(seconds) < 1.0 and torch_imported == "False"
    assert elapsed < 10.0  # interpreter start and `import gml` included, on a busy machine


def test_parameters_are_left_uninitialised_only_in_the_calling_thread():
    """Building a model whose weights are loaded next skips the random initialisation of its
    parameters, in the building thread alone, and leaves torch.nn.init as it was."""
    import threading

    from torch import nn

    from gml.checkpoint_file import parameters_uninitialised

    before = nn.init.kaiming_uniform_
    built = {}
    with parameters_uninitialised():
        torch.manual_seed(0)
        mine = nn.Linear(64, 64)
        other = threading.Thread(target=lambda: built.update(layer=nn.Linear(64, 64)))
        other.start()
        other.join()
        norm = nn.BatchNorm1d(8)
    assert nn.init.kaiming_uniform_ is before
    torch.manual_seed(0)
    fresh = nn.Linear(64, 64)
    assert not torch.equal(mine.weight, fresh.weight)  # not initialised
    # the other thread initialised as usual: kaiming-uniform bounds, not raw memory
    assert built["layer"].weight.abs().max() <= 1 / 8 + 1e-6 and built["layer"].weight.std() > 0
    assert torch.equal(norm.running_var, torch.ones(8))  # buffers as usual


def test_a_hand_written_configuration_still_builds_through_jsonargparse():
    """A section that is not the resolved class_path/init_args form (a short form written by
    hand) is built by jsonargparse; a wrong key is reported in one line naming the file."""
    from gml.checkpoint_file import instantiate
    from gml.scoring.model import ScoringModel

    model = instantiate(
        ScoringModel,
        "model",
        {"backbone": {"class_path": "gml.backbones.InSENet"}, "head": "gml.heads.GaussianHead"},
        "hand.yaml",
    )
    assert type(model.head).__name__ == "GaussianHead"
    with pytest.raises(GMLError, match="hand.yaml: cannot rebuild the model"):
        instantiate(ScoringModel, "model", {"no_such_key": 1}, "hand.yaml")


def test_gml_predict_as_its_own_process_writes_its_result_whole(tiny_run, tmp_path):
    """``gml predict`` run as a process (which skips the interpreter's last garbage walk)
    prints its result and leaves a complete, strictly parseable JSON file."""
    ref, cod = write_pair(tmp_path, seconds=1.5)
    out = tmp_path / "p.json"
    r = subprocess.run(
        [sys.executable, "-m", "gml", "predict", "--ckpt", str(tiny_run)]
        + ["--reference", str(ref), "--coded", str(cod), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "mean" in r.stdout
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
