"""The configurations shipped with gml (YAML files in this folder), found by name from any
folder: ``gml fit --config demo``, :func:`gml.train.fit` ``("demo")``. Light: no torch, so the
command line resolves them before it imports Lightning."""

from __future__ import annotations

import os
from pathlib import Path

from gml.errors import GMLError

__all__ = ["configs_dir", "resolve_config"]


def configs_dir() -> Path:
    """The folder of the configurations shipped inside the package."""
    return Path(__file__).resolve().parent


def resolve_config(value: str) -> str:
    """A ``--config`` value: an existing file as given, else a shipped configuration of that
    name (``cutmix``, ``cutmix.yaml`` or ``configs/cutmix.yaml`` from any folder).

    Raises:
        GMLError: neither a file nor a shipped configuration (the message lists those).
    """
    if os.path.isfile(value) or value.lstrip().startswith("{"):
        return value
    name = Path(value).name
    for candidate in (name, f"{name}.yaml"):
        shipped = configs_dir() / candidate
        if shipped.is_file():
            return str(shipped)
    known = ", ".join(sorted(p.stem for p in configs_dir().glob("*.yaml")))
    raise GMLError(f"{value}: config file not found, and not a shipped configuration ({known})")
