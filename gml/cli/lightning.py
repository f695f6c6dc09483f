"""``gml fit / validate / test``: the command line of :class:`gml.train.GMLCLI` (LightningCLI
with gml's defaults), ``--resume`` to continue a killed run and ``--ckpt`` to evaluate a
trained run with no other argument. Training and the reports are library code
(:mod:`gml.train`, :mod:`gml.evaluation`); this module parses, chooses folders and prints."""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

import yaml

from gml.checkpoint import EmbedConfig, read_config, resolve_checkpoint
from gml.errors import Interrupted
from gml.train import EVAL_SUBCOMMANDS, GMLCLI, resume_settings, run_folder


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
    _, settings = resume_settings(run)
    config, ckpt = settings.pop("config"), settings.pop("ckpt_path")
    logger = [a for key, value in settings.items() for a in (f"--{key}", value)]
    return ["fit", "--config", config, *logger, *rest, "--ckpt_path", ckpt]


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
