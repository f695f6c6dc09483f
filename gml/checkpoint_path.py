"""Which checkpoint file a ``--ckpt`` value names, and which run folder ``--resume`` can
continue. Light (no torch), so that the command line
can check paths before it imports Lightning."""

from __future__ import annotations

import os
from pathlib import Path

from gml.errors import GMLError

__all__ = ["check_resume_folder", "resolve_checkpoint"]


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


def check_resume_folder(run: str) -> Path:
    """The run folder ``gml fit --resume RUN`` names, if it can be resumed.

    Raises:
        GMLError: RUN has no ``config.yaml`` or no ``last.ckpt``.
    """
    run_dir = Path(run).expanduser().resolve()
    missing = [n for n in ("config.yaml", "last.ckpt") if not (run_dir / n).is_file()]
    if missing:
        raise GMLError(
            f"{run_dir}: not a resumable run folder (no {' or '.join(missing)}); expected the "
            "folder 'gml fit' printed when it started"
        )
    return run_dir
