"""Which checkpoint file a ``--ckpt`` value names, and which run folder ``--resume`` can
continue. Light (no torch), so that the command line
can check paths before it imports Lightning."""

from __future__ import annotations

import os
from pathlib import Path

from gml.errors import GMLError

__all__ = ["check_checkpoint_file", "check_resume_folder", "resolve_checkpoint"]


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


#: How a file that ``torch.save`` wrote begins: a zip archive (the default since torch 1.6),
#: or a pickle (the legacy format, protocol 2 or above).
_CHECKPOINT_STARTS = (b"PK\x03\x04", b"\x80")


def check_checkpoint_file(path: str | os.PathLike) -> None:
    """Refuse at once a file that cannot be a PyTorch checkpoint, from its first bytes
    (before torch, or anything slow to import, is needed).

    Raises:
        GMLError: not a file ``torch.save`` writes (the message names the file).
    """
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError as err:
        raise GMLError(f"{path}: cannot be read ({err.strerror})") from None
    if not start.startswith(_CHECKPOINT_STARTS):
        raise GMLError(
            f"{path}: not a readable PyTorch checkpoint (it does not begin as a file torch.save "
            "writes); give the best.ckpt or last.ckpt of a 'gml fit' run, or its folder"
        )
