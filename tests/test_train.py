"""Training as library code: ``gml.train.fit`` is ``gml fit`` in one call, with overrides by
dotted key or by group, and ``configure`` the model and data before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gml.cli import main
from gml.configs import BASES, config_stack, configs_dir
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
        ["demo", later],
        **{
            "data.manifest": str(noise_manifest),
            "data.fold": 2,
            "model.augment+": "gml.augment.CutMix",  # appended, as --model.augment+=... does
        },
    )
    assert [type(a).__name__ for a in model.augment] == ["ChannelSwap", "CutMix"]
    assert datamodule.batch_size == 7 and datamodule.fold == 2  # the later file, then overrides
    assert type(model.head).__name__ == "PointHead"
    assert datamodule.train_target == "mean"  # linked from the head, as on the command line
    assert type(model.backbone).__name__ == "InSENet"  # demo.yaml's, kept


def test_fit_refuses_an_unknown_configuration(tmp_path):
    with pytest.raises(GMLError, match="not a shipped configuration"):
        fit(tmp_path / "missing.yaml")


# -- shipped configurations: the paper's variants stack on gml.yaml ---------------------------


def test_a_shipped_variant_stacks_on_gml_yaml():
    shipped = configs_dir()
    assert config_stack(["cutmix"]) == [str(shipped / "gml.yaml"), str(shipped / "cutmix.yaml")]
    # named with its base, or twice, the base comes once
    assert config_stack(["gml", "cutmix.yaml"]) == config_stack(["cutmix"])
    assert config_stack(["demo"]) == [str(shipped / "demo.yaml")]  # standalone
    assert set(BASES) <= {p.stem for p in shipped.glob("*.yaml")}


def test_the_listening_test_configuration_is_the_measured_row(tmp_path, monkeypatch, capsys):
    """``listening-test`` stacks gml.yaml, censored.yaml and itself, and resolves to the setting
    of the rows docs/results-real.md measured (censored head, small preset, panels, 40 epochs,
    Adam 3e-4, batch 8, L/R swap, no CutMix)."""
    shipped = configs_dir()
    assert config_stack(["listening-test"]) == [
        str(shipped / f"{n}.yaml") for n in ("gml", "censored", "listening-test")
    ]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", "listening-test", "--print_config"])
    assert done.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["head"]["class_path"] == "gml.heads.CensoredLogisticHead"
    assert cfg["model"]["backbone"]["init_args"]["preset"] == "small"
    assert cfg["model"]["optimizer"]["init_args"]["lr"] == pytest.approx(3e-4)
    assert [a["class_path"] for a in cfg["model"]["augment"]] == ["gml.augment.ChannelSwap"]
    assert cfg["data"]["train_on"] == "panels" and cfg["data"]["batch_size"] == 8
    assert cfg["trainer"]["max_epochs"] == 40
    assert cfg["trainer"]["logger"]["init_args"]["name"] == "listening-test"


def test_from_python_a_later_file_updates_the_class_an_earlier_one_chose():
    """``fit``/``configure`` stack files as repeated ``--config`` does: listening-test.yaml sets
    only the backbone's preset, and the backbone stays gml.yaml's InSE-Net (``gml cv`` trains
    through this path)."""
    from gml.backbones import InSENet
    from gml.heads import CensoredLogisticHead
    from gml.train import configure

    model, data = configure("listening-test", data={"progress": False})
    assert isinstance(model.backbone, InSENet)
    size = sum(p.numel() for p in model.backbone.parameters())
    small = sum(p.numel() for p in InSENet("small").parameters())
    assert size == small  # the preset small, not gml.yaml's paper
    assert isinstance(model.head, CensoredLogisticHead)
    assert data.train_on == "panels"


def test_gml_fit_with_a_variant_uses_the_paper_setup(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: found by name
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", "cutmix", "--print_config"])
    assert done.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    paper = yaml.safe_load((configs_dir() / "gml.yaml").read_text())
    assert cfg["trainer"]["max_epochs"] == paper["trainer"]["max_epochs"] == 10
    assert cfg["data"]["val_fraction"] == paper["data"]["val_fraction"]
    assert cfg["model"]["backbone"]["init_args"]["preset"] == "paper"
    assert cfg["trainer"]["logger"]["init_args"]["name"] == "cutmix"  # its own run folder
    augment = [a["class_path"] for a in cfg["model"]["augment"]]
    assert augment == ["gml.augment.ChannelSwap", "gml.augment.CutMix"]
