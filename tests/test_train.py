"""Training as library code: ``gml.train.fit`` is ``gml fit`` in one call, with overrides by
dotted key or by group, and ``configure`` the model and data before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gml.errors import GMLError
from gml.train import configure, fit

from .conftest import fit_tiny


def _tiny(manifest: Path, root: Path) -> dict:
    """The settings of conftest.fit_tiny, as fit() overrides."""
    return {
        "data.manifest": str(manifest),
        "data.progress": False,
        "model": {"backbone": {"init_args": {"preset": "tiny"}}},
        "trainer": {
            "max_epochs": 1,
            "limit_train_batches": 3,
            "accelerator": "cpu",
            "enable_progress_bar": False,
        },
        "trainer.logger.init_args.save_dir": str(root / "runs"),
    }


def _config(run: Path) -> dict:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["trainer"]["logger"]["init_args"].pop("save_dir")  # the runs' own folders differ
    return cfg


def test_fit_trains_as_gml_fit_does(noise_manifest, tmp_path):
    by_command = fit_tiny(noise_manifest, tmp_path / "cli")
    result = fit("demo", **_tiny(noise_manifest, tmp_path / "lib"))
    assert result.run_dir == tmp_path / "lib" / "runs" / "demo" / "version_0"
    assert result.best == result.run_dir / "best.ckpt" and result.best.is_file()
    assert (result.run_dir / "last.ckpt").is_file()
    # the same configuration as the command line's, the backbone's other arguments kept
    assert _config(result.run_dir) == _config(by_command)
    assert _config(result.run_dir)["model"]["backbone"]["init_args"]["preset"] == "tiny"
    assert result.datamodule.manifest_path() == noise_manifest.resolve()


def test_configure_stacks_files_and_overrides(noise_manifest, tmp_path):
    later = tmp_path / "later.yaml"
    later.write_text(
        "data:\n  batch_size: 7\nmodel:\n  head:\n    class_path: gml.heads.PointHead\n"
    )
    model, datamodule = configure(
        ["demo", later], **{"data.manifest": str(noise_manifest), "data.fold": 2}
    )
    assert datamodule.batch_size == 7 and datamodule.fold == 2  # the later file, then overrides
    assert type(model.head).__name__ == "PointHead"
    assert datamodule.train_target == "mean"  # linked from the head, as on the command line
    assert type(model.backbone).__name__ == "InSENet"  # demo.yaml's, kept


def test_fit_refuses_an_unknown_configuration(tmp_path):
    with pytest.raises(GMLError, match="not a shipped configuration"):
        fit(tmp_path / "missing.yaml")
