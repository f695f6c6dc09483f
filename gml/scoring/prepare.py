"""Preparing pairs for the model: read, align, analyse, pad and cut into windows.

Two ways, with the same result (tested): :meth:`PairPreparer.pair` reads one pair in the
calling thread, its files block by block (memory bounded by the block, whatever the file's
length), remembering recent files' features (a reference scored against several coded
versions is analysed once); :meth:`PairPreparer.batch` prepares a batch of pairs already read
by worker processes (:mod:`gml.data.pair_audio`) on the model's device, in a number of kernel
launches that does not grow with the batch.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import torch
from torch import Tensor, nn

from gml.data.pair_audio import SIGNALS, device_samples, gather_signals, signal, signal_layout
from gml.features import delay as delay_search
from gml.features import stream
from gml.features.delay import HEAD_SECONDS, delays_of_heads_torch
from gml.features.device import values_on
from gml.features.gammatone import GammatoneFrontend
from gml.features.pair import delay_skips, pair_frames, stack_pair, stack_pairs
from gml.features.stream import DecodedFile, decode_short_file
from gml.scoring.prepared import PreparedPair, prepared_pair

__all__ = ["FeatureMemory", "PairPreparer"]

AudioInput = Any  # a path, an (array, sample_rate) tuple or a DecodedFile


class FeatureMemory:
    """The features of the last :attr:`size` files analysed, keyed on the file as it is
    (path, modification time, size) and the samples skipped; safe to share between threads.

    Args:
        size: Files remembered (0: none).
    """

    def __init__(self, size: int = 4):
        self.size = int(size)
        self._items: dict = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(source: AudioInput, skip: int) -> tuple | None:
        """The key of ``source`` read from sample ``skip`` (None: not remembered: arrays,
        and files that cannot be found)."""
        if isinstance(source, DecodedFile):  # keyed on the file as it was when decoded
            if source.version is not None:
                return (os.path.realpath(source.info.source), *source.version, skip)
            return None
        if isinstance(source, (str, os.PathLike)):
            try:
                st = os.stat(source)
            except OSError:
                return None  # streamed_spectrogram reports the missing file
            return (os.path.realpath(source), st.st_mtime_ns, st.st_size, skip)
        return None

    def get(self, key: tuple | None) -> Any:
        """The remembered value of ``key``, or None."""
        if key is None:
            return None
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple | None, value: Any) -> None:
        """Remember ``value`` (forgetting the oldest beyond :attr:`size`)."""
        if key is None or self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.pop(next(iter(self._items)))


class PairPreparer:
    """Prepares pairs as a listener's settings say (see :class:`gml.listener.Listener`).

    Args:
        frontend: The model's frontend.
        device: Where batches of pairs are analysed (:meth:`batch`).
        window_frames, hop_frames: Analysis windows (:func:`~gml.scoring.prepared.window_spans`).
        block_seconds: Audio is analysed in blocks of this many seconds.
        align: Estimate and remove the codec's delay.
        batch_size: The model's windows per pass (sizes the frontend's passes in :meth:`batch`).
        memory: Remembered features (None: none).
    """

    def __init__(
        self,
        frontend: GammatoneFrontend,
        device: torch.device,
        window_frames: int,
        hop_frames: int,
        block_seconds: float,
        align: bool,
        batch_size: int,
        memory: FeatureMemory | None = None,
    ):
        self.frontend = frontend
        self.device = device
        self.window_frames, self.hop_frames = window_frames, hop_frames
        self.block_seconds = block_seconds
        self.align = align
        self.batch_size = batch_size
        self.memory = memory if memory is not None else FeatureMemory(0)

    def features(self, source: AudioInput, skip: int = 0) -> tuple[Tensor, Any]:
        """``(spectrogram, info)`` of ``source`` from sample ``skip`` on, streamed block by
        block (:func:`~gml.features.stream.streamed_spectrogram`), remembered.

        Shape:
            returns ``[4, bands, T]``.
        """
        if isinstance(source, tuple) and len(source) == 2:
            array, rate = source
            source = (array, int(rate))
        key = self.memory.key(source, skip)
        hit = self.memory.get(key)
        if hit is not None:
            return hit
        result = stream.streamed_spectrogram(
            source, self.frontend, block_seconds=self.block_seconds, skip_samples=skip
        )
        self.memory.put(key, result)
        return result

    def pair(self, reference: AudioInput, coded: AudioInput) -> PreparedPair:
        """One pair, prepared in the calling thread: the delay searched and removed, both
        signals analysed, padded, stacked and cut into windows."""
        delay, correlation = 0, None
        if self.align:
            # the delay search and the features read the same file. One no longer than the
            # search's head (and a block) is read whole by the search anyway, so it is
            # decoded once for both; a longer one is read twice (its head, then its blocks),
            # so that remembered features never cost a whole decoding
            short = min(self.block_seconds, HEAD_SECONDS)
            reference, coded = (decode_short_file(s, short) for s in (reference, coded))
            # (looked up when called: a test may replace it)
            found = delay_search.estimate_delay(
                reference, coded, self.frontend.settings()["sample_rate"]
            )
            delay, correlation = found.samples, found.correlation
        ref_skip, cod_skip = delay_skips(delay)
        ref, ref_info = self.features(reference, skip=ref_skip)
        cod, cod_info = self.features(coded, skip=cod_skip)
        return prepared_pair(
            stack_pair(ref, cod),
            ref_info,
            cod_info,
            delay,
            self.window_frames,
            self.hop_frames,
            correlation,
        )

    @torch.inference_mode()
    def batch(self, batch: dict) -> list[PreparedPair]:
        """:meth:`pair` for a batch of loaded pairs, on the model's device in a
        number of kernel launches that does not grow with the batch (on a GPU the host's
        launches, not the device, limited the pairs a second): the signals are cut from the
        batch's samples into one zero-padded tensor by one gather, the delays searched
        together, the frontend run on the whole batch, and the pairs padded and stacked by
        one gather over frames. Signals longer than ``block_seconds`` are analysed block by
        block from the host copy (bounded memory).
        """
        fs = self.frontend.settings()["sample_rate"]
        host = {k: batch[k] for k in ("pcm16", "float")}
        samples = device_samples(batch, self.device)
        pairs = batch["pairs"]
        count = len(pairs)
        signals = [(it, key) for key in SIGNALS for it in pairs]  # references, then coded
        layouts = [signal_layout(it, key, host["pcm16"].numel()) for it, key in signals]
        lengths = [n for *_, n in layouts]
        delays = [it["delay"] for it in pairs]
        correlations = [it.get("correlation") for it in pairs]
        search = [j for j, d in enumerate(delays) if d is None]  # left to this device
        if search:
            # the heads estimate_delay reads: the first analysis + max-delay seconds, (L + R) / 2
            # in float32 (a mono file is L = R here, and (x + x) / 2 = x exactly)
            rows = search + [count + j for j in search]
            heads = [min(math.ceil(HEAD_SECONDS * fs), lengths[i]) for i in rows]
            stereo = gather_signals(
                samples, [layouts[i] for i in rows], [0] * len(rows), max(heads)
            )
            monos = (stereo[:, 0] + stereo[:, 1]) * 0.5
            k = len(search)
            found = delays_of_heads_torch(monos[:k], heads[:k], monos[k:], heads[k:], fs)
            for j, f in zip(search, found):
                delays[j], correlations[j] = f.samples, f.correlation
        skips = [delay_skips(d)[0] for d in delays] + [delay_skips(d)[1] for d in delays]
        frames = [self.frontend.num_frames(max(0, n - k)) for n, k in zip(lengths, skips)]
        longest = self.block_seconds * fs
        short = [i for i, n in enumerate(lengths) if n - skips[i] <= longest]
        parts, order = [], []
        # at most about 2 * batch_size signals of 10 s per pass of the frontend: all at once
        # when they fit (in signal order), else groups of similar length
        size = {i: lengths[i] - skips[i] for i in short}
        budget = max(1, 2 * self.batch_size * 10 * fs)
        groups = [short] if short and len(short) * max(size.values()) <= budget else []
        if short and not groups:
            group: list[int] = []
            for i in sorted(short, key=size.get):
                if group and (len(group) + 1) * size[i] > budget:
                    groups.append(group)
                    group = []
                group.append(i)
            groups.append(group)
        for group in groups:
            width = max(1, max(size[g] for g in group))
            x = gather_signals(
                samples, [layouts[g] for g in group], [skips[g] for g in group], width
            )
            parts.append(self.frontend.spectrogram(x))
            order += group
        for i in sorted(set(range(len(signals))) - set(short)):  # block by block, from the host
            wave = signal(host, *signals[i])[:, skips[i] :]
            spec = stream.streamed_spectrogram((wave, fs), self.frontend, self.block_seconds)[0]
            parts.append(spec.to(self.device)[None])
            order.append(i)
        # one tensor of every signal's spectrogram, in signal order; each frame past a signal's
        # own num_frames is cut by the gather below (it would hold padding's frames)
        width = max(p.shape[-1] for p in parts)
        spec = torch.cat([nn.functional.pad(p, (0, width - p.shape[-1])) for p in parts])
        if order != list(range(len(signals))):
            inverse = [0] * len(order)
            for position, i in enumerate(order):
                inverse[i] = position
            spec = spec[values_on(self.device, inverse)]
        spec = spec.view(2, count, *spec.shape[1:]).transpose(0, 1)  # [B, 2, 4, bands, T]
        padded = stack_pairs(spec, frames)
        peaks = padded.amax(dim=(1, 3, 4))  # [B, 2]: each signal's loudest value, one kernel
        return [
            prepared_pair(
                pair[..., :t],
                it["reference_info"],
                it["coded_info"],
                delay,
                self.window_frames,
                self.hop_frames,
                corr,
                peak,
            )
            for pair, t, it, delay, corr, peak in zip(
                padded, pair_frames(frames), pairs, delays, correlations, peaks
            )
        ]
