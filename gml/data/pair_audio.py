"""Reading reference/coded pairs in DataLoader worker processes, to keep a GPU fed.

On a GPU the model and the gammatone frontend take well under a millisecond per 10 s pair,
while decoding, resampling and estimating the codec delay take tens of milliseconds of CPU
time. :func:`pair_loader` spreads that work over worker processes: each item is one pair's
audio, decoded, resampled to the frontend's rate and with the estimated delay already dropped
from the later signal, as float32 waveforms in pinned memory (so the copy to the GPU runs
asynchronously). Batches hold pairs of similar length (sorted by file size), at most
``batch_seconds`` of audio, so equal-length signals share the frontend's and the model's
forward passes and memory stays bounded.

The audio is the same as :meth:`gml.listener.Listener` reads in its own thread path
(:func:`gml.features.conform_audio`, the same polyphase resampler, the same delay estimate);
the spectrogram of a whole waveform equals the blockwise one to float rounding (tested).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gml.features.audio import check_duration, conform_audio, read_audio
from gml.features.stream import AudioInfo

__all__ = ["PairAudio", "collate_pairs", "length_batches", "pair_loader", "unpack_pair"]


class PairAudio(Dataset):
    """One reference/coded pair per item, read and aligned (see the module docstring).

    Args:
        references, coded: Audio file paths, pair ``i`` is ``(references[i], coded[i])``.
        sample_rate: The frontend's rate; both signals are resampled to it.
        min_seconds: Shortest usable signal (one analysis frame).
        align: Estimate the codec delay and drop it from the start of the later signal.
        delay_on_device: Leave the delay search to the caller's device when both files are
            at ``sample_rate`` (:func:`gml.features.delay.delay_of_mono_torch`): such items
            carry ``reference_mono`` and ``coded_mono`` (the heads the search reads),
            ``delay`` None and the waveforms whole.

    An item is a dict: ``index``; ``reference`` and ``coded`` (float32 ``[2, n]`` tensors at
    ``sample_rate``, the delay removed), ``reference_info``, ``coded_info`` (:class:`AudioInfo`
    of the files as read) and ``delay`` (samples at ``sample_rate``); or, for a pair that
    cannot be used, ``index`` and ``error`` (the exception, naming the file), so that the
    caller decides what to raise.
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

    #: :func:`gml.features.delay.estimate_delay`'s defaults (the listener's thread path).
    analysis_seconds: float = 30.0
    max_delay_seconds: float = 0.5

    def __len__(self) -> int:
        return len(self.references)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self._read(index)
        except Exception as err:  # handed to the main process, which raises it
            return {"index": index, "error": err}

    def _read(self, index: int) -> dict[str, Any]:
        raw = []
        for path in (self.references[index], self.coded[index]):
            data, rate = read_audio(path)
            info = AudioInfo(path, rate, data.shape[1], data.shape[0])
            check_duration(
                path,
                -(-info.samples * self.sample_rate // rate) / self.sample_rate,
                self.min_seconds,
            )
            raw.append((data, rate, info))
        delay: int | None = 0
        monos = {}
        if self.align:  # estimate_delay's own reading, on the samples already decoded
            from gml.features.delay import delay_of_mono, mono_head

            span = self.analysis_seconds + self.max_delay_seconds
            ref_mono, cod_mono = ((mono_head(d, span, r), r) for d, r, _ in raw)
            if self.delay_on_device and ref_mono[1] == cod_mono[1] == self.sample_rate:
                delay = None  # the caller searches, on its device
                monos = {
                    "reference_mono": torch.from_numpy(ref_mono[0]),
                    "coded_mono": torch.from_numpy(cod_mono[0]),
                }
            else:
                delay = delay_of_mono(ref_mono, cod_mono, self.sample_rate).samples
        if delay is None:
            delay_skips = (0, 0)
        else:
            delay_skips = (max(0, -delay), max(0, delay))
        # as the thread path: drop the delay from the start of the later signal
        waves = [
            torch.from_numpy(np.ascontiguousarray(conform_audio(d, r, self.sample_rate)[:, k:]))
            for (d, r, _), k in zip(raw, delay_skips)
        ]
        return {
            **monos,
            "index": index,
            "reference": waves[0],
            "coded": waves[1],
            "reference_info": raw[0][2],
            "coded_info": raw[1][2],
            "delay": delay,
        }


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


#: The tensors of an item, packed into one buffer per batch by :func:`collate_pairs`.
_PACKED = ("reference", "coded", "reference_mono", "coded_mono")


def collate_pairs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pack a batch of :class:`PairAudio` items into one flat float32 buffer (``audio``) and
    their other fields (``pairs``): one shared-memory tensor per batch crosses from the
    worker process (not four per pair: fewer file descriptors), is pinned in one piece and
    copied to a GPU in one transfer. :func:`unpack_pair` gives an item's tensors back.
    """
    parts, offset, pairs = [], 0, []
    for item in items:
        meta = {k: v for k, v in item.items() if k not in _PACKED}
        for key in _PACKED:
            if key in item:
                t = item[key]
                meta[key] = (offset, tuple(t.shape))
                parts.append(t.reshape(-1))
                offset += t.numel()
        pairs.append(meta)
    audio = torch.cat(parts) if parts else torch.zeros(0)
    return {"audio": audio, "pairs": pairs}


def unpack_pair(audio: torch.Tensor, meta: dict[str, Any], key: str) -> torch.Tensor:
    """The tensor ``key`` of a packed item (a view of ``audio``, wherever it now lives)."""
    start, shape = meta[key]
    return audio[start : start + int(np.prod(shape))].view(shape)


def pair_loader(
    dataset: PairAudio,
    num_workers: int,
    batch_seconds: float = 240.0,
    max_pairs: int = 64,
    pin_memory: bool = False,
) -> Iterator[dict[str, Any]]:
    """Batches (:func:`collate_pairs` of :class:`PairAudio` items) read by ``num_workers``
    processes, pairs of similar length together, in length order (not input order: each
    item has its index).

    Args:
        dataset: The pairs.
        num_workers: Worker processes (each decodes, resamples and aligns whole pairs).
        batch_seconds: Audio per batch, counted as 48 kHz stereo 16-bit seconds of the files'
            sizes (about 0.2 MB a second): bounds the memory in flight, about
            ``2 * num_workers`` batches of float32 waveforms.
        max_pairs: Pairs per batch at most.
        pin_memory: Page-lock the waveforms, for an asynchronous copy to a GPU.
    """
    budget = int(batch_seconds * 48000 * 2 * 2)
    batches = length_batches(dataset.references, dataset.coded, budget, max_pairs)
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=collate_pairs,
        pin_memory=pin_memory,
        worker_init_fn=_one_thread if num_workers else None,
        persistent_workers=False,
    )
    return iter(loader)


def _one_thread(_: int) -> None:
    """Workers compute with numpy and scipy; torch threads there would only compete."""
    torch.set_num_threads(1)
