"""Training as library code: :func:`fit` trains a listener from a configuration (a shipped
name, YAML files stacked in order, and keyword overrides) the way ``gml fit`` does, into a run
folder with ``best.ckpt``, ``last.ckpt`` and ``config.yaml``.

:class:`GMLCLI` is the one assembly behind both: LightningCLI with gml's defaults (checkpoints
and the config in the run folder, CSV logging, Adam 1e-4, resumable runs). ``gml fit`` hands it
the command line; :func:`fit` hands it configuration files and a dictionary of overrides, so
``gml cv`` and a notebook train without building a command line.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from gml import report
from gml.atomic import atomic_write_text
from gml.checkpoint import EmbedConfig, ResumePoint
from gml.checkpoint_path import check_resume_folder
from gml.configs import config_stack
from gml.cpu_inference import CpuInferenceTrunk
from gml.data.datamodule import GMLDataModule
from gml.errors import GMLError
from gml.evaluation import TestReport
from gml.module import GMLModule
from gml.progress import RunProgress

__all__ = ["FitResult", "GMLCLI", "configure", "fit", "resume_settings", "run_folder"]

#: The subcommands whose ``--ckpt`` option evaluates a trained run.
EVAL_SUBCOMMANDS = ("validate", "test")


def run_folder(trainer: Trainer) -> Path:
    """The folder of this run: the CSV/TensorBoard logger's version folder, or
    ``save_dir/name/version`` for other loggers (whose ``log_dir`` is just ``save_dir``)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    logger = trainer.logger
    if logger is None or isinstance(logger, (CSVLogger, TensorBoardLogger)):
        return Path(trainer.log_dir or os.getcwd()).resolve()
    parts = [str(p) for p in (logger.name, logger.version) if p]
    return Path(logger.save_dir or os.getcwd(), *parts).resolve()


