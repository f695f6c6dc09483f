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
