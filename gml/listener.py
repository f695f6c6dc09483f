"""A trained listener you can use: score reference/coded pairs, simulate listening-test panels.

``gml.load(ckpt)`` returns a :class:`Listener`: the model's own frontend (the settings it was
trained with, read from the checkpoint), backbone and head. It reads audio exactly as training
does (soundfile, resampling to the frontend's rate, mono as L = R), analyses long excerpts in
windows, and returns the head's score distribution with the statistics a listening test reports.

Scores outside 0–100: the logistic and gaussian heads have unbounded support, while a MUSHRA
slider stops at 0 and 100 (the censored and beta heads of :mod:`gml.heads` stay on the scale). ``mean``, ``std`` and ``ci95`` are those of the
model's distribution (what ``gml test`` evaluates); a ``mean`` outside 0–100 is clamped to the
scale and flagged (``clamped``). Quantiles are those of the score on the slider (the model's
quantiles clipped to 0–100, which is exact for a rating that saturates at the ends), and
``p_outside`` is the probability the model puts outside the scale. Simulated listeners'
scores are clipped to 0–100 the same way, so simulated panels look like real ones.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from gml.data.cache import progress_bar
from gml.data.pair_audio import PairFeed
from gml.errors import GMLWarning
from gml.features.device import values_on
from gml.inference import cpu_trunk, fold_batchnorm
from gml.scoring.checks import PairChecks, feature_dbfs
from gml.scoring.feeds import ProcessFeed, ThreadFeed
from gml.scoring.model import check_members, load_scoring_model
from gml.scoring.prediction import PREDICTION_FIELDS, Prediction
from gml.scoring.prepare import FeatureMemory, PairPreparer
from gml.scoring.prepared import PreparedPair
from gml.scoring.statistics import (
    FIGURES,
    QUANTILES,
    SCALE,
    SLIDER_GRID,
    Panels,
    excerpt_distribution,
    mixture_figures,
    quantiles,
    simulate_panels,
    slider_interval,
)
from gml.scoring.threads import ThreadBudget
from gml.stats import ci_halfwidth

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PREDICTION_FIELDS",
    "QUANTILES",
    "SCALE",
    "Listener",
    "Panels",
    "Prediction",
    "load",
    "quantiles",
    "simulate_panels",
    "slider_interval",
]

AudioInput = Any  # a path, or (array, sample_rate)


class Listener:
    """A trained GML: audio pairs in, listening-test predictions out.

    Args:
        module: The trained network: a :class:`~gml.scoring.model.ScoringModel` (what
            :func:`load` builds) or a :class:`~gml.module.GMLModule`; a list of them acts as
            one ensemble listener.
        device: ``"cuda"``, ``"cpu"``... (default: CUDA when available).
        window_seconds: Excerpts up to this long are scored whole, in one pass, as the model
            saw excerpts in training and as ``gml test`` scores them; longer ones in windows
            of this length.
        window_overlap: Overlap of consecutive windows (0.5: a window every 10 s).
        batch_size: Windows of equal length per forward pass (default: 8 on CPU, 16 on a
            GPU). On CPU, InSE-Net still runs one window's views at a time inside the batch
            (:func:`gml.inference.cpu_trunk`), so memory stays bounded; a backbone of your own
            sees the whole batch.
        block_seconds: Audio is read and turned into features in blocks of this many seconds,
            so memory does not grow with the file's length.
        align: Estimate the codec's delay per pair and remove it before the features
            (:func:`gml.features.delay.estimate_delay`, within ±0.5 s).
        prefetch: When scoring lists, read and analyse the next pairs in a worker thread
            while the model scores the current ones. On CPU the two share the torch threads
            of the calling thread (``torch.get_num_threads()``): while the worker analyses,
            it takes one (half when the model has no prepared pair waiting) and the model the
            others (at least one); when it has nothing to do, the model takes them all. The
            calling thread's count is restored after, also as torch's default for threads
            that start using torch later; threads that start using it during the call begin
            with a smaller count. (With torch's OpenMP backend, the usual one; one list at a
            time in a process: a list scored meanwhile from another thread does not share.)
        bf16: Run the backbone under bfloat16 autocast, the head in float32. For GPUs and
            CPUs with bf16 units; slower on CPUs without them (``docs/performance.md``).
        workers: Worker processes that read lists of files (decode, resample, estimate the
            delay) while the model runs; the frontend then runs on the model's device, on
            whole batches of pairs of similar length (:mod:`gml.data.pair_audio`). Default:
            on a GPU, one per CPU core but two (at most 12); on CPU 0, which uses the
            ``prefetch`` thread instead (the cores are busy with the model there). Only for
            lists of file paths; arrays and single pairs take the thread path. Memory: each
            worker holds up to two batches of whole files (``batch_size`` pairs of 10 s, or
            one longer pair), in shared memory. The processes start with the listener (before
            the model moves to its device, so that the first list does not wait for them)
            and are kept for the next list until :meth:`close`, the end of a ``with``
            block, or the listener is garbage-collected.
        copy_networks: Prepare copies of the backbones for inference (batch norm folded,
            the CPU trunk), leaving the modules passed in as they are. ``False`` prepares
            the modules' own backbones instead, which saves a copy of each network: for
            modules built only for this listener (:func:`load` does so).

    Long excerpts: a pair longer than ``window_seconds`` is cut into windows of that length
    with ``window_overlap`` overlap (the last window ends at the end of the excerpt); each
    window gets its own score distribution and the excerpt's distribution is their
    equal-weight mixture: its mean is the average of the windows' means, its variance the
    average of their variances plus the variance of their means (listeners who weigh the
    excerpt's parts differently disagree more when its quality varies).
    """

    def __init__(
        self,
        module: Any,
        device: str | torch.device | None = None,
        window_seconds: float = 20.0,
        window_overlap: float = 0.5,
        batch_size: int | None = None,
        block_seconds: float = 60.0,
        align: bool = True,
        prefetch: bool = True,
        bf16: bool = False,
        workers: int | None = None,
        copy_networks: bool = True,
    ):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if window_seconds <= 0 or not 0 <= window_overlap < 1:
            raise ValueError("window_seconds must be > 0 and window_overlap in [0, 1)")
        self.device = torch.device(device)
        members = list(module) if isinstance(module, (list, tuple)) else [module]
        check_members(
            members,
            [getattr(m, "checkpoint_path", None) or f"member {k}" for k, m in enumerate(members)],
        )
        self.module = members[0]
        self.frontend = self.module.frontend
        fs = self.frontend.settings()["sample_rate"]
        self.window_frames = self.frontend.num_frames(int(round(window_seconds * fs)))
        self.hop_frames = max(1, int(round(self.window_frames * (1 - window_overlap))))
        if batch_size is None:
            batch_size = 8 if self.device.type == "cpu" else 16
        self.batch_size = int(batch_size)
        self.block_seconds = float(block_seconds)
        self.align = bool(align)
        #: Prepare the next pairs (read, align, features) in a worker thread while the
        #: model scores the current ones (see :meth:`predict`).
        self.prefetch = bool(prefetch)
        #: Run the backbone under bfloat16 autocast (the head stays float32).
        self.bf16 = bool(bf16)
        if workers is None:
            workers = (
                max(1, min(12, (os.cpu_count() or 2) - 2)) if self.device.type == "cuda" else 0
            )
        if workers < 0:
            raise ValueError(f"workers must be 0 or more, got {workers}")
        #: Worker processes reading lists of files (0: the ``prefetch`` thread instead).
        self.workers = int(workers)
        #: With workers: search each pair's codec delay on the model's device (a GPU does it
        #: in well under a millisecond; the workers' CPUs took tens) when both files are at
        #: the frontend's rate; the same delays (:func:`~gml.features.delay.delays_of_heads_torch`).
        self.delay_on_device = self.device.type == "cuda"
        self._feed = None  # the worker processes, kept between calls (see close)
        if self.workers > 0:
            # started now, so that they get ready while the model moves to its device and
            # the first list does not wait for them; forked before CUDA is initialised here
            self._reading_feed().start()
        # (Module.to moves in place: self.module and self.frontend move with their member)
        self.members = [m.to(self.device).eval() for m in members]
        # inference versions of the backbones with batch norm folded into the convolutions
        # (the same function with less work; copies unless the modules are ours alone)
        self._backbones = [
            fold_batchnorm(m.backbone, in_place=not copy_networks) for m in self.members
        ]
        if self.device.type == "cpu":  # InSE-Net's CPU trunk (cpu_trunk)
            self._backbones = [cpu_trunk(net, in_place=True) for net in self._backbones]
        self._memory = FeatureMemory(4)
        #: The limits beyond which a pair gets a warning.
        self.checks = PairChecks()

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint the listener was loaded from (the first member's for an ensemble)."""
        return getattr(self.module, "checkpoint_path", None)

    @property
    def checkpoints(self) -> list[str | None]:
        """Every member's checkpoint."""
        return [getattr(m, "checkpoint_path", None) for m in self.members]

    # -- preparing pairs ------------------------------------------------------------------

    @property
    def feature_memory(self) -> int:
        """Files whose features are remembered (default 4): a reference scored against
        several coded versions (a codec comparison) is analysed once."""
        return self._memory.size

    @feature_memory.setter
    def feature_memory(self, files: int) -> None:
        self._memory.size = int(files)

    def preparer(self) -> PairPreparer:
        """How this listener prepares pairs now (its current settings)."""
        return PairPreparer(
            self.frontend,
            self.device,
            self.window_frames,
            self.hop_frames,
            self.block_seconds,
            self.align,
            self.batch_size,
            self._memory,
        )

    def feed(self, references: list, coded: list, chunk_pairs: int = 16):
        """The feed that prepares these pairs: :attr:`workers` processes for lists of files
        when there are workers, else a :class:`~gml.scoring.feeds.ThreadFeed` (with
        :attr:`prefetch`, sharing the caller's torch threads on CPU)."""
        preparer = self.preparer()
        paths = all(isinstance(x, (str, os.PathLike)) for x in [*references, *coded])
        if self.workers > 0 and len(references) > 1 and paths:
            reader = self._reading_feed()
            return ProcessFeed(reader, preparer.batch, references, coded, self.batch_size)
        budget = ThreadBudget() if self.device.type == "cpu" else None
        return ThreadFeed(preparer.pair, references, coded, chunk_pairs, self.prefetch, budget)

    def _reading_feed(self):
        """The worker processes for the current settings (:attr:`workers`, :attr:`align`...):
        the running ones, or new ones if the settings changed since they started."""
        fs = self.frontend.settings()["sample_rate"]
        settings = (fs, self.frontend.win_length / fs, self.align, self.delay_on_device)
        feed = self._feed
        if feed is None or feed.settings != settings or feed.num_workers != self.workers:
            self.close()
            feed = self._feed = PairFeed(
                *settings, num_workers=self.workers, pin_memory=self.device.type == "cuda"
            )
        return feed

    def close(self) -> None:
        """Stop the worker processes that read lists of files (:attr:`workers`); the next
        list starts new ones. They also stop when the listener is garbage-collected."""
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the model -----------------------------------------------------------------------

    @torch.inference_mode()
    def head_parameters(
        self, feats: list[Tensor], before_pass: Callable[[], None] | None = None
    ) -> Tensor:
        """Head parameters of each window for every member; windows of equal length share
        forward passes (so batching never changes a prediction: no padding between windows).
        The parameters stay on the model's device: copying them back batch by batch would
        make the host wait for each batch before preparing the next.

        Args:
            feats: Windows' features (:attr:`~gml.scoring.prepared.PreparedPair.windows`).
            before_pass: Called before each forward pass (a feed's share of the threads).

        Shape:
            feats: each ``[4, 2, bands, T_i]`` → ``[len(feats), members, num_params]``.
        """
        outputs, order = [], []
        by_len: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            by_len.setdefault(f.shape[-1], []).append(i)
        for idx in by_len.values():
            for k in range(0, len(idx), self.batch_size):
                chunk = idx[k : k + self.batch_size]
                x = torch.stack([feats[i] for i in chunk]).to(self.device)
                if before_pass is not None:
                    before_pass()
                outputs.append(
                    torch.stack(
                        [
                            self._head_params(m, net, x)
                            for m, net in zip(self.members, self._backbones)
                        ],
                        dim=1,
                    )
                )
                order.extend(chunk)
        flat = torch.cat(outputs)
        if order == sorted(order):
            return flat
        inverse = [0] * len(order)
        for position, i in enumerate(order):
            inverse[i] = position
        return flat[values_on(self.device, inverse)]

    def _head_params(self, module: Any, net: nn.Module, x: Tensor) -> Tensor:
        """Raw head parameters of a batch of windows for one member: the backbone under
        bfloat16 autocast when asked, the head always in float32 (as in training).

        Shape:
            x: ``[B, 4, 2, bands, T]`` → ``[B, num_params]`` (float32, on the model's device).
        """
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            embedding = net(x)
        return module.head.proj(embedding.float()).float()

    # -- statistics and results --------------------------------------------------------

    #: Points of the integral that gives the slider scores' moments.
    slider_grid: int = SLIDER_GRID

    def _distribution(self, params: Tensor) -> Distribution:
        """The excerpt's distribution from its windows' parameters ``[W, members, P]``."""
        return excerpt_distribution([m.spread_distribution for m in self.members], params)

    def _predictions(
        self,
        params: list[Tensor],
        prepared: list[PreparedPair],
        n_listeners: int,
        per_window: bool,
        keep_distribution: bool,
    ) -> list[Prediction]:
        """The predictions of a chunk of pairs, their statistics computed for all at once
        (:func:`~gml.scoring.statistics.mixture_figures`); each pair's warnings are issued
        here (:attr:`checks`).

        Args:
            params: Per pair ``[W_i, members, num_params]`` (its windows' head parameters).
            prepared: The pairs (their windows no longer needed).
            keep_distribution: Build each pair's distribution object (one pair: its
                :attr:`Prediction.distribution`; lists leave it out).
        """
        device = params[0].device
        counts = [p.shape[0] for p in params]
        flat = torch.cat(params)  # [N, members, num_params]
        comps = [m.spread_distribution(flat[:, k]) for k, m in enumerate(self.members)]
        figures = mixture_figures(comps, counts, self.slider_grid)
        nan = figures.new_full((2,), float("nan"))
        peaks = [nan if p.peaks is None else p.peaks.to(device).double() for p in prepared]
        # every figure to the host in one transfer (on a GPU: one wait for a whole chunk)
        table = torch.cat([figures, torch.stack(peaks, dim=1)]).cpu().T.tolist()
        if per_window or keep_distribution:
            params = list(torch.split(flat.cpu(), counts))
        settings = self.frontend.settings()
        fs = settings["sample_rate"]
        hop_s, win_s = self.frontend.hop_length / fs, self.frontend.win_length / fs
        if per_window:
            window_mean = torch.stack([c.mean for c in comps]).mean(0).cpu()  # [N] over members
            window_std = torch.stack([c.variance for c in comps]).mean(0).sqrt().cpu()
        first = np.cumsum(counts) - np.asarray(counts)
        out = []
        for i, pair in enumerate(prepared):
            row = dict(zip(FIGURES, table[i]))
            levels = table[i][len(FIGURES) :]
            notes = self.checks.notes(
                pair.reference,
                pair.coded,
                pair.delay / fs,
                None if pair.peaks is None else tuple(feature_dbfs(v, settings) for v in levels),
                feature_dbfs(0.0, settings),
                pair.correlation,
            )
            for note in notes:
                warnings.warn(note, GMLWarning, stacklevel=5)
            low, high = slider_interval(row["slider_mean"], row["slider_std"], n_listeners)
            window_table = None
            if per_window:
                rows = slice(int(first[i]), int(first[i] + counts[i]))
                import pandas as pd  # only for per-window tables: scoring a pair needs none

                window_table = pd.DataFrame(
                    {
                        "start": [s * hop_s for s, _ in pair.spans],
                        "end": [(e - 1) * hop_s + win_s for _, e in pair.spans],
                        "mean": window_mean[rows].numpy().astype(float),
                        "std": window_std[rows].numpy().astype(float),
                    }
                )
            m = row["mean"]
            out.append(
                Prediction(
                    reference=pair.reference.source,
                    coded=pair.coded.source,
                    n_listeners=int(n_listeners),
                    mean=float(np.clip(m, *SCALE)),
                    std=row["std"],
                    model_std=row["model_std"],
                    members=len(comps),
                    ci95=float(ci_halfwidth(row["std"], n_listeners)),
                    ci95_low=low,
                    ci95_high=high,
                    slider_mean=row["slider_mean"],
                    slider_std=row["slider_std"],
                    **{q: float(np.clip(row[q], *SCALE)) for q in FIGURES[6:]},
                    p_outside=row["p_outside"],
                    clamped=bool(m < SCALE[0] or m > SCALE[1]),
                    duration=max(pair.reference.duration, pair.coded.duration),
                    delay_ms=1000.0 * pair.delay / fs,
                    windows=len(pair.spans),
                    reference_rate=pair.reference.sample_rate,
                    reference_channels=pair.reference.channels,
                    coded_rate=pair.coded.sample_rate,
                    coded_channels=pair.coded.channels,
                    warnings=notes,
                    distribution=self._distribution(params[i]) if keep_distribution else None,
                    per_window=window_table,
                )
            )
        return out

    # -- orchestration ------------------------------------------------------------------

    def predict(
        self,
        reference: AudioInput | Sequence[AudioInput],
        coded: AudioInput | Sequence[AudioInput],
        n_listeners: int = 20,
        *,
        per_window: bool = False,
        distributions: bool = False,
        progress: bool | None = None,
        chunk_pairs: int = 16,
    ) -> Prediction | pd.DataFrame:
        """Predict the listening-test result of one pair, or of many.

        Args:
            reference: A path, an ``(array, sample_rate)`` tuple (array ``[n]`` mono,
                ``[channels, n]`` or ``[n, channels]``), or a list of those.
            coded: The same for the coded signal(s).
            n_listeners: The panel size the CI half-width is computed for.
            per_window: Also return the analysis windows' own predictions.
            distributions: For lists, add a ``distribution`` column: each pair's
                :attr:`Prediction.distribution` (for simulated panels or comparisons, without
                scoring the pairs again one by one).
            progress: Progress bar over pairs (default: for more than 8 pairs).
            chunk_pairs: Pairs whose features are held at once (bounds memory for long lists).

        Returns:
            A :class:`Prediction` for one pair; for lists, a DataFrame with one row per pair
            and the columns :data:`PREDICTION_FIELDS` (``per_window`` adds a ``per_window``
            column of tables, ``distributions`` a ``distribution`` column).

        Raises:
            gml.features.AudioError: a file that cannot be used (named in the message).
        """
        single = not isinstance(reference, list)
        refs = [reference] if single else list(reference)
        cods = [coded] if single else list(coded)
        if len(refs) != len(cods):
            raise ValueError(f"{len(refs)} references but {len(cods)} coded signals")
        if n_listeners < 2:
            raise ValueError(f"n_listeners must be at least 2 for a CI, got {n_listeners}")
        show = progress if progress is not None else len(refs) > 8
        bar = progress_bar(len(refs), "gml predict", show)
        feed = self.feed(refs, cods, chunk_pairs)
        keep = single or distributions
        try:
            results = self._score_chunks(feed, len(refs), n_listeners, per_window, keep, bar)
        finally:
            # now and in this thread, also after an error (a traceback kept by the caller
            # would keep the feed alive): stops the prefetch thread and gives the calling
            # thread back its torch threads
            feed.close()
            bar.close()
        if single:
            return results[0]
        import pandas as pd  # imported when a table is made (start-up of one pair)

        frame = pd.DataFrame([r.to_dict() for r in results])
        if per_window:
            frame["per_window"] = [r.per_window for r in results]
        if distributions:
            frame["distribution"] = [r.distribution for r in results]
        return frame

    #: Pairs whose statistics are computed together (their cost is mostly per call: about
    #: 0.25 ms a pair for 256 pairs against 1 ms for 16), unless a second has passed.
    statistics_pairs: int = 256

    def _score_chunks(
        self,
        feed: ThreadFeed | ProcessFeed,
        count: int,
        n_listeners: int,
        per_window: bool,
        keep_distribution: bool,
        bar=None,
    ) -> list[Prediction]:
        """Run the model on each chunk of prepared pairs as the feed yields it, and the
        statistics on :attr:`statistics_pairs` pairs at a time (or what a second brought);
        returns the predictions in input order."""
        import time

        results: list[Prediction | None] = [None] * count
        pending: list[tuple[list[int], list[PreparedPair], list[Tensor]]] = []
        waiting, since = 0, time.monotonic()

        def flush() -> None:
            indices = [i for ind, _, _ in pending for i in ind]
            metas = [m for _, ms, _ in pending for m in ms]
            params = [p for _, _, ps in pending for p in ps]
            preds = self._predictions(params, metas, n_listeners, per_window, keep_distribution)
            for i, pred in zip(indices, preds):
                results[i] = pred
            if bar is not None:
                bar.update(len(indices))
            pending.clear()

        for chunk in feed:
            windows = [w for pair in chunk.pairs for w in pair.windows]
            params = self.head_parameters(windows, feed.before_pass)
            per_pair = torch.split(params, [len(pair.windows) for pair in chunk.pairs])
            # the windows' features are not kept once scored (the statistics need their spans)
            pending.append((chunk.indices, [p.scored() for p in chunk.pairs], list(per_pair)))
            waiting += len(chunk.pairs)
            if waiting >= self.statistics_pairs or time.monotonic() - since > 1.0:
                flush()
                waiting, since = 0, time.monotonic()
        if pending:
            flush()
        return results  # type: ignore[return-value]

    def distribution(self, reference: AudioInput, coded: AudioInput) -> Distribution:
        """The predicted score distribution of one pair (see the class docstring for long
        excerpts); ``predict(...).distribution`` is the same object."""
        return self.predict(reference, coded).distribution

    def simulate(
        self,
        reference: AudioInput,
        coded: AudioInput,
        n_listeners: int = 20,
        n_panels: int = 1000,
        seed: int | None = 0,
    ) -> Panels:
        """Simulate ``n_panels`` listening tests of ``n_listeners`` listeners on one pair.

        Each listener's score is an independent draw from the predicted distribution,
        clipped to 0–100 as on a MUSHRA slider (see the module docstring). Panel means and
        t-based CIs are computed from the clipped scores, as a real test's would be.

        Returns:
            :class:`Panels` (``scores`` ``[n_panels, n_listeners]``, ``means``, ``ci95``).
        """
        dist = self.distribution(reference, coded)
        return Panels(simulate_panels(dist, n_listeners, n_panels, seed))


def load(
    ckpt: str | os.PathLike | Sequence[str | os.PathLike],
    device: str | torch.device | None = None,
    **kwargs: Any,
) -> Listener:
    """Load a trained listener from a ``gml fit`` checkpoint (file or run folder).

    Args:
        ckpt: ``best.ckpt`` / ``last.ckpt``, or the run folder (its ``best.ckpt``); a list
            of them acts as one ensemble listener (see :mod:`gml.ensemble`).
        device: Where to run (default: CUDA when available, else CPU).
        **kwargs: :class:`Listener` options (``window_seconds``, ``batch_size``...).

    Raises:
        gml.errors.GMLError: not a gml checkpoint, or one whose classes cannot be rebuilt.
    """
    ckpts = list(ckpt) if isinstance(ckpt, (list, tuple)) else [ckpt]
    # the scoring network alone: no trainer, so Lightning is not imported
    members = [load_scoring_model(c) for c in ckpts]
    check_members(members, [str(c) for c in ckpts])
    # align codec delays as the training data were aligned (an explicit align= wins)
    config = members[0].checkpoint_config or {}
    kwargs.setdefault("align", bool((config.get("data") or {}).get("align", True)))
    # the networks were built for this listener alone: prepared in place, not copied
    kwargs.setdefault("copy_networks", False)
    return Listener(members if len(members) > 1 else members[0], device=device, **kwargs)


def __getattr__(name: str) -> Any:
    # load_module (the training module, with Lightning) only when asked for
    if name == "load_module":
        from gml.checkpoint import load_module

        return load_module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
