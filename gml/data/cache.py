"""Feature cache: one gammatone spectrogram per audio file, computed once and reused.

Keys hash the file's absolute path, size and modification time together with the frontend's
settings, so changing either recomputes. Writes are atomic (temporary file + ``os.replace``):
a killed run never leaves a truncated entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from gml.atomic import atomic_write
from gml.data.paths import default_cache_dir
from gml.features import GammatoneFrontend, load_audio
from gml.features.audio import check_duration

CACHE_VERSION = 1


class FeatureCache:
    """Disk-backed map from audio file to its ``[4, bands, T]`` spectrogram (views L, R, M, S).

    Args:
        frontend: The frontend that computes the features (its settings are part of the key).
        cache_dir: Folder for the ``.npy`` entries; default :func:`default_cache_dir` /
            ``features``. ``None`` keeps nothing on disk.
        progress: Show a progress bar while computing missing entries.
    """

    def __init__(
        self,
        frontend: GammatoneFrontend,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ):
        self.frontend = frontend
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "features"
        self.progress = progress
        settings = json.dumps(
            {"v": CACHE_VERSION, **frontend.settings()}, sort_keys=True, default=str
        )
        self._settings_hash = hashlib.sha1(settings.encode()).hexdigest()[:16]

    def key(self, path: str) -> str:
        """Content-stamp key of one audio file under the current frontend settings."""
        st = os.stat(path)
        stamp = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{self._settings_hash}"
        return hashlib.sha1(stamp.encode()).hexdigest()

    def get_many(self, paths: Iterable[str]) -> dict[str, torch.Tensor]:
        """Features of every file, computing (and storing) the ones not cached yet.

        Returns:
            ``{path: tensor [4, bands, T]}`` (float32, CPU).
        """
        paths = sorted(set(paths))
        out: dict[str, torch.Tensor] = {}
        todo: list[tuple[str, Path]] = []
        for p in paths:
            entry = self.dir / f"{self.key(p)}.npy"
            if entry.is_file():
                try:
                    out[p] = torch.from_numpy(np.load(entry))
                    continue
                except (ValueError, OSError, EOFError):
                    pass  # unreadable entry: recompute and overwrite it
            todo.append((p, entry))
        if todo:
            self.dir.mkdir(parents=True, exist_ok=True)
            bar = _progress(len(todo), "gammatone features", self.progress)
            device = next(self.frontend.buffers()).device
            with torch.no_grad():
                for p, entry in todo:
                    rate = self.frontend.settings()["sample_rate"]
                    samples = load_audio(p, rate)
                    check_duration(p, samples.shape[1] / rate, self.frontend.win_length / rate)
                    audio = torch.from_numpy(samples).to(device)
                    spec = self.frontend.spectrogram(audio).float().cpu().contiguous()
                    atomic_write(entry, lambda f, a=spec.numpy(): np.save(f, a))
                    out[p] = spec
                    bar.update(1)
            bar.close()
        return out


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with lightning; stay silent without it
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, dynamic_ncols=True)
