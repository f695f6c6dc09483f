"""Feature cache: one gammatone spectrogram per audio file, computed once and reused.

Entries are keyed by a hash of the audio file's **content** (not its path), together with the
frontend's settings: a copied or moved corpus hits the cache, and an edited file or another
frontend setting misses it. Hashing reads every file once per process; a small index
(``stamps.json``: path, size and modification time → content hash) lets later runs skip
re-hashing unchanged files.

Every write is atomic (temporary file + ``os.replace``), so concurrent writers (dataloader
workers, DDP ranks, two runs) never corrupt an entry and a killed writer leaves at most a
hidden temporary file. An entry that cannot be read, or has the wrong shape or non-finite
values (a truncated or damaged file), is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from gml.atomic import atomic_write, atomic_write_text
from gml.data.paths import default_cache_dir
from gml.features import GammatoneFrontend
from gml.features.stream import streamed_spectrogram

CACHE_VERSION = 2  # 2: content-hash keys, features by streamed_spectrogram
_CHUNK = 1 << 20


def content_hash(path: str | os.PathLike) -> str:
    """SHA-1 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class FeatureCache:
    """Disk-backed map from audio file to its ``[4, bands, T]`` spectrogram (views L, R, M, S).

    Args:
        frontend: The frontend that computes the features (its settings are part of the key).
        cache_dir: Folder for the ``.npy`` entries; default :func:`default_cache_dir` /
            ``features``. ``None`` keeps nothing on disk.
        progress: Show a progress bar while computing missing entries.
        workers: Files computed at once (default: the number of CPU cores); features come
            from :func:`~gml.features.stream.streamed_spectrogram`, exactly as a trained
            listener computes them, on the frontend's device.
    """

    #: Files computed at once when ``workers`` is not given (None: the number of CPU cores);
    #: ``gml features --workers`` sets it for the caches the data module makes.
    default_workers: int | None = None
    #: Entries computed, and entries read from disk, by all caches of this process (a
    #: diagnostic: ``gml features`` reports them, tests check that nothing is recomputed).
    computed: int = 0
    read: int = 0

    def __init__(
        self,
        frontend: GammatoneFrontend,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
        workers: int | None = None,
    ):
        self.frontend = frontend
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "features"
        self.progress = progress
        self.workers = max(1, workers or self.default_workers or os.cpu_count() or 1)
        settings = json.dumps(
            {"v": CACHE_VERSION, **frontend.settings()}, sort_keys=True, default=str
        )
        self._settings_hash = hashlib.sha1(settings.encode()).hexdigest()[:16]
        self._stamps: dict[str, str] | None = None

    # -- keys -----------------------------------------------------------------------------

    def _stamp(self, path: str) -> str:
        st = os.stat(path)
        return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"

    def _load_stamps(self) -> dict[str, str]:
        if self._stamps is None:
            try:
                self._stamps = json.loads((self.dir / "stamps.json").read_text())
            except (OSError, ValueError):
                self._stamps = {}  # missing or damaged index: files are hashed again
        return self._stamps

    def digest(self, path: str) -> str:
        """Content hash of an audio file (remembered by path, size and mtime)."""
        stamps = self._load_stamps()
        stamp = self._stamp(path)
        digest = stamps.get(stamp)
        if digest is None:
            digest = stamps[stamp] = content_hash(path)
        return digest

    def key(self, path: str, skip: int = 0) -> str:
        """Key of one audio file (with ``skip`` samples dropped from its start, to remove a
        codec delay) under the current frontend settings."""
        extra = f"|skip{skip}" if skip else ""
        return hashlib.sha1(
            f"{self.digest(path)}|{self._settings_hash}{extra}".encode()
        ).hexdigest()

    def delays(self, pairs: list[tuple[str, str]]) -> list[int]:
        """Codec delay of each (reference, coded) pair in samples at the frontend's rate
        (:func:`~gml.features.delay.estimate_delay`), remembered by content in
        ``delays.json``.
        """
        from gml.features.delay import estimate_delay

        path = self.dir / "delays.json"
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        rate = int(self.frontend.settings()["sample_rate"])
        out, added = [], False
        todo = {}
        for ref, cod in pairs:
            todo[(ref, cod)] = f"{self.digest(ref)}|{self.digest(cod)}|{rate}"
        missing = [(pair, k) for pair, k in todo.items() if k not in known]
        if missing:
            bar = progress_bar(len(missing), "codec delays", self.progress)
            with ThreadPoolExecutor(self.workers) as pool, _cancel_on_exit(pool):
                futures = [(k, pool.submit(estimate_delay, *pair, rate)) for pair, k in missing]
                for k, fut in futures:
                    known[k] = fut.result().samples
                    added = True
                    bar.update(1)
            bar.close()
        out = [int(known[todo[pair]]) for pair in pairs]
        if added:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(known))
        self._save_stamps()
        return out

    def _save_stamps(self) -> None:
        if self._stamps:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.dir / "stamps.json", json.dumps(self._stamps))

    # -- entries --------------------------------------------------------------------------

    def _read(self, entry: Path) -> torch.Tensor | None:
        """A valid entry, or None (missing, truncated, wrong shape, non-finite)."""
        if not entry.is_file():
            return None
        try:
            a = np.load(entry)
        except (ValueError, OSError, EOFError):
            return None
        bands = self.frontend.num_bands
        if a.ndim != 3 or a.shape[:2] != (4, bands) or a.shape[2] < 1 or not np.isfinite(a).all():
            return None
        return torch.from_numpy(a)

    def _compute(self, path: str, skip: int, entry: Path) -> torch.Tensor:
        spec, _ = streamed_spectrogram(path, self.frontend, skip_samples=skip)
        spec = spec.float().contiguous()
        atomic_write(entry, lambda f, a=spec.numpy(): np.save(f, a))
        return spec

    def get_many(self, items: Iterable[str | tuple[str, int]]) -> dict:
        """Features of every file, computing (and storing) the ones not cached yet.

        Args:
            items: Paths, or ``(path, skip)`` pairs: the file with ``skip`` samples (at the
                frontend's rate) dropped from its start.

        Returns:
            ``{item: tensor [4, bands, T]}`` (float32, CPU), keyed by the items as given.

        Raises:
            gml.features.AudioError: a file that cannot be used (named in the message).
        """
        unique = sorted(set(items), key=str)
        out: dict = {}
        todo: list[tuple[object, str, int, Path]] = []
        for item in unique:
            path, skip = (item, 0) if isinstance(item, str) else item
            entry = self.dir / f"{self.key(path, skip)}.npy"
            cached = self._read(entry)
            if cached is not None:
                out[item] = cached
                FeatureCache.read += 1
            else:
                todo.append((item, path, skip, entry))
        self._save_stamps()
        if todo:
            self.dir.mkdir(parents=True, exist_ok=True)
            bar = progress_bar(len(todo), "gammatone features", self.progress)
            with torch.no_grad(), ThreadPoolExecutor(self.workers) as pool, _cancel_on_exit(pool):
                # threads: decoding, resampling and the FFTs release the GIL
                futures = [(it, pool.submit(self._compute, p, k, e)) for it, p, k, e in todo]
                for item, fut in futures:
                    out[item] = fut.result()
                    FeatureCache.computed += 1
                    bar.update(1)
            bar.close()
        return out


class _cancel_on_exit:
    """On an exception (an interrupt, a file that fails), cancel the files not started yet:
    the pool's own exit would compute every one of them before the exception goes on."""

    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool):
    """A progress bar over ``total`` files on stderr (a no-op when not ``enabled``, or
    without tqdm), for the cache, the commands and the listener."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with lightning; stay silent without it
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, dynamic_ncols=True)
