"""README.md's Python examples run as written."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from .conftest import write_pair

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(after_heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(after_heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {after_heading!r}"
    return match.group(1)


def test_python_api_example_runs_as_written(tiny_run, tmp_path, monkeypatch, capsys):
    run = tmp_path / "runs" / "demo" / "version_0"
    run.mkdir(parents=True)
    shutil.copy(tiny_run / "best.ckpt", run / "best.ckpt")
    ref, cod = write_pair(tmp_path)
    ref.rename(tmp_path / "reference.wav")
    cod.rename(tmp_path / "coded.wav")
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_block("### Python API"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "mean " in out and "95 % CI" in out and "noise-test" in out
    assert (run / "test-best" / "metrics.json").is_file()


def test_head_example_runs_as_written(tmp_path, monkeypatch):
    (tmp_path / "my_heads.py").write_text(_python_block("## Adding a distribution head"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import torch

    from gml.heads import get_head

    head = get_head("my_heads.CauchyHead")
    head.build(8)
    dist = head(torch.zeros(3, 8))
    assert dist.batch_shape == (3,) and bool((dist.scale > 0).all())
    sys.modules.pop("my_heads", None)


@pytest.mark.parametrize("command", ["pip install . && gml fit --config configs/demo.yaml",
                                     'pip install ".[test]" && pytest'])  # fmt: skip
def test_readme_keeps_the_two_commands(command):
    assert command in README.read_text(encoding="utf-8")


def test_heads_doc_example_runs_as_written(tmp_path, monkeypatch):
    """docs/heads.md's complete example, saved as a module, builds a head that gives a
    distribution with the contract's methods."""
    doc = README.parent / "docs" / "heads.md"
    code = re.search(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S).group(1)
    assert len(code.strip().splitlines()) <= 30
    (tmp_path / "doc_heads.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import torch

    from gml.heads import DistributionHead

    module = importlib.import_module("doc_heads")
    heads = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, DistributionHead) and v is not DistributionHead
    ]
    assert heads
    head = heads[0]()
    head.build(8)
    dist = head(torch.randn(4, 8))
    scores = torch.full((4,), 60.0)
    assert dist.batch_shape == (4,) and torch.isfinite(head.nll(dist, scores)).all()
    assert torch.isfinite(dist.mean).all() and torch.isfinite(dist.stddev).all()
    sys.modules.pop("doc_heads", None)


def test_python_api_example_shows_the_numbers_with_long_paths(tiny_run, tmp_path, capsys):
    """With real (long) file paths, the example's table still prints every column it names
    (pandas' default printing would hide the middle ones behind '...')."""
    deep = tmp_path.joinpath(*["a-long-folder-name-of-a-listening-test"] * 4)
    ref, cod = write_pair(deep)
    block = _python_block("### Python API")
    start = block.index("table = listener.predict")
    code = block[start : block.index("\n", block.index("print(table"))]
    code = code.replace('"reference.wav"', repr(str(ref))).replace('"coded.wav"', repr(str(cod)))
    import gml

    exec(compile(code, "README.md", "exec"), {"listener": gml.load(tiny_run, device="cpu")})
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "coded" in line)
    assert header.split() == ["coded", "mean", "ci95", "q05", "q95"]
    assert not any("..." in line for line in lines)
    assert sum(str(cod) in line for line in lines) == 1


def test_readme_lists_every_command():
    from gml.cli import EXTRA_COMMANDS, LIGHTNING_COMMANDS

    text = README.read_text(encoding="utf-8")
    listed = re.search(r"`gml --help` lists the commands \(([^)]*)\)", text).group(1)
    assert sorted(re.findall(r"`([a-z]+)`", listed)) == sorted(
        [*LIGHTNING_COMMANDS, *EXTRA_COMMANDS]
    )


def test_importers_doc_names_no_folder_a_user_does_not_have():
    """docs/importers.md is read by users, who have no ``../shared`` development folder."""
    doc = (README.parent / "docs" / "importers.md").read_text(encoding="utf-8")
    assert "shared/" not in doc
