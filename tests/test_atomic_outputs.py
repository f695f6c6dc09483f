"""Every output gml writes is atomic: the source writes files only through ``gml.atomic``
(checked here over the whole package), and a writer interrupted at the last moment leaves the
previous file and no temporary behind (checked through real commands)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

import gml
from gml.cli import main

from .conftest import write_pair

PACKAGE = Path(gml.__file__).resolve().parent

#: Calls that write a file directly (first argument a path or an open file).
DIRECT_WRITERS = {"to_csv", "to_json", "savefig", "save", "dump", "write", "write_text",
                  "write_bytes"}  # fmt: skip

#: Where a direct write is right, and why.
ALLOWED = {
    # the primitive itself
    "atomic.py",
    # the demo corpus is generated inside a temporary folder that is renamed into place as a
    # whole (and a killed generator's folder is removed by the next run: tests/test_demo.py)
    "data/demo/install.py",
    # the --ckpt expansion writes a private temporary config, deleted after the run
    "cli/lightning.py",
    # figures render into an in-memory buffer, which gml.atomic writes (plots.save_png)
    "plots.py",
}


def _direct_writes(path: Path) -> list[str]:
    """``file:line call`` of each direct write in a module (``open(..., "w"/"a"/"x")``,
    ``.to_csv(path)``, ``torch.save(obj, path)``, ``json.dump(obj, f)``, ...)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name in ("open", "fdopen"):
            modes = [a for a in node.args[1:2]] + [
                k.value for k in node.keywords if k.arg == "mode"
            ]
            for m in modes:
                if isinstance(m, ast.Constant) and any(c in str(m.value) for c in "wax"):
                    found.append(f"{path.name}:{node.lineno} {name}(..., {m.value!r})")
        elif name in DIRECT_WRITERS and name not in ("write", "dump"):
            # x.to_csv() with no path returns text (then written atomically): not a write
            if node.args or any(
                k.arg in ("path_or_buf", "path", "f", "fname") for k in node.keywords
            ):
                found.append(f"{path.name}:{node.lineno} .{name}(...)")
        elif name == "dump" and len(node.args) >= 2:
            found.append(f"{path.name}:{node.lineno} dump(obj, file)")
        elif name == "write" and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in ("sf", "soundfile", "np", "numpy"):
                found.append(f"{path.name}:{node.lineno} {owner.id}.write(...)")
    return found


def test_the_package_writes_files_only_through_gml_atomic():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED:
            continue
        offenders += [f"{rel}: {w}" for w in _direct_writes(path)]
    # a write in a lambda handed to gml.atomic (atomic_write(path, lambda f: ...)) is fine
    offenders = [o for o in offenders if not _inside_atomic_lambda(o)]
    assert not offenders, "direct (non-atomic) writes:\n" + "\n".join(offenders)


def _inside_atomic_lambda(entry: str) -> bool:
    rel, rest = entry.split(": ", 1)
    line = int(rest.split(":", 1)[1].split(" ", 1)[0])
    source = (PACKAGE / rel).read_text().splitlines()[line - 1]
    return "atomic_write(" in source and "lambda f" in source


def test_the_scan_finds_direct_writes(tmp_path):
    """The scan above is not vacuous: it flags each kind of direct write."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import json, torch\n"
        "def f(df, obj, path):\n"
        "    df.to_csv(path)\n"
        "    torch.save(obj, path)\n"
        "    with open(path, 'w') as fh:\n"
        "        json.dump(obj, fh)\n"
        "    text = df.to_csv(index=False)\n"
    )
    found = _direct_writes(sample)
    assert len(found) == 4, found


@pytest.fixture
def failing_rename(monkeypatch):
    """Make the rename at the end of every atomic write fail, as a kill at that moment would."""
    real = os.replace

    def fail(src, dst, *a, **k):
        if Path(str(src)).name.endswith(".tmp"):
            raise OSError("simulated crash before the rename")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", fail)


def _no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*.tmp")]


def test_predict_out_interrupted_keeps_the_old_file(tiny_run, tmp_path, failing_rename, capsys):
    ref, cod = write_pair(tmp_path / "audio")
    out = tmp_path / "preds.json"
    out.write_text('{"old": true}\n')
    with pytest.raises(SystemExit):
        main(["predict", "--ckpt", str(tiny_run), "--reference", str(ref), "--coded", str(cod),
              "--out", str(out), "--no-progress"])  # fmt: skip
    assert json.loads(out.read_text()) == {"old": True}
    assert _no_temporaries(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "gml: error: simulated crash before the rename"  # one line, no traceback


def test_import_interrupted_keeps_the_old_manifest(noise_manifest, tmp_path, failing_rename):
    out = tmp_path / "m.csv"
    out.write_text("old\n")
    with pytest.raises(SystemExit):
        main(["import", "csv", str(noise_manifest), "--out", str(out)])
    assert out.read_text() == "old\n"
    assert _no_temporaries(tmp_path)


def test_feature_cache_interrupted_leaves_no_entry(tmp_path, failing_rename):
    """A cache entry is either complete or absent: after a failed write the next reader
    computes it again instead of loading a partial array."""
    import numpy as np
    import soundfile as sf

    from gml.data.cache import FeatureCache
    from gml.features import GammatoneFrontend

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros((48000, 2), dtype=np.float32) + 0.1, 48000)
    cache = FeatureCache(GammatoneFrontend(), tmp_path / "cache", progress=False)
    with pytest.raises(OSError, match="simulated crash"):
        cache.get_many([(str(wav), 0)])
    entries = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert all(not p.name.endswith(".npy") for p in entries), entries
    assert _no_temporaries(tmp_path)


def test_evaluation_reports_interrupted_leave_old_files(tiny_run, tmp_path, failing_rename):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text('{"old": 1}\n')
    with pytest.raises(OSError, match="simulated crash"):
        gml.evaluate(tiny_run, out_dir=out, plots=False)
    assert json.loads((out / "metrics.json").read_text()) == {"old": 1}
    assert not (out / "predictions.csv").exists()
    assert _no_temporaries(tmp_path)
