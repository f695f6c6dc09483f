"""Where gml keeps generated data (one definition, used by the feature cache and the demo)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$GML_CACHE_DIR``, else ``$XDG_CACHE_HOME/gml``, else ``~/.cache/gml`` (``~`` expanded)."""
    env = os.environ.get("GML_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "gml"
