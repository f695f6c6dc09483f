"""The configurations shipped with gml (YAML files in this folder), found by name from any
folder: ``gml fit --config demo``, :func:`gml.train.fit` ``("demo")``. Light: no torch, so the
command line resolves them before it imports Lightning.

The paper's variants (a head, an augmentation) hold only what differs from ``gml.yaml``, the
paper's setup: their trainer, data and backbone are its. Naming one stacks ``gml.yaml`` before
it, as ``--config gml --config cutmix`` would (:func:`config_stack`)."""

from __future__ import annotations

import os
from pathlib import Path

from gml.errors import GMLError

__all__ = ["BASES", "config_stack", "configs_dir", "resolve_config"]

#: Shipped configurations stacked on another one (file stem → its base's stem; a base may
#: have its own).
BASES = {
    **{
        name: "gml"
        for name in (
            "beta",
            "censored",
            "cutmix",
            "gaussian",
            "mixture",
            "mixup",
            "nongml",
            "nongml_cutmix",
        )
    },
    "listening-test": "censored",
}


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


def config_stack(values: list[str]) -> list[str]:
    """The files that ``--config`` values stand for, in order: each value resolved
    (:func:`resolve_config`), a shipped variant preceded by its base (:data:`BASES`) unless
    the base is already in the stack.

    Raises:
        GMLError: a value that is neither a file nor a shipped configuration.
    """
    stack: list[str] = []
    for value in values:
        path = resolve_config(value)
        base = _shipped_base(path)
        if base is not None:
            base_stack = config_stack([base])
            if not any(Path(p).resolve() == Path(base_stack[-1]).resolve() for p in stack):
                stack += base_stack
        stack.append(path)
    return stack


def _shipped_base(path: str) -> str | None:
    """The base of a shipped variant (its file in this folder), else None."""
    if path.lstrip().startswith("{") or not os.path.isfile(path):
        return None
    file = Path(path).resolve()
    if file.parent != configs_dir() or file.stem not in BASES:
        return None
    return str(configs_dir() / f"{BASES[file.stem]}.yaml")