class GMLCLI(LightningCLI):
    """LightningCLI with gml's defaults: best/last checkpoints and the config in the run
    folder, CSV logging, Adam 1e-4, and test reports written beside the checkpoint."""

    def __init__(self, args: list[str] | _FitRequest | None = None, **kwargs: Any):
        self._runs = kwargs.get("run", True)  # False: parse and instantiate, no subcommand
        super().__init__(
            GMLModule,
            GMLDataModule,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            trainer_defaults={
                "logger": {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": "runs", "name": "gml"},
                },
            },
            # errors come back as exceptions so that main() reports them as one line
            parser_kwargs={
                "description": "Generative Machine Listener: MUSHRA score distributions from audio pairs.",
                "exit_on_error": False,
            },
            args=args,
            **kwargs,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # `gml predict` is gml's own command (audio pairs, not a datamodule): see gml.cli.predict
        return {k: v for k, v in LightningCLI.subcommands().items() if k != "predict"}

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any):
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        # handled by gml.cli before LightningCLI parses; declared here so --help shows them
        if subcommand in EVAL_SUBCOMMANDS:
            parser.add_argument(
                "--ckpt", help="a gml checkpoint or run folder: evaluate it with no other option"
            )
        if subcommand == "fit":
            parser.add_argument("--resume", help="continue a killed run (its run folder)")
            parser.add_argument("--verbose", action="store_true", help="keep Lightning's messages")
        parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
        if "weights_only" in parser.get_defaults():
            # gml checkpoints hold tensors and plain values only: read them without unpickling
            # code, and say so (Lightning would otherwise note its own default each time)
            parser.set_defaults(weights_only=True)
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # last.ckpt: every epoch end, during epochs (last_checkpoint.every_minutes), on signals
        parser.add_lightning_class_args(ResumePoint, "last_checkpoint")
        # the model owns its frontend and its head declares its training target: the data
        # module gets both from the model, so they cannot disagree
        parser.link_arguments("model.frontend", "data.frontend", apply_on="instantiate")
        parser.link_arguments(
            "model.head", "data.train_target", compute_fn=_head_target, apply_on="instantiate"
        )
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.filename": "best",
                # last.ckpt is gml's own (last_checkpoint): Lightning's would be a second file
                "checkpoint.save_last": False,
                "checkpoint.auto_insert_metric_name": False,
                "model.optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-4}},
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if not isinstance(args, _FitRequest):
            super().parse_arguments(parser, args)  # a command line (gml fit / test / validate)
            return
        # fit(): the configuration files stacked in order, parsed as repeated --config options
        # are (a later file that sets only some init_args of a class, as listening-test.yaml
        # the backbone's preset, updates the class an earlier file chose), then the overrides
        # set on the parsed configuration (so a nested class keeps its class_path), and the
        # whole checked again
        sub = self._parser("fit" if self._runs else None)
        cfg = sub.parse_args([a for path in args.configs for a in ("--config", path)])
        for key, value in args.overrides.items():
            _set(cfg, key, value)
        cfg = sub.parse_object({}, namespace=cfg)
        self.config = Namespace(subcommand="fit", fit=cfg) if self._runs else cfg

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as err:
            # a constructor rejected a configured value (e.g. an unknown preset)
            raise GMLError(f"invalid configuration: {err}") from err

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if self.subcommand != "fit":
            # only training writes a run folder; evaluating must not drop config.yaml in cwd
            trainer.callbacks = [
                c for c in trainer.callbacks if not isinstance(c, SaveConfigCallback | ResumePoint)
            ]
        return trainer

    # -- fit ------------------------------------------------------------------------------

    def before_fit(self) -> None:
        check = getattr(self.datamodule, "check_input", None)
        if callable(check):
            check()  # a bad manifest is reported before a run folder exists
        run_dir = run_folder(self.trainer)
        config_yaml = self._config_yaml()
        for cb in self.trainer.callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                cb.dirpath = str(run_dir)
            if isinstance(cb, ModelCheckpoint) and Path(cb.dirpath).resolve() == run_dir:
                cb.save_last = False  # ResumePoint writes the one last.ckpt (older configs: True)
            if isinstance(cb, ResumePoint) and cb.dirpath is None and not self.trainer.fast_dev_run:
                cb.dirpath = run_dir
            if isinstance(cb, SaveConfigCallback):
                cb.save_to_log_dir = False  # written below, into the run folder, atomically
        if self.trainer.is_global_zero and not self.trainer.fast_dev_run:
            if self.trainer.logger is not None:
                self.trainer.logger.experiment  # noqa: B018 - let the logger create its folder first
            if (run_dir / METRICS_KEPT).is_file():  # resumed: the earlier epochs' rows stay
                os.replace(run_dir / METRICS_KEPT, run_dir / "metrics.csv")
            atomic_write_text(run_dir / "config.yaml", config_yaml)
            # said now, so that a run killed before it ends still tells where it went
            print(f"gml: run folder {run_dir}", flush=True)
        self.trainer.callbacks.append(EmbedConfig(config_yaml))
        self.trainer.callbacks.append(RunProgress())  # one line over all epochs, with an ETA
        self.trainer.callbacks.append(CpuInferenceTrunk())  # validation on CPU as fast as scoring

    def fit(self, **kwargs: Any) -> None:
        # checkpoint callbacks last, callbacks added after the trainer was built included (as
        # Lightning orders them): ResumePoint then sees a batch's signal at that batch's end
        callbacks = self.trainer.callbacks
        self.trainer.callbacks = [c for c in callbacks if not isinstance(c, Checkpoint)] + [
            c for c in callbacks if isinstance(c, Checkpoint)
        ]
        self.trainer.fit(**kwargs)

    def before_instantiate_classes(self) -> None:
        # a relative logger save_dir (the configs' "runs") lives under default_root_dir
        cfg = self.config.get(self.subcommand) if self.subcommand else self.config
        trainer = cfg.get("trainer") if cfg is not None else None
        root = trainer.get("default_root_dir") if trainer is not None else None
        logger = trainer.get("logger") if trainer is not None else None
        init = getattr(logger, "init_args", None)
        save_dir = getattr(init, "save_dir", None) if init is not None else None
        if root and save_dir and not os.path.isabs(str(save_dir)):
            init.save_dir = os.path.join(str(root), str(save_dir))

    def _config_yaml(self) -> str:
        parser = self._parser(self.subcommand)
        cfg = yaml.safe_load(parser.dump(self.config[self.subcommand], skip_none=False))
        for key in ("config", "ckpt_path", "ckpt", "resume", "debug", "verbose", "weights_only"):
            cfg.pop(key, None)
        # the frontend's settings as used, so a later gml keeps computing the same features
        frontend = self.model.frontend
        cfg.setdefault("model", {})["frontend"] = {
            "class_path": f"{type(frontend).__module__}.{type(frontend).__qualname__}",
            "init_args": frontend.settings(),
        }
        data = cfg.get("data") or {}
        # paths must mean the same thing when the checkpoint is used from another folder
        if data.get("manifest"):
            data["manifest"] = GMLDataModule.resolve_source(data["manifest"])
        if data.get("cache_dir"):
            data["cache_dir"] = str(Path(data["cache_dir"]).expanduser().resolve())
        return yaml.safe_dump(cfg, sort_keys=False)

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero or self.trainer.fast_dev_run:
            return
        ckpt = self.trainer.checkpoint_callback
        run_dir = Path(
            ckpt.dirpath if ckpt is not None and ckpt.dirpath else (self.trainer.log_dir or ".")
        )
        best = ckpt.best_model_path if ckpt is not None else ""
        lines = [f"gml: finished; run folder {run_dir}"]
        if best:
            score = ckpt.best_model_score
            lines.append(
                f"  best.ckpt  {best}"
                + (f"  ({ckpt.monitor} = {float(score):.4f})" if score is not None else "")
            )
        last = [c.path for c in self.trainer.callbacks if isinstance(c, ResumePoint) and c.saved]
        if last:
            lines.append(f"  last.ckpt  {last[0]}")
        if (run_dir / "config.yaml").is_file():
            lines.append(f"  config     {run_dir / 'config.yaml'}")
        if best:
            lines.append(f"next: gml test --ckpt {shlex.quote(best)}")
        print("\n".join(lines), flush=True)

    # -- test -----------------------------------------------------------------------------

    def test(self, **kwargs: Any) -> None:
        # the reports (metrics.json, predictions.csv, plots) come from a TestReport callback:
        # one beside the checkpoint unless the configuration brought its own
        if not any(isinstance(c, TestReport) for c in self.trainer.callbacks):
            self.trainer.callbacks.append(TestReport())
        # gml prints its own per-test-set table (after_test); Lightning's would repeat it.
        self.trainer.test(**{**kwargs, "verbose": False})

    #: Print the per-test-set table after ``test`` (``gml cv`` prints it at its end instead).
    print_test_report: bool = True

    def after_test(self) -> None:
        if not self.trainer.is_global_zero or not self.print_test_report:
            return
        reports = [c for c in self.trainer.callbacks if isinstance(c, TestReport)]
        evaluation = reports[0].evaluation if reports else None
        if evaluation is None or not evaluation.results:
            return
        print("\n" + report.format_evaluation(evaluation), flush=True)


