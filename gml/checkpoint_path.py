"""Which checkpoint file a ``--ckpt`` value names. Light (no torch), so that the command line
can check paths before it imports Lightning."""

from __future__ import annotations

import os
from pathlib import Path

from gml.errors import GMLError

__all__ = ["resolve_checkpoint"]


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file that ``path`` names: the file itself, or inside a run folder its
    ``best.ckpt`` (else its only ``.ckpt``).

    Raises:
        GMLError: nothing there, or a folder with no / several checkpoints and no ``best.ckpt``
            (the message lists what is there).
    """
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        if (p / "best.ckpt").is_file():
            return p / "best.ckpt"
        found = sorted(q.name for q in p.glob("*.ckpt"))
        if len(found) == 1:
            return p / found[0]
        listing = ", ".join(found) if found else "no .ckpt files"
        raise GMLError(f"{p}: is a folder without best.ckpt ({listing}); name the checkpoint file")
    raise GMLError(f"{p}: checkpoint not found")
