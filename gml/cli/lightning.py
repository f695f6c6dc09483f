"""``gml fit / validate / test``: LightningCLI with gml's defaults, and ``--ckpt`` to evaluate a
trained run with no other argument. The reports themselves are library code
(:mod:`gml.evaluation`); this module parses, chooses folders and prints."""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from gml.atomic import atomic_write_text
from gml.checkpoint import EmbedConfig, ResumePoint, read_config, resolve_checkpoint
from gml.cli import quiet_warnings  # noqa: F401 - re-exported: gml.cli.lightning.quiet_warnings
from gml.cli.precheck import check_resume_folder
from gml.data.datamodule import GMLDataModule
from gml.errors import GMLError, Interrupted
from gml.module import GMLModule
from gml.progress import RunProgress

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

    def __init__(self, args: list[str] | None = None, **kwargs: Any):
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
        # gml prints its own per-test-set table (after_test); Lightning's would repeat it.
        self.trainer.test(**{**kwargs, "verbose": False})

    #: Print the per-test-set table after ``test`` (``gml cv`` prints it at its end instead).
    print_test_report: bool = True

    def after_test(self) -> None:
        from gml import report
        from gml.evaluation import TestReport

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


def _pop_option(args: list[str], flag: str) -> str | None:
    """Remove ``flag VALUE`` / ``flag=VALUE`` from ``args``; return VALUE (None if absent)."""
    for k, a in enumerate(args):
        if a == flag and k + 1 < len(args):
            value = args[k + 1]
            del args[k : k + 2]
            return value
        if a.startswith(flag + "="):
            del args[k]
            return a.split("=", 1)[1]
    return None


#: Where ``gml fit --resume`` keeps a run's metrics.csv while the logger starts.
METRICS_KEPT = ".metrics-before-resume.csv"


def _expand_resume(argv: list[str]) -> list[str]:
    """Turn ``gml fit --resume RUN [...]`` into ``gml fit --config RUN/config.yaml [...]
    --ckpt_path RUN/last.ckpt`` with the logger writing on into ``RUN`` (not a new version).

    Raises:
        GMLError: RUN is not a run folder with ``config.yaml`` and ``last.ckpt``.
    """
    if not argv or argv[0] != "fit":
        return argv
    rest = list(argv[1:])
    run = _pop_option(rest, "--resume")
    if run is None:
        return argv
    run_dir = check_resume_folder(run)
    # Lightning's CSVLogger deletes an existing metrics.csv when it starts: keep it aside,
    # GMLCLI.before_fit puts it back (ResumePoint then makes it the one last.ckpt recorded,
    # for checkpoints written before gml recorded it: as it is) and the run appends to it
    kept = run_dir / METRICS_KEPT
    if (run_dir / "metrics.csv").is_file() and not kept.exists():
        os.replace(run_dir / "metrics.csv", kept)
    logger = [
        "--trainer.logger.init_args.save_dir", str(run_dir.parent.parent),
        "--trainer.logger.init_args.name", run_dir.parent.name,
        "--trainer.logger.init_args.version", run_dir.name,
    ]  # fmt: skip
    return ["fit", "--config", str(run_dir / "config.yaml"), *logger, *rest,
            "--ckpt_path", str(run_dir / "last.ckpt")]  # fmt: skip


def _expand_ckpt(argv: list[str]) -> tuple[list[str], str | None]:
    """Turn ``gml test --ckpt X [...]`` into ``gml test --config <X's config> --ckpt_path X
    --trainer.logger false [...]`` (same for ``--ckpt_path X`` without ``--config``).

    Returns the new argv and a temporary config file for the caller to delete.
    """
    if not argv or argv[0] not in EVAL_SUBCOMMANDS:
        return argv, None
    rest = list(argv[1:])
    ckpt = _pop_option(rest, "--ckpt") or _pop_option(rest, "--ckpt_path")
    if ckpt is None:
        return argv, None
    if any(a == "--config" or a.startswith("--config=") for a in rest):
        return [argv[0], *rest, "--ckpt_path", ckpt], None  # the user's config wins
    ckpt = str(resolve_checkpoint(ckpt))
    cfg = read_config(ckpt)
    cfg.setdefault("trainer", {})["logger"] = False
    cfg.setdefault("checkpoint", {})["dirpath"] = str(Path(ckpt).resolve().parent)
    fd, tmp = tempfile.mkstemp(prefix="gml-ckpt-config-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return [argv[0], "--config", tmp, "--ckpt_path", ckpt, *rest], tmp


def _resumed_folder(argv: list[str]) -> Path | None:
    """The run folder a ``fit`` resumes from its ``last.ckpt`` (``--ckpt_path RUN/last.ckpt``),
    if it is still resumable."""
    for k, a in enumerate(argv[:-1]):
        if a == "--ckpt_path" and Path(argv[k + 1]).name == "last.ckpt":
            folder = Path(argv[k + 1]).parent
            if (folder / "config.yaml").is_file() and (folder / "last.ckpt").is_file():
                return folder
    return None


class _NoTestReportCLI(GMLCLI):
    print_test_report = False


def run(argv: list[str], print_report: bool = True) -> GMLCLI:
    """Run one LightningCLI subcommand (``--ckpt`` expanded); errors propagate.
    ``print_report=False``: ``test`` writes its reports without printing its table.

    Raises:
        Interrupted: a signal stopped it; for ``fit`` with a ``last.ckpt`` to resume from, its
            ``resume`` is the ``gml fit --resume`` command that continues the run.
    """
    argv, tmp = _expand_ckpt(_expand_resume(list(argv)))
    try:
        return (GMLCLI if print_report else _NoTestReportCLI)(args=argv)
    except Interrupted as err:
        folder = err.folder if err.folder is not None else _resumed_folder(argv)
        if argv and argv[0] == "fit" and folder is not None and err.resume is None:
            err.resume = f"gml fit --resume {shlex.quote(str(folder))}"
        raise
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


__all__ = ["EmbedConfig", "GMLCLI", "run", "run_folder"]