def _head_target(head) -> str:
    """What a head trains on (linked into ``data.train_target``)."""
    return getattr(head, "target", "scores")


#: Where ``gml fit --resume`` keeps a run's metrics.csv while the logger starts.
METRICS_KEPT = ".metrics-before-resume.csv"


@dataclass
class _FitRequest:
    """What :func:`fit` hands :class:`GMLCLI` instead of a command line."""

    configs: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)


def _set(cfg: Namespace, key: str, value: Any) -> None:
    """Set ``key`` (dotted) in a parsed configuration. A dictionary without ``class_path`` on
    a key that holds a configured class or group updates it key by key, as dotted command-line
    options would (``model={"backbone": {"init_args": {"preset": "tiny"}}}`` keeps the
    backbone's class and its other arguments); a key ending in ``+`` appends to a list, as
    ``--model.augment+=gml.augment.CutMix`` does on the command line."""
    if key.endswith("+"):
        key = key[:-1]
        current = cfg.get(key) if key in cfg else None
        cfg[key] = [*(current or []), *(value if isinstance(value, list) else [value])]
        return
    current = cfg.get(key) if key in cfg else None
    if isinstance(value, Mapping) and "class_path" not in value and isinstance(current, Namespace):
        for k, v in value.items():
            _set(cfg, f"{key}.{k}", v)
    else:
        cfg[key] = value


