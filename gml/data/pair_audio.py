"""Reading reference/coded pairs in DataLoader worker processes, to keep a GPU fed.

On a GPU the model and the gammatone frontend take about a millisecond per 10 s pair, while
decoding and resampling take several milliseconds of CPU time and the CPU delay search tens.
A :class:`PairFeed` spreads the reading over worker processes, kept from one list of pairs
to the next, and leaves the rest to the device: each item is one pair's audio as stored
(16-bit files at the frontend's rate as integers, others decoded and resampled to float32),
packed per batch into shared memory and page-locked by a few threads (so the copy to the GPU
runs asynchronously, in one transfer). The main process
(:meth:`gml.scoring.prepare.PairPreparer.batch`) turns the integers into floats in one pass (:func:`device_samples`), cuts
the signals into a zero-padded batch with one gather (:func:`gather_signals`), searches the
codec delays of the whole batch at once (:func:`gml.features.delay.delays_of_heads_torch`)
and runs the frontend on the batch. Batches hold pairs of similar length (sorted by file
size), at most ``batch_seconds`` of audio, so memory stays bounded.

The audio is the same as :meth:`gml.listener.Listener` reads in its own thread path
(soundfile's floats, the same polyphase resampler, the same delays); the spectrogram of a
whole waveform equals the blockwise one to float rounding (tested).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from gml.features.audio import check_duration, conform_audio, read_audio
from gml.features.device import values_on
from gml.features.stream import AudioInfo

__all__ = [
    "PairAudio",
    "PairFeed",
    "collate_pairs",
    "device_samples",
    "gather_signals",
    "length_batches",
    "signal",
    "signal_layout",
    "signal_length",
]


class PairAudio(Dataset):
    """One reference/coded pair per item, read and checked (see the module docstring).

    Args:
        references, coded: Audio file paths, pair ``i`` is ``(references[i], coded[i])``.
        sample_rate: The frontend's rate; both signals are resampled to it.
        min_seconds: Shortest usable signal (one analysis frame).
        align: Estimate the codec delay (to be dropped from the start of the later signal).
        delay_on_device: Leave the delay search to the caller's device when both files are
            at ``sample_rate`` (:func:`gml.features.delay.delays_of_heads_torch`); ``delay`` is
            then None.

    An item is a dict: ``index``; ``reference`` and ``coded``, each ``("pcm16", samples)``
    (16-bit files at ``sample_rate``: the integers as stored, ``[n, channels]``, turned into
    floats on the device, as soundfile would: ``/ 32768``) or ``("float", samples)``
    (anything else: float32 ``[2, n]`` at ``sample_rate``, as :func:`~gml.features.load_audio`
    gives it); ``reference_info``, ``coded_info`` (:class:`AudioInfo` of the files as read),
    ``delay`` (samples at ``sample_rate``, not yet removed; None: search it) and
    ``correlation`` (the delay search's normalised correlation; None when not searched here).
    A pair that cannot be used gives ``index`` and ``error`` (the exception, naming the
    file), so that the caller decides what to raise.
    """

    def __init__(
        self,
        references: Sequence[str | os.PathLike],
        coded: Sequence[str | os.PathLike],
        sample_rate: int,
        min_seconds: float,
        align: bool = True,
        delay_on_device: bool = False,
    ):
        if len(references) != len(coded):
            raise ValueError(f"{len(references)} references but {len(coded)} coded files")
        self.references = [os.fspath(p) for p in references]
        self.coded = [os.fspath(p) for p in coded]
        self.sample_rate = int(sample_rate)
        self.min_seconds = float(min_seconds)
        self.align = bool(align)
        self.delay_on_device = bool(delay_on_device)

    def __len__(self) -> int:
        return len(self.references)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.read(index, self.references[index], self.coded[index])

    def read(self, index: int, reference: str, coded: str) -> dict[str, Any]:
        """The item of the pair ``(reference, coded)``, numbered ``index`` (any list's; the
        workers of :class:`PairFeed` read pairs named in their tasks, so that they can be kept
        from one list to the next)."""
        try:
            return self._read(index, reference, coded)
        except Exception as err:  # handed to the main process, which raises it
            return {"index": index, "error": err}

    def _file(self, path: str) -> tuple[str, np.ndarray, int, AudioInfo]:
        """``(kind, samples, file_rate, info)`` of one file (:func:`read_audio`, integers
        for 16-bit files at the target rate), at least one analysis frame long."""
        data, rate = read_audio(path, integers_at=self.sample_rate)
        info = AudioInfo(path, rate, data.shape[1], data.shape[0])
        seconds = -(-info.samples * self.sample_rate // rate) / self.sample_rate
        check_duration(path, seconds, self.min_seconds)
        return ("pcm16" if data.dtype == np.int16 else "float"), data, rate, info

    def _read(self, index: int, reference: str, coded: str) -> dict[str, Any]:
        files = [self._file(p) for p in (reference, coded)]
        delay: int | None = 0
        correlation = None  # of the delay search (None: not searched here)
        if self.align:
            same_rate = files[0][2] == files[1][2] == self.sample_rate
            if self.delay_on_device and same_rate:
                delay = None  # the caller searches, on its device
            else:  # estimate_delay's own reading, on the samples already decoded
                from gml.features.delay import HEAD_SECONDS, delay_of_mono, mono_head

                monos = []
                for kind, data, rate, _ in files:
                    head = data[: max(1, math.ceil(HEAD_SECONDS * rate))]
                    if kind == "pcm16":
                        head = head.astype(np.float32) * np.float32(1 / 32768)
                    monos.append((mono_head(head, HEAD_SECONDS, rate), rate))
                found = delay_of_mono(*monos, self.sample_rate)
                delay, correlation = found.samples, found.correlation
        out: dict[str, Any] = {"index": index, "delay": delay, "correlation": correlation}
        for key, (kind, data, rate, info) in zip(("reference", "coded"), files):
            if kind == "float":
                data = conform_audio(data, rate, self.sample_rate)
            out[key] = (kind, data)
            out[f"{key}_info"] = info
        return out


def length_batches(
    references: Sequence[str | os.PathLike],
    coded: Sequence[str | os.PathLike],
    bytes_per_batch: int,
    max_pairs: int,
) -> list[list[int]]:
    """Pair indices grouped into batches of similar length: sorted by the pair's file sizes
    (a proxy for length that needs no decoding), cut where a batch would exceed
    ``bytes_per_batch`` of files or ``max_pairs`` pairs (a pair larger than the budget is a
    batch of its own). Missing files sort first; their workers report them.
    """

    def size(path: str | os.PathLike) -> int:
        try:
            return os.path.getsize(path)
        except OSError:
            return 0

    sizes = np.array([size(r) + size(c) for r, c in zip(references, coded)], dtype=np.int64)
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in np.argsort(sizes, kind="stable").tolist():
        if current and (used + sizes[i] > bytes_per_batch or len(current) >= max_pairs):
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += int(sizes[i])
    if current:
        batches.append(current)
    return batches


#: The signals of an item, packed into one buffer per kind and batch by :func:`collate_pairs`.
SIGNALS = ("reference", "coded")


def collate_pairs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pack a batch of :class:`PairAudio` items into one flat buffer per kind (``pcm16``:
    int16, ``float``: float32) and their other fields (``pairs``). In a worker process the
    buffers are allocated in shared memory and filled in place, so the batch reaches the main
    process without further copies (the DataLoader would otherwise copy every tensor into
    shared memory) and as two tensors rather than two per pair (fewer file descriptors), is
    pinned in one piece and copied to a GPU in one transfer. :func:`signal` gives an item's
    signals back.
    """
    sizes = {"pcm16": 0, "float": 0}
    for item in items:
        for key in SIGNALS:
            if key in item:
                kind, data = item[key]
                sizes[kind] += data.size
    shared = get_worker_info() is not None
    buffers = {
        "pcm16": _buffer(sizes["pcm16"], torch.int16, shared),
        "float": _buffer(sizes["float"], torch.float32, shared),
    }
    views = {k: v.numpy() for k, v in buffers.items()}
    used = {"pcm16": 0, "float": 0}
    pairs = []
    for item in items:
        meta = {k: v for k, v in item.items() if k not in SIGNALS}
        for key in SIGNALS:
            if key in item:
                kind, data = item[key]
                start = used[kind]
                views[kind][start : start + data.size].reshape(data.shape)[...] = data
                used[kind] += data.size
                meta[key] = (kind, start, tuple(data.shape))
        pairs.append(meta)
    return {**buffers, "pairs": pairs}


def _buffer(numel: int, dtype: torch.dtype, shared: bool) -> torch.Tensor:
    """A flat tensor, allocated in shared memory when ``shared`` (as ``default_collate``
    does in workers)."""
    if not shared:
        return torch.empty(numel, dtype=dtype)
    empty = torch.empty(0, dtype=dtype)
    return empty.new(empty._typed_storage()._new_shared(numel, device="cpu")).resize_(numel)


def signal_length(meta: dict[str, Any], key: str) -> int:
    """Samples (per channel, at the target rate) of a packed item's signal ``key``."""
    kind, _, shape = meta[key]
    return shape[0] if kind == "pcm16" else shape[1]


def signal(buffers: dict[str, torch.Tensor], meta: dict[str, Any], key: str) -> torch.Tensor:
    """A packed item's signal ``key`` as float32 ``[2, n]`` at the target rate, on the device
    ``buffers`` live on: 16-bit integers / 32768 (exactly soundfile's floats), a mono file as
    L = R (as :func:`~gml.features.load_audio`).

    Shape:
        returns ``[2, n]`` (may be a view).
    """
    kind, start, shape = meta[key]
    flat = buffers[kind][start : start + int(np.prod(shape))]
    if kind == "float":
        return flat.view(shape)
    wave = flat.view(shape).T.float() * (1 / 32768)  # [channels, n]
    return wave.expand(2, -1) if wave.shape[0] == 1 else wave


def device_samples(batch: dict[str, Any], device: torch.device) -> torch.Tensor:
    """A packed batch's samples as one flat float32 tensor on ``device`` (copied
    asynchronously from pinned memory): the 16-bit integers turned into soundfile's floats
    (``/ 32768``, exact) in one pass, then the float buffer. :func:`gather_signals` cuts it
    into signals, with :func:`signal_layout` offsets.

    Shape:
        returns ``[pcm16 size + float size]``.
    """
    pcm16 = batch["pcm16"].to(device, non_blocking=True).float().mul_(1 / 32768)
    return torch.cat([pcm16, batch["float"].to(device, non_blocking=True)])


def signal_layout(meta: dict[str, Any], key: str, pcm16_size: int) -> tuple[int, int, int, int]:
    """Where a packed item's signal ``key`` lies in :func:`device_samples`: ``(start,
    channel_stride, time_stride, length)``; a mono file's two channels are the same samples
    (L = R, as :func:`~gml.features.load_audio`)."""
    kind, start, shape = meta[key]
    if kind == "pcm16":  # [n, channels], interleaved
        return start, (1 if shape[1] == 2 else 0), shape[1], shape[0]
    return pcm16_size + start, shape[1], 1, shape[1]  # float: [2, m], channel after channel


def gather_signals(
    samples: torch.Tensor,
    layouts: Sequence[tuple[int, int, int, int]],
    skips: Sequence[int],
    width: int,
) -> torch.Tensor:
    """Stereo signals cut from :func:`device_samples` into one zero-padded batch, each
    without its first ``skips[s]`` samples (a codec delay), in a fixed number of kernel
    launches however many signals (one copy each would cost a launch a signal).

    Shape:
        samples: ``[N]``; returns ``[len(layouts), 2, width]``: row ``s`` holds samples
        ``skips[s] ..`` of signal ``s``, zero after its end.
    """
    device = samples.device
    rows = values_on(
        device,
        [
            [start + skip * ts, cs, ts, max(0, n - skip)]
            for (start, cs, ts, n), skip in zip(layouts, skips)
        ],
    )
    start, channel_stride, time_stride, length = (c[:, None, None] for c in rows.unbind(1))
    t = torch.arange(width, device=device)
    channel = torch.arange(2, device=device)[:, None]
    valid = t < length  # [S, 1, width]
    index = start + channel_stride * channel + time_stride * t  # [S, 2, width]
    return torch.take(samples, torch.where(valid, index, 0)) * valid


class PairFeed:
    """Worker processes that read pairs (:class:`PairAudio` items, packed per batch by
    :func:`collate_pairs`), kept from one list of pairs to the next: starting a dozen
    processes costs a noticeable fraction of a second, more than a GPU needs for hundreds of
    pairs. The workers get the file names with each batch, so any list can follow.

    Args:
        sample_rate, min_seconds, align, delay_on_device: As :class:`PairAudio`.
        num_workers: Worker processes (each decodes, resamples and aligns whole pairs).
        pin_memory: Page-lock the batches, for an asynchronous copy to a GPU.
        pin_threads: Threads of this process that page-lock batches (a copy of every batch:
            one thread, as the DataLoader has, managed about 2 GB/s on a 16-core GPU
            machine, fewer pairs a second than the GPU scores).

    The processes stop with :meth:`close`, when the feed is garbage-collected, or at exit.
    """

    def __init__(
        self,
        sample_rate: int,
        min_seconds: float,
        align: bool,
        delay_on_device: bool,
        num_workers: int,
        pin_memory: bool = False,
        pin_threads: int = 4,
    ):
        if num_workers < 1:
            raise ValueError(f"a PairFeed needs at least one worker, got {num_workers}")
        self.settings = (int(sample_rate), float(min_seconds), bool(align), bool(delay_on_device))
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.pin_threads = max(1, int(pin_threads))
        self._pinning: ThreadPoolExecutor | None = None
        self._batches = _Batches()
        self._loader: DataLoader | None = None

    def batches(
        self,
        references: Sequence[str | os.PathLike],
        coded: Sequence[str | os.PathLike],
        batch_seconds: float = 240.0,
        max_pairs: int = 64,
    ) -> Iterator[dict[str, Any]]:
        """Batches of the pairs ``(references[i], coded[i])``, pairs of similar length
        together, in length order (not input order: each item has its index).

        Args:
            references, coded: The pairs' files.
            batch_seconds: Audio per batch, counted as 48 kHz stereo 16-bit seconds of the
                files' sizes (about 0.2 MB a second): bounds the memory in flight, about
                ``2 * num_workers`` batches of waveforms.
            max_pairs: Pairs per batch at most (smaller batches: the first arrives sooner and
                the workers share a short list more evenly).
        """
        if len(references) != len(coded):
            raise ValueError(f"{len(references)} references but {len(coded)} coded files")
        refs, cods = [os.fspath(p) for p in references], [os.fspath(p) for p in coded]
        budget = int(batch_seconds * 48000 * 2 * 2)
        self._batches.tasks = [
            [(i, refs[i], cods[i]) for i in batch]
            for batch in length_batches(refs, cods, budget, max_pairs)
        ]
        self._make_loader()
        complete = False
        try:
            if self.pin_memory:
                yield from self._pinned(self._loader)
            else:
                yield from self._loader
            complete = True
        finally:
            if not complete:  # abandoned half-way (an error): start afresh next time
                self.close()

    def start(self) -> None:
        """Start the worker processes now, not with the first list (they then wait for
        one). Best called before CUDA is initialised in this process: the workers are
        copies (forks) of it, and then do not inherit a CUDA context."""
        if self._loader is None or getattr(self._loader, "_iterator", None) is None:
            self._batches.tasks = []
            for _ in self._make_loader():  # no tasks: this only starts the processes
                pass

    def _make_loader(self) -> DataLoader:
        if self._loader is None:
            self._loader = DataLoader(
                _Tasks(PairAudio([], [], *self.settings)),
                batch_sampler=self._batches,
                num_workers=self.num_workers,
                collate_fn=collate_pairs,
                worker_init_fn=_one_thread,
                persistent_workers=True,
            )
        return self._loader

    def _pinned(self, batches: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """``batches`` in order, each page-locked by one of :attr:`pin_threads` threads
        (up to twice as many batches in hand as threads)."""
        if self._pinning is None:
            self._pinning = ThreadPoolExecutor(self.pin_threads, thread_name_prefix="gml-pin")
        pending: deque[Future] = deque()
        for batch in batches:
            pending.append(self._pinning.submit(_pin, batch))
            if len(pending) >= 2 * self.pin_threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        """Stop the worker processes (the next :meth:`batches` starts new ones)."""
        pinning, self._pinning = self._pinning, None
        if pinning is not None:
            pinning.shutdown(wait=False, cancel_futures=True)
        loader, self._loader = self._loader, None
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()


def _pin(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with its sample buffers page-locked."""
    return {**batch, **{k: batch[k].pin_memory() for k in ("pcm16", "float")}}


class _Batches:
    """The batch sampler of a :class:`PairFeed`: the current list's batches of tasks."""

    def __init__(self) -> None:
        self.tasks: list[list[tuple[int, str, str]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, str, str]]]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


class _Tasks(Dataset):
    """A :class:`PairAudio` (settings only) indexed by tasks ``(index, reference, coded)``."""

    def __init__(self, pairs: PairAudio):
        self.pairs = pairs

    def __getitem__(self, task: tuple[int, str, str]) -> dict[str, Any]:
        return self.pairs.read(*task)


def _one_thread(_: int) -> None:
    """Workers compute with numpy and scipy; torch threads there would only compete."""
    torch.set_num_threads(1)
