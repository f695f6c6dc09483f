"""Checks of ``gml fit/validate/test`` arguments that need neither torch nor Lightning: the
files they name exist, and a manifest reads (columns, values, audio files). They run before
Lightning is imported, so that a mistyped path answers at once, not after the imports and
start-up messages.
LightningCLI and the data module check everything again, fully, later."""

from __future__ import annotations

import os
from pathlib import Path

from gml.checkpoint_path import check_resume_folder, resolve_checkpoint
from gml.errors import GMLError

__all__ = ["check_resume_folder", "precheck"]

BUILTIN_PREFIX = "builtin:"


def _values(args: list[str], flag: str) -> list[str]:
    """Every value of ``flag VALUE`` / ``flag=VALUE`` in ``args``, in order."""
    out = []
    for k, a in enumerate(args):
        if a == flag and k + 1 < len(args):
            out.append(args[k + 1])
        elif a.startswith(flag + "="):
            out.append(a.split("=", 1)[1])
    return out


def _manifest_in_config(path: str) -> str | None:
    """``data.manifest`` of a YAML config (plain or ``class_path``/``init_args`` form)."""
    import yaml

    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None  # LightningCLI reports an unreadable config with its own message
    data = cfg.get("data") if isinstance(cfg, dict) else None
    if isinstance(data, dict) and isinstance(data.get("init_args"), dict):
        data = data["init_args"]
    value = data.get("manifest") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def precheck(argv: list[str]) -> None:
    """Fail fast on a missing manifest, checkpoint or resume folder.

    Args:
        argv: ``[subcommand, options...]`` as given to ``gml`` (configs already resolved).

    Raises:
        GMLError: naming the missing file and what was expected there.
    """
    rest = argv[1:]
    # a later --config or --data.manifest overrides an earlier one, as in LightningCLI
    manifest = None
    for k, a in enumerate(rest):
        if a == "--config" and k + 1 < len(rest) and os.path.isfile(rest[k + 1]):
            manifest = _manifest_in_config(rest[k + 1]) or manifest
        elif a.startswith("--config=") and os.path.isfile(a.split("=", 1)[1]):
            manifest = _manifest_in_config(a.split("=", 1)[1]) or manifest
        elif a == "--data.manifest" and k + 1 < len(rest):
            manifest = rest[k + 1]
        elif a.startswith("--data.manifest="):
            manifest = a.split("=", 1)[1]
    if manifest and not manifest.startswith(BUILTIN_PREFIX):
        if not Path(manifest).expanduser().is_file():
            raise GMLError(f"{manifest}: manifest file not found (data.manifest)")
        from gml.data.manifest import Manifest  # pandas only, no torch

        Manifest.read(Path(manifest).expanduser())  # columns, values, audio files present
    for flag in ("--ckpt", "--ckpt_path"):
        for value in _values(rest, flag):
            resolve_checkpoint(value)
    for value in _values(rest, "--resume"):
        check_resume_folder(value)