def _flatten(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword overrides as dotted keys: ``trainer={"max_epochs": 3}`` and
    ``**{"trainer.max_epochs": 3}`` mean the same."""
    return {str(k): v for k, v in overrides.items()}


@dataclass
class FitResult:
    """What :func:`fit` trained.

    Attributes:
        trainer: The Lightning trainer after ``fit`` (its callbacks, its logger).
        model: The trained :class:`~gml.module.GMLModule` (weights of the last step).
        datamodule: The :class:`~gml.data.GMLDataModule` it trained on.
        run_dir: The run folder (``config.yaml``, ``metrics.csv``, checkpoints).
        best: ``best.ckpt`` (lowest validation loss), None when none was written
            (``fast_dev_run``).
    """

    trainer: Trainer
    model: LightningModule
    datamodule: GMLDataModule
    run_dir: Path
    best: Path | None


def resume_settings(run: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """What continues a killed run in its own folder: the folder, and the settings to train
    with (its ``config.yaml``'s logger writing on into the same version folder, and its
    ``last.ckpt``). Lightning's CSV logger deletes an existing ``metrics.csv`` when it starts:
    it is kept aside here, and :class:`GMLCLI` puts it back so the run appends to it.

    Returns:
        ``(run_dir, {"config": run_dir/config.yaml, "trainer.logger.init_args.save_dir": ...,
        "ckpt_path": run_dir/last.ckpt})``.

    Raises:
        GMLError: ``run`` is not a run folder with ``config.yaml`` and ``last.ckpt``.
    """
    run_dir = check_resume_folder(str(run))
    kept = run_dir / METRICS_KEPT
    if (run_dir / "metrics.csv").is_file() and not kept.exists():
        os.replace(run_dir / "metrics.csv", kept)
    return run_dir, {
        "config": str(run_dir / "config.yaml"),
        "trainer.logger.init_args.save_dir": str(run_dir.parent.parent),
        "trainer.logger.init_args.name": run_dir.parent.name,
        "trainer.logger.init_args.version": run_dir.name,
        "ckpt_path": str(run_dir / "last.ckpt"),
    }


def fit(
    config: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    *,
    resume: str | os.PathLike | None = None,
    **overrides: Any,
) -> FitResult:
    """Train a listener, as ``gml fit`` does.

    Args:
        config: A shipped configuration's name (``"demo"``), a YAML file, or several stacked
            in order (later files win, as repeated ``--config``).
        resume: A run folder killed before it finished: train on from its ``last.ckpt`` in
            the same folder (its ``config.yaml`` comes first; ``config`` is stacked on it).
        **overrides: Settings on top of the files, by dotted key or by group:
            ``fit("demo", trainer={"max_epochs": 3}, seed_everything=1)`` or
            ``fit("demo", **{"data.fold": 2})``; ``ckpt_path`` continues from a checkpoint.

    Returns:
        A :class:`FitResult` (trainer, model, data module, run folder, ``best.ckpt``).

    Raises:
        GMLError: a configuration that cannot be used (unknown file, invalid value, a manifest
            that does not read).
        Interrupted: a signal stopped training (``err.folder``: the run folder to resume).
    """
    request = _request(config, overrides)
    if resume is not None:
        _, resumed = resume_settings(resume)
        request.configs.insert(0, resumed.pop("config"))
        request.overrides = {**resumed, **request.overrides}
    cli = GMLCLI(args=request)
    return FitResult(cli.trainer, cli.model, cli.datamodule, run_folder(cli.trainer), best_of(cli))


def configure(
    config: str | os.PathLike | Sequence[str | os.PathLike] | None = None, **overrides: Any
) -> tuple[GMLModule, GMLDataModule]:
    """The model and data module a :func:`fit` with these arguments would train, untrained
    (for checks before training: the manifest it reads, the head's target)."""
    cli = GMLCLI(args=_request(config, overrides), run=False)
    return cli.model, cli.datamodule


def _request(config, overrides: Mapping[str, Any]) -> _FitRequest:
    """Resolved configuration files (shipped names found) and dotted overrides."""
    configs = (
        [] if config is None else [config] if isinstance(config, str | os.PathLike) else config
    )
    return _FitRequest(config_stack([str(c) for c in configs]), _flatten(overrides))


def best_of(cli: LightningCLI) -> Path | None:
    """The best checkpoint a finished ``fit`` wrote (None when it wrote none)."""
    ckpt = cli.trainer.checkpoint_callback
    path = getattr(ckpt, "best_model_path", "") if ckpt is not None else ""
    return Path(path) if path else None
