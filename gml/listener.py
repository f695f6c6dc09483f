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

import functools
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, MixtureSameFamily

from gml.checkpoint import load_module
from gml.features.device import values_on
from gml.features.pair import (
    MAX_LENGTH_DIFFERENCE,
    delay_skips,
    describe_difference,
    length_difference,
    pair_frames,
    stack_pair,
    stack_pairs,
)
from gml.heads import EqualMixture
from gml.inference import fold_batchnorm
from gml.stats import SCORE_RANGE, ci_halfwidth

__all__ = [
    "QUANTILES",
    "Listener",
    "Panels",
    "Prediction",
    "load",
    "load_module",
    "quantiles",
    "simulate_panels",
    "slider_interval",
]

#: Probabilities of the reported quantiles (5, 25, 50, 75, 95 %).
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SCALE = SCORE_RANGE

AudioInput = Any  # a path, or (array, sample_rate)


def quantiles(dist: Distribution, probs: Sequence[float] = QUANTILES) -> Tensor:
    """Quantiles of a scalar-batch score distribution, by bisection on its CDF (works for
    mixtures, which have no ``icdf``); NaN when the distribution has no spread or no CDF.

    Shape:
        returns ``[len(probs)]`` (float64).
    """
    mean, std = dist.mean.double().reshape(1), dist.stddev.double().reshape(1)
    dtype = dist.mean.dtype
    return _bisect_quantiles(lambda x: dist.cdf(x.to(dtype)[:, 0]).unsqueeze(1), mean, std, probs)[
        :, 0
    ]


def _bisect_quantiles(
    cdf: Callable[[Tensor], Tensor], mean: Tensor, std: Tensor, probs: Sequence[float]
) -> Tensor:
    """Quantiles of several distributions at once, by bisection on their CDFs between
    ``mean ± (40 std + 1)``; NaN where the mean or spread is not finite or there is no CDF.

    Shape:
        cdf: ``[Q, D]`` values → ``[Q, D]`` probabilities; mean, std: ``[D]``;
        returns ``[Q, D]`` (float64).
    """
    p = torch.as_tensor(probs, dtype=torch.float64).unsqueeze(1).to(mean.device)
    ok = torch.isfinite(mean) & torch.isfinite(std)
    mean, std = torch.where(ok, mean, 0.0), torch.where(ok, std, 1.0)
    lo = (mean - 40 * std - 1).expand(len(probs), -1)
    hi = (mean + 40 * std + 1).expand(len(probs), -1)
    try:
        # 80 std + 2 points shrunk 2^-40: under 1e-8 points for any std below 100
        for _ in range(40):
            mid = (lo + hi) / 2
            below = cdf(mid).double() < p
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    except NotImplementedError:
        return mean.new_full((len(probs), len(mean)), float("nan"), dtype=torch.float64)
    return torch.where(ok, (lo + hi) / 2, float("nan"))


def simulate_panels(
    dist: Distribution, n_listeners: int, n_panels: int, seed: int | None = 0
) -> np.ndarray:
    """Individual scores of simulated listening-test panels, clipped to the 0–100 scale.

    Each simulated listener draws one score independently from ``dist`` (the model has no
    listener identity); a draw outside 0–100 becomes 0 or 100, as on a MUSHRA slider.

    Args:
        dist: A scalar-batch score distribution.
        n_listeners: Listeners per panel.
        n_panels: Number of panels.
        seed: Seed of the draws (``None``: torch's global generator).

    Shape:
        returns ``[n_panels, n_listeners]`` (float64).
    """
    if n_listeners < 1 or n_panels < 1:
        raise ValueError("n_listeners and n_panels must be at least 1")
    devices = [dist.mean.device] if dist.mean.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        draws = dist.sample((n_panels, n_listeners))
    return np.clip(draws.double().cpu().numpy(), *SCALE)


@dataclass
class Panels:
    """Simulated listening-test panels of one pair (see :func:`simulate_panels`).

    Attributes:
        scores: ``[n_panels, n_listeners]`` individual scores on the 0–100 scale.
        means: ``[n_panels]`` each panel's mean score.
        ci95: ``[n_panels]`` each panel's t-based 95 % CI half-width (sample std, ddof 1).
    """

    scores: np.ndarray
    means: np.ndarray = field(init=False)
    ci95: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.scores.shape[1]
        self.means = self.scores.mean(axis=1)
        std = self.scores.std(axis=1, ddof=1) if n > 1 else np.full(len(self.scores), np.nan)
        self.ci95 = ci_halfwidth(std, n)

    def summary(self) -> pd.DataFrame:
        """One row per panel: ``panel, mean, ci95, low, high``; ``low, high`` is the panel's
        CI, ``mean ∓ ci95``, cut at 0 and 100 (as :func:`slider_interval`)."""
        return pd.DataFrame(
            {
                "panel": np.arange(len(self.means)),
                "mean": self.means,
                "ci95": self.ci95,
                "low": np.clip(self.means - self.ci95, *SCALE),
                "high": np.clip(self.means + self.ci95, *SCALE),
            }
        )


def slider_interval(mean: float, std: float, n_listeners: int) -> tuple[float, float]:
    """The 95 % CI a test with ``n_listeners`` listeners would report, from the mean and SD
    of scores as a slider records them (see :attr:`Prediction.ci95_low`): ``mean ±
    t(0.975, N − 1) · std / √N``, cut at 0 and 100 where it reaches beyond them (the mean of
    slider scores cannot; cutting a confidence interval to the values possible keeps its
    coverage). NaN where ``mean`` or ``std`` is."""
    half = ci_halfwidth(std, n_listeners)
    return float(np.clip(mean - half, *SCALE)), float(np.clip(mean + half, *SCALE))


@dataclass
class Prediction:
    """The predicted listening-test result of one reference/coded pair.

    Attributes:
        reference, coded: The inputs (paths, or ``"<array>"``).
        n_listeners: The panel size the CI is for.
        mean: Predicted mean score (clamped to 0–100, see ``clamped``).
        std: Predicted standard deviation of listeners' scores (for an ensemble: the listener
            spread, root mean of the members' variances).
        model_std: Disagreement of an ensemble's members (standard deviation of their means);
            NaN for one model.
        members: Number of models.
        ci95: t-based 95 % CI half-width a test with ``n_listeners`` listeners would give,
            from the model's spread (``std``).
        ci95_low, ci95_high: The 95 % CI such a test would report, from scores as a slider
            records them (the model's distribution clipped to 0–100): their mean ± the
            t-based half-width of their SD, cut at 0 and 100 (:func:`slider_interval`).
            Always inside the scale; equal to ``mean ± ci95`` (to rounding) when the model
            puts next to nothing outside 0–100.
        slider_mean, slider_std: Mean and listener SD of those slider scores (what a test's
            mean and SD estimate; for an ensemble, the members' means averaged and their
            variances, as for ``std``).
        q05, q25, q50, q75, q95: Quantiles of an individual listener's score (0–100), from the
            whole predictive distribution (for an ensemble: listener spread and model
            disagreement together).
        p_outside: Probability the model puts outside 0–100.
        clamped: The model's mean lay outside 0–100 and was clamped.
        duration: Seconds analysed (the longer of the two signals).
        delay_ms: Estimated delay of the coded signal (positive: it lags), removed before
            the features were computed (see :mod:`gml.features.delay`); 0 with ``align=False``.
        windows: Number of analysis windows combined.
        reference_rate, reference_channels, coded_rate, coded_channels: The files as read.
        warnings: One line per reason the score may not mean what it seems (unrelated or
            silent signals, a very short excerpt, mono against stereo, a low sample rate, a
            length mismatch); each was also issued as a :class:`~gml.errors.GMLWarning`.
        distribution: The head's distribution (a mixture over the analysis windows); not
            written to files.
        per_window: One row per window (``start, end, mean, std``) when asked for.
    """

    reference: str
    coded: str
    n_listeners: int
    mean: float
    std: float
    model_std: float
    members: int
    ci95: float
    ci95_low: float
    ci95_high: float
    slider_mean: float
    slider_std: float
    q05: float
    q25: float
    q50: float
    q75: float
    q95: float
    p_outside: float
    clamped: bool
    duration: float
    delay_ms: float
    windows: int
    reference_rate: int
    reference_channels: int
    coded_rate: int
    coded_channels: int
    warnings: list[str] = field(default_factory=list)
    distribution: Distribution | None = field(default=None, repr=False, compare=False)
    per_window: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain Python values (what ``gml predict`` writes to JSON)."""
        out = asdict(self)
        out.pop("distribution")
        pw = out.pop("per_window")
        if self.per_window is not None:
            out["per_window"] = pw.to_dict(orient="records")
        return out


#: Columns of :meth:`Listener.predict`'s table, in order (before any carried-through columns).
PREDICTION_FIELDS = tuple(
    f for f in Prediction.__dataclass_fields__ if f not in ("distribution", "per_window")
)


class _PairFacts(NamedTuple):
    """What a prepared pair carries for :meth:`Listener._check_pair` besides the headers.

    Attributes:
        correlation: The delay search's normalised correlation (None: no search).
        peaks: The loudest feature value of the reference and of the coded signal: a ``[2]``
            tensor while the pair is prepared, floats once read with the statistics.
    """

    correlation: float | None
    peaks: Any


#: Held while a prefetch thread and the model share the torch threads of a caller
#: (:meth:`Listener._share_threads`): one such call at a time in a process.
_SHARING = threading.Lock()


@functools.cache
def _per_thread_torch_threads() -> bool:
    """Whether ``torch.set_num_threads`` sets the calling thread's own count (torch's
    OpenMP backend); with the native or TBB backend the count is the process's."""
    return "ATen parallel backend: OpenMP" in torch.__config__.parallel_info()


class Listener:
    """A trained GML: audio pairs in, listening-test predictions out.

    Args:
        module: The trained :class:`~gml.module.GMLModule` (see :func:`load`).
        device: ``"cuda"``, ``"cpu"``... (default: CUDA when available).
        window_seconds: Excerpts up to this long are scored whole, in one pass, as the model
            saw excerpts in training and as ``gml test`` scores them; longer ones in windows
            of this length.
        window_overlap: Overlap of consecutive windows (0.5: a window every 10 s).
        batch_size: Windows of equal length per forward pass (default: 8 on CPU, 16 on a
            GPU). On CPU, InSE-Net still runs one window's views at a time inside the batch
            (``ViewBranch.cpu_eval_chunk``), so memory stays bounded; a backbone of your own
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
    ):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if window_seconds <= 0 or not 0 <= window_overlap < 1:
            raise ValueError("window_seconds must be > 0 and window_overlap in [0, 1)")
        self.device = torch.device(device)
        from gml.ensemble import check_members

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
        # inference copies of the backbones with batch norm folded into the convolutions
        # (the same function with less work; the modules passed in are not changed)
        self._backbones = [fold_batchnorm(m.backbone) for m in self.members]
        self._remembered: dict = {}  # see feature_memory
        self._remembered_lock = threading.Lock()
        # per calling thread, while a prefetch thread analyses for it on CPU: (the caller's
        # torch threads, [the threads the prefetch thread computes with]); see _share_threads
        self._thread_share = threading.local()

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint the listener was loaded from (the first member's for an ensemble)."""
        return getattr(self.module, "checkpoint_path", None)

    @property
    def checkpoints(self) -> list[str | None]:
        """Every member's checkpoint."""
        return [getattr(m, "checkpoint_path", None) for m in self.members]

    # -- features -------------------------------------------------------------------------

    #: Files whose features are remembered: a reference scored against several coded
    #: versions (a codec comparison) is analysed once.
    feature_memory: int = 4

    def _features(self, source: AudioInput, skip: int = 0):
        from gml.features.stream import DecodedFile, streamed_spectrogram

        if isinstance(source, tuple) and len(source) == 2:
            array, rate = source
            source = (array, int(rate))
        key = None
        if isinstance(source, DecodedFile):  # keyed on the file as it was when decoded
            if source.version is not None:
                key = (os.path.realpath(source.info.source), *source.version, skip)
        elif isinstance(source, (str, os.PathLike)):
            try:
                st = os.stat(source)
                key = (os.path.realpath(source), st.st_mtime_ns, st.st_size, skip)
            except OSError:
                key = None  # streamed_spectrogram reports the missing file
        if key is not None:
            with self._remembered_lock:
                hit = self._remembered.get(key)
            if hit is not None:
                return hit
        result = streamed_spectrogram(
            source, self.frontend, block_seconds=self.block_seconds, skip_samples=skip
        )
        if key is not None and self.feature_memory > 0:
            with self._remembered_lock:
                self._remembered[key] = result
                while len(self._remembered) > self.feature_memory:
                    self._remembered.pop(next(iter(self._remembered)))  # the oldest
        return result

    def _windows(self, num_frames: int) -> list[tuple[int, int]]:
        """``(start, end)`` frame ranges covering ``num_frames`` (see the class docstring)."""
        w = self.window_frames
        if num_frames <= w:
            return [(0, num_frames)]
        starts = list(range(0, num_frames - w + 1, self.hop_frames))
        if starts[-1] != num_frames - w:
            starts.append(num_frames - w)  # the last window ends with the excerpt
        return [(s, s + w) for s in starts]

    @torch.inference_mode()
    def _window_params(self, feats: list[Tensor]) -> Tensor:
        """Head parameters of each window for every member; windows of equal length share
        forward passes (so batching never changes a prediction: no padding between windows).
        The parameters stay on the model's device: copying them back batch by batch would
        make the host wait for each batch before preparing the next.

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
                self._share_threads()
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

    def _share_threads(self) -> None:
        """Before a forward pass on CPU with a prefetch thread: the model gets the calling
        thread's torch threads but those the prefetch thread computes with (one, or half of
        them while the model has no prepared pair waiting: see :meth:`_prepared_chunks`),
        all of them when it has nothing to do. Both at once on every core made them compete:
        on two cores, threads that wait at the model's synchronisation points spin on a core
        the analysis needs (benchmarks/predict_vs_visqol.py on two cores: 3-17 % less time
        in 12 of 13 rounds). With torch's OpenMP backend the count is per thread, so this
        changes no other running thread's (only the default of threads that start using
        torch meanwhile)."""
        share = getattr(self._thread_share, "value", None)
        if share is None:
            return
        threads, busy = share
        want = max(1, threads - busy[0])
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)

    def _head_params(self, module: Any, net: nn.Module, x: Tensor) -> Tensor:
        """Raw head parameters of a batch of windows for one member: the backbone under
        bfloat16 autocast when asked, the head always in float32 (as in training).

        Shape:
            x: ``[B, 4, 2, bands, T]`` → ``[B, num_params]`` (float32, on the model's device).
        """
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            embedding = net(x)
        return module.head.proj(embedding.float()).float()

    def _distribution(self, params: Tensor) -> Distribution:
        """The excerpt's distribution from its windows' parameters: per member the
        equal-weight mixture over windows; for an ensemble, the equal mixture of members.

        Shape:
            params: ``[W, members, num_params]`` → a distribution with batch shape ``[]``.
        """
        per_member = []
        for k, m in enumerate(self.members):
            components = m.spread_distribution(params[:, k])
            weights = Categorical(logits=torch.zeros(params.shape[0]))
            per_member.append(MixtureSameFamily(weights, components, validate_args=False))
        return per_member[0] if len(per_member) == 1 else EqualMixture(per_member)

    # -- prediction -----------------------------------------------------------------------

    def _pair_windows(self, reference: AudioInput, coded: AudioInput):

        delay, correlation = 0, None
        if self.align:
            from gml.features.delay import HEAD_SECONDS, estimate_delay
            from gml.features.stream import decode_short_file

            # the delay search and the features read the same file. One no longer than the
            # search's head (and a block) is read whole by the search anyway, so it is
            # decoded once for both; a longer one is read twice as before (its head, then
            # its blocks), so that remembered features never cost a whole decoding
            short = min(self.block_seconds, HEAD_SECONDS)
            reference, coded = (decode_short_file(s, short) for s in (reference, coded))
            found = estimate_delay(reference, coded, self.frontend.settings()["sample_rate"])
            delay, correlation = found.samples, found.correlation
        ref_skip, cod_skip = delay_skips(delay)
        ref, ref_info = self._features(reference, skip=ref_skip)
        cod, cod_info = self._features(coded, skip=cod_skip)
        return self._prepared_pair(ref, cod, ref_info, cod_info, delay, correlation)

    def _prepared_pair(
        self,
        ref: Tensor,
        cod: Tensor,
        ref_info,
        cod_info,
        delay: int,
        correlation: float | None = None,
    ):
        """``(windows, spans, ref_info, cod_info, delay, facts)`` of a pair from its two
        aligned spectrograms: the shorter zero-padded on both sides, cut into windows
        (``facts``: what :meth:`_check_pair` needs besides the files' headers).

        Shape:
            ref, cod: ``[4, bands, T_ref]``, ``[4, bands, T_cod]``; windows: each
            ``[4, 2, bands, T_window]``.
        """
        pair = stack_pair(ref, cod)
        return self._pair_from(pair, ref_info, cod_info, delay, correlation)

    def _pair_from(
        self,
        pair: Tensor,
        ref_info,
        cod_info,
        delay: int,
        correlation: float | None = None,
        peaks: Tensor | None = None,
    ):
        """:meth:`_prepared_pair` of a pair already padded and stacked.

        Args:
            correlation: The delay search's normalised correlation (None: not searched).
            peaks: The loudest value of the reference's and of the coded signal's features
                (computed from ``pair`` when not given).

        Shape:
            pair: ``[4, 2, bands, T]``; peaks: ``[2]`` (on any device: read with the
            statistics, see :meth:`_predictions`).
        """
        if peaks is None:
            peaks = pair.amax(dim=(0, 2, 3))
        spans = self._windows(pair.shape[-1])
        facts = _PairFacts(correlation, peaks)
        return [pair[..., s:e] for s, e in spans], spans, ref_info, cod_info, delay, facts

    #: Warn when the aligned signals' lengths differ by more than this (seconds).
    max_length_difference: float = MAX_LENGTH_DIFFERENCE
    #: Warn below this sample rate: the gammatone bands above its Nyquist frequency are empty.
    min_sample_rate: int = 16000
    #: Warn when the excerpt (the longer signal) is shorter than this (seconds): listening
    #: tests, and the material a listener is trained on, use excerpts of several seconds.
    min_duration: float = 1.0
    #: Warn when a signal's loudest gammatone band (RMS over one 80 ms frame) stays below
    #: this level in dB relative to full scale over the whole excerpt: (near) silence.
    silence_dbfs: float = -70.0
    #: Warn when the waveforms correlate less than this at every delay the search tries
    #: (normalised cross-correlation over the first 30 s; needs ``align``): unrelated
    #: signals. Real coded, low-passed and source-separated signals stayed above it
    #: (docs/errors.md); the delay search itself removes no delay below 0.3.
    unrelated_correlation: float = 0.1

    def _check_pair(self, ref_info, cod_info, delay: int, facts=None) -> list[str]:
        """Warnings for pairs that can be scored but may not mean what the user thinks: each
        is issued as a :class:`~gml.errors.GMLWarning` and returned (one line each), for
        :attr:`Prediction.warnings`.

        Args:
            facts: The pair's :class:`_PairFacts`, with the peaks already read to the host
                (floats); None leaves out the checks that need them.
        """
        import warnings

        from gml.errors import GMLWarning

        notes = []
        for info in (ref_info, cod_info):
            if info.sample_rate < self.min_sample_rate:
                notes.append(
                    f"{info.source}: sample rate {info.sample_rate} Hz; the bands above "
                    f"{info.sample_rate // 2} Hz are empty, so the score compares less of the "
                    "spectrum than for full-band audio"
                )
        fs = self.frontend.settings()["sample_rate"]
        diff = length_difference(ref_info.duration, cod_info.duration, delay / fs)
        if abs(diff) > self.max_length_difference:
            notes.append(
                f"{cod_info.source} is {describe_difference(diff)} "
                f"than its reference {ref_info.source} after removing a {1000 * delay / fs:.0f} "
                "ms delay; the shorter one is zero-padded on both sides"
            )
        if ref_info.channels != cod_info.channels:
            mono_coded = cod_info.channels == 1
            notes.append(
                f"{cod_info.source} is {'mono' if mono_coded else 'stereo'} and its reference "
                f"{ref_info.source} {'stereo' if mono_coded else 'mono'}; the mono one is used "
                "as L = R, so the difference in stereo image counts as a degradation"
            )
        duration = max(ref_info.duration, cod_info.duration)
        if duration < self.min_duration:
            notes.append(
                f"{cod_info.source} and its reference {ref_info.source} last {duration:.2f} s, "
                f"less than {self.min_duration:g} s; listening tests (and the training "
                "material) use excerpts of several seconds, so the score means little"
            )
        silent = False
        if facts is not None:
            levels = [self._dbfs(p) for p in facts.peaks]
            consequence = (
                "there is nothing to compare the coded signal with",
                "a silent signal is not a coded version of its reference",
            )
            for info, level, why in zip((ref_info, cod_info), levels, consequence):
                if level < self.silence_dbfs:
                    silent = True
                    if level <= self._dbfs(0.0):
                        what = f"silent (all its bands at the features' floor, {level:.0f} dBFS)"
                    else:
                        what = (
                            f"near-silent (its loudest band peaks at {level:.0f} dBFS, below "
                            f"{self.silence_dbfs:g})"
                        )
                    notes.append(f"{info.source} is {what}: {why}, so the score means little")
        if facts is not None and facts.correlation is not None and not silent:
            if facts.correlation < self.unrelated_correlation:
                notes.append(
                    f"{cod_info.source} and its reference {ref_info.source} look unrelated: "
                    f"their waveforms correlate at most {facts.correlation:.2f} (below "
                    f"{self.unrelated_correlation:g}) at any delay within ±0.5 s, so the score "
                    "of the pair means little (a different excerpt?)"
                )
        for note in notes:
            warnings.warn(note, GMLWarning, stacklevel=6)
        return notes

    def _dbfs(self, peak: float) -> float:
        """A value of the frontend's features (dB above its floor) as the band RMS in dB
        relative to full scale (-90 for silence at the default floor)."""
        s = self.frontend.settings()
        return (float(peak) + s["abs_floor_db"]) * 20.0 / s["db_scale"]

    #: Points of the midpoint rule over the scale that gives the slider scores' moments
    #: (the step is 0.5 points: the SD is off by well under 0.01 points).
    slider_grid: int = 200

    def _slider_moments(
        self, comps: list, per_pair: Callable, owner: Tensor, mean: Tensor, std: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Mean and listener SD of the scores as a slider records them: each member's
        distribution clipped to 0–100 (a draw below 0 is a 0, above 100 a 100). For ``Y`` on
        ``[a, b]``, ``E[Y] = a + ∫ P(Y > x) dx`` and ``E[Y²] = a² + ∫ 2x P(Y > x) dx`` over
        ``(a, b)``, by the midpoint rule on :attr:`slider_grid` points; for an ensemble, the
        members' means and variances are averaged (as for ``std``). Without a CDF, the
        clamped ``mean`` and ``std``.

        Shape:
            comps: per member, the windows' distributions ``[N]``; owner: ``[N]``;
            mean, std: ``[pairs]`` → two ``[pairs]`` (float64).
        """
        lo, hi = SCALE
        step = (hi - lo) / self.slider_grid
        x = lo + step * (torch.arange(self.slider_grid, dtype=torch.float64) + 0.5)
        x = x.to(mean.device)[:, None]  # [G, 1]
        try:
            means, variances = [], []
            for c in comps:
                at = x.to(c.mean.dtype).expand(-1, owner.numel())  # [G, N]
                above = 1.0 - per_pair(c.cdf(at))  # [G, pairs]: P(Y > x)
                m = lo + step * above.sum(0)
                second = lo**2 + step * (2.0 * x * above).sum(0)
                means.append(m)
                variances.append((second - m**2).clamp_min(0.0))
        except NotImplementedError:
            return mean.clamp(lo, hi), std
        return torch.stack(means).mean(0), torch.stack(variances).mean(0).sqrt()

    def _predictions(
        self,
        params: list[Tensor],
        prepared: list,
        n_listeners: int,
        per_window: bool,
        keep_distribution: bool,
    ) -> list[Prediction]:
        """The predictions of a chunk of pairs, their statistics computed for all at once.

        Each pair's distribution is the mixture of :meth:`_distribution`; its mean, spreads,
        CDF and quantiles are computed here from the windows' components with segment sums
        over the whole chunk (one bisection for every pair and quantile), which gives the same
        figures as the mixture objects to float rounding (tested) at a small fraction of the
        cost: built pair by pair, the statistics took about 14 ms a pair on a 2-core CPU, more
        than the model takes on a GPU.

        Args:
            params: Per pair ``[W_i, members, num_params]`` (its windows' head parameters).
            prepared: Per pair ``(windows, spans, ref_info, cod_info, delay, facts)``
                (:meth:`_pair_from`; without ``facts`` the checks that need them are left
                out). Each pair's warnings are issued here (:meth:`_check_pair`).
            keep_distribution: Build each pair's distribution object (one pair: its
                :attr:`Prediction.distribution`; lists leave it out).
        """
        device = params[0].device
        counts = [p.shape[0] for p in params]
        count = values_on(device, counts)
        pairs = len(params)
        owner = values_on(
            device, [i for i, c in enumerate(counts) for _ in range(c)]
        )  # of each window
        flat = torch.cat(params)  # [N, members, num_params]
        comps = [m.spread_distribution(flat[:, k]) for k, m in enumerate(self.members)]
        weight = 1.0 / count[owner].double()  # each window's weight in its pair's mixture

        def per_pair(x: Tensor) -> Tensor:  # [..., N] -> [..., pairs]: window-weighted sums
            out = x.new_zeros(*x.shape[:-1], pairs, dtype=torch.float64)
            return out.index_add_(-1, owner, x.double() * weight)

        mu = torch.stack([c.mean for c in comps])  # [members, N]
        var = torch.stack([c.variance for c in comps])
        member_mean = per_pair(mu)  # [members, pairs]
        # a mixture's variance: mean of the windows' variances + variance of their means
        member_var = per_pair(var) + per_pair((mu.double() - member_mean[:, owner]) ** 2)
        mean = member_mean.mean(0)
        if len(self.members) > 1:  # EqualMixture: listener spread and model disagreement
            std = member_var.mean(0).sqrt()
            model_std = member_mean.std(0, unbiased=False)
            total_std = (std**2 + model_std**2).sqrt()
        else:
            std = total_std = member_var[0].sqrt()
            model_std = torch.full_like(mean, float("nan"))
        members = len(comps)

        def cdf(x: Tensor) -> Tensor:  # x [Q, pairs] -> each pair's mixture CDF [Q, pairs]
            at = x.to(mu.dtype)[:, owner]  # [Q, N]: each window at its pair's value
            return sum(per_pair(c.cdf(at)) for c in comps) / members

        try:
            below = torch.nextafter(torch.tensor(SCALE[0]), torch.tensor(-1.0)).item()
            bounds = mean.new_tensor([below, float(SCALE[1])])[:, None].expand(2, pairs)
            at_bounds = cdf(bounds)
            # below 0 is P(X < 0), not P(X <= 0): a censored head's mass at exactly 0 is inside
            p_out = at_bounds[0] + 1 - at_bounds[1]
        except NotImplementedError:
            p_out = torch.full_like(mean, float("nan"))
        q = _bisect_quantiles(cdf, mean, total_std, QUANTILES)  # [Q, pairs]
        slider_mean, slider_std = self._slider_moments(comps, per_pair, owner, mean, std)
        # each pair's peaks (for _check_pair); 5-tuples (no facts) leave the silence check out
        facts = [meta[5] if len(meta) > 5 else None for meta in prepared]
        peaks = torch.stack(
            [
                f.peaks.to(device).double() if f is not None else mean.new_full((2,), np.nan)
                for f in facts
            ],
            dim=1,
        )  # [2, pairs]
        # every figure to the host in one transfer (on a GPU: one wait for a whole chunk)
        figures = torch.cat(
            [torch.stack([mean, std, model_std, p_out.double(), slider_mean, slider_std]), q, peaks]
        ).cpu()
        (mean, std, model_std, p_out, slider_mean, slider_std) = figures[:6].tolist()
        q = figures[6 : 6 + len(QUANTILES)].T.tolist()
        peaks = figures[6 + len(QUANTILES) :].T.tolist()
        if per_window or keep_distribution:
            params = list(torch.split(flat.cpu(), counts))

        fs = self.frontend.settings()["sample_rate"]
        hop_s, win_s = self.frontend.hop_length / fs, self.frontend.win_length / fs
        if per_window:
            window_mean = torch.stack([c.mean for c in comps]).mean(0).cpu()  # [N] over members
            window_std = torch.stack([c.variance for c in comps]).mean(0).sqrt().cpu()
        first = np.cumsum(counts) - np.asarray(counts)
        out = []
        for i, (_, spans, ref_info, cod_info, delay, *_) in enumerate(prepared):
            fact = None if facts[i] is None else facts[i]._replace(peaks=peaks[i])
            notes = self._check_pair(ref_info, cod_info, delay, fact)
            low, high = slider_interval(slider_mean[i], slider_std[i], n_listeners)
            window_table = None
            if per_window:
                rows = slice(int(first[i]), int(first[i] + counts[i]))
                window_table = pd.DataFrame(
                    {
                        "start": [s * hop_s for s, _ in spans],
                        "end": [(e - 1) * hop_s + win_s for _, e in spans],
                        "mean": window_mean[rows].numpy().astype(float),
                        "std": window_std[rows].numpy().astype(float),
                    }
                )
            m = mean[i]
            out.append(
                Prediction(
                    reference=ref_info.source,
                    coded=cod_info.source,
                    n_listeners=int(n_listeners),
                    mean=float(np.clip(m, *SCALE)),
                    std=std[i],
                    model_std=model_std[i],
                    members=members,
                    ci95=float(ci_halfwidth(std[i], n_listeners)),
                    ci95_low=low,
                    ci95_high=high,
                    slider_mean=slider_mean[i],
                    slider_std=slider_std[i],
                    **{
                        f"q{round(p * 100):02d}": float(np.clip(q[i][j], *SCALE))
                        for j, p in enumerate(QUANTILES)
                    },
                    p_outside=p_out[i],
                    clamped=bool(m < SCALE[0] or m > SCALE[1]),
                    duration=max(ref_info.duration, cod_info.duration),
                    delay_ms=1000.0 * delay / fs,
                    windows=len(spans),
                    reference_rate=ref_info.sample_rate,
                    reference_channels=ref_info.channels,
                    coded_rate=cod_info.sample_rate,
                    coded_channels=cod_info.channels,
                    warnings=notes,
                    distribution=self._distribution(params[i]) if keep_distribution else None,
                    per_window=window_table,
                )
            )
        return out

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
        from gml.data.cache import progress as progress_bar

        bar = progress_bar(len(refs), "gml predict", show)
        paths = all(isinstance(x, (str, os.PathLike)) for x in refs + cods)
        if self.workers > 0 and len(refs) > 1 and paths:
            chunks = self._loaded_chunks(refs, cods)
        else:
            chunks = self._prepared_chunks(refs, cods, chunk_pairs)
        keep = single or distributions
        try:
            results = self._score_chunks(chunks, len(refs), n_listeners, per_window, keep, bar)
        finally:
            # now and in this thread, also after an error (a traceback kept by the caller
            # would keep the generator alive): stops the prefetch thread and gives the
            # calling thread back its torch threads
            chunks.close()
            bar.close()
        if single:
            return results[0]
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
        chunks,
        count: int,
        n_listeners: int,
        per_window: bool,
        keep_distribution: bool,
        bar=None,
    ) -> list[Prediction]:
        """Run the model on each chunk of prepared pairs as it comes (``(indices, pairs)``,
        :meth:`_pair_windows`), and the statistics on :attr:`statistics_pairs` pairs at a
        time (or what a second brought); returns the predictions in input order."""
        import time

        results: list[Prediction | None] = [None] * count
        pending: list[tuple[list[int], list, list[Tensor]]] = []
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

        for indices, pairs in chunks:
            # the windows' features are not kept once scored (the statistics need their spans)
            pending.append(
                (list(indices), [(None, *rest) for _, *rest in pairs], self._pair_params(pairs))
            )
            waiting += len(pairs)
            if waiting >= self.statistics_pairs or time.monotonic() - since > 1.0:
                flush()
                waiting, since = 0, time.monotonic()
        if pending:
            flush()
        return results  # type: ignore[return-value]

    def _pair_params(self, pairs: list) -> list[Tensor]:
        """Head parameters of each prepared pair's windows (:meth:`_pair_windows`), on the
        model's device (views of one tensor).

        Shape:
            returns per pair ``[W_i, members, num_params]``.
        """
        params = self._window_params([w for windows, *_ in pairs for w in windows])
        return list(torch.split(params, [len(windows) for windows, *_ in pairs]))

    def _prepared_chunks(self, refs: list, cods: list, chunk_pairs: int):
        """Yield ``(indices, prepared pairs)`` (:meth:`_pair_windows`), in order, at most
        ``chunk_pairs`` at a time (so memory stays bounded).

        With :attr:`prefetch` and more than one pair, a worker thread reads, aligns and
        analyses the next pairs while the caller runs the model on the ones already prepared:
        each chunk is whatever is ready (at least one pair), so the two overlap from the
        first pair on. Errors are raised in order, as without the worker.
        """
        if not self.prefetch or len(refs) < 2:
            for start in range(0, len(refs), chunk_pairs):
                stop = min(start + chunk_pairs, len(refs))
                yield (
                    range(start, stop),
                    [self._pair_windows(r, c) for r, c in zip(refs[start:stop], cods[start:stop])],
                )
            return
        import queue

        ready: queue.Queue = queue.Queue(maxsize=chunk_pairs)
        stop = threading.Event()
        threads = torch.get_num_threads()
        busy = [0]  # the torch threads the worker is computing with (0: none)
        # (on a GPU the model does not use these threads; one sharing call at a time, since
        # each set_num_threads also sets torch's default for threads that start using it)
        share = (
            self.device.type == "cpu"
            and _per_thread_torch_threads()
            and _SHARING.acquire(blocking=False)
        )
        owner = threading.get_ident()

        def work() -> None:
            for r, c in zip(refs, cods):
                if share:
                    # this thread's own count (see _share_threads): one while prepared
                    # pairs wait for the model, half when the model may be waiting for this
                    # one (the same on two cores; more cores than that were not measured)
                    want = 1 if ready.qsize() else max(1, threads // 2)
                    if torch.get_num_threads() != want:
                        torch.set_num_threads(want)
                    busy[0] = want
                try:
                    item = (self._pair_windows(r, c), None)
                except BaseException as err:  # handed to the caller, in order
                    item = (None, err)
                finally:
                    busy[0] = 0
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set() or item[1] is not None:
                    return

        worker = threading.Thread(target=work, name="gml-prefetch", daemon=True)
        outer = getattr(self._thread_share, "value", None)
        try:
            if share:
                self._thread_share.value = (threads, busy)
            worker.start()
            remaining = len(refs)
            while remaining:
                chunk = []
                item = ready.get()  # wait for at least one pair
                while True:
                    pair, err = item
                    if err is not None:
                        raise err
                    chunk.append(pair)
                    remaining -= 1
                    if not remaining or len(chunk) >= chunk_pairs:
                        break
                    try:
                        item = ready.get_nowait()  # and take whatever else is ready
                    except queue.Empty:
                        break
                done = len(refs) - remaining
                yield range(done - len(chunk), done), chunk
        finally:
            stop.set()
            if worker.ident is not None:  # (started)
                worker.join()
            if share:
                if threading.get_ident() == owner:  # (counts are per thread)
                    self._thread_share.value = outer
                    # also torch's default for new threads, which the worker's count set
                    torch.set_num_threads(threads)
                _SHARING.release()

    def _loaded_chunks(self, refs: list, cods: list):
        """Yield ``(indices, prepared pairs)`` for batches of pairs read by :attr:`workers`
        processes (:class:`gml.data.pair_audio.PairFeed`, kept for the next call), in order
        of length: the waveforms are copied to the device and analysed there, equal lengths
        together. Small batches come from the workers (the first arrives sooner, and a short
        list is shared evenly) and are gathered here until the model has :attr:`batch_size`
        windows. A pair that cannot be used raises its error (naming the file) when its batch
        arrives.
        """
        feed = self._reading_feed()
        indices: list[int] = []
        prepared: list = []
        for batch in feed.batches(refs, cods, *self._reading_batches(len(refs))):
            for item in batch["pairs"]:
                if "error" in item:
                    raise item["error"]
            indices += [item["index"] for item in batch["pairs"]]
            prepared += self._batch_windows(batch)
            if sum(len(windows) for windows, *_ in prepared) >= self.batch_size:
                yield indices, prepared
                indices, prepared = [], []
        if prepared:
            yield indices, prepared

    def _reading_feed(self):
        """The worker processes for the current settings (:attr:`workers`, :attr:`align`...):
        the running ones, or new ones if the settings changed since they started."""
        from gml.data.pair_audio import PairFeed

        fs = self.frontend.settings()["sample_rate"]
        settings = (fs, self.frontend.win_length / fs, self.align, self.delay_on_device)
        feed = self._feed
        if feed is None or feed.settings != settings or feed.num_workers != self.workers:
            self.close()
            feed = self._feed = PairFeed(
                *settings, num_workers=self.workers, pin_memory=self.device.type == "cuda"
            )
        return feed

    def _reading_batches(self, pairs: int) -> tuple[float, int]:
        """``(batch_seconds, max_pairs)`` of the workers' batches for a list of ``pairs``:
        about three batches a worker, of at most :attr:`batch_size` pairs of 10 s, and a
        divisor of it (so that the batches gathered for the model fill its passes)."""
        target = max(1, min(self.batch_size, math.ceil(pairs / (3 * max(1, self.workers)))))
        per_batch = max(d for d in range(1, target + 1) if self.batch_size % d == 0)
        return 20.0 * per_batch, per_batch

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

    @torch.inference_mode()
    def _batch_windows(self, batch: dict) -> list:
        """:meth:`_pair_windows` for a batch of loaded pairs, on the model's device in a
        number of kernel launches that does not grow with the batch (on a GPU the host's
        launches, not the device, limited the pairs a second): the signals are cut from the
        batch's samples into one zero-padded tensor by one gather, the delays searched
        together, the frontend run on the whole batch, and the pairs padded and stacked by
        one gather over frames. Signals longer than ``block_seconds`` are analysed block by
        block from the host copy (bounded memory).
        """
        from gml.data.pair_audio import (
            SIGNALS,
            device_samples,
            gather_signals,
            signal,
            signal_layout,
        )
        from gml.features.delay import HEAD_SECONDS, delays_of_heads_torch
        from gml.features.stream import streamed_spectrogram

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
            spec = streamed_spectrogram((wave, fs), self.frontend, self.block_seconds)[0]
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
            self._pair_from(
                pair[..., :t], it["reference_info"], it["coded_info"], delay, corr, peak
            )
            for pair, t, it, delay, corr, peak in zip(
                padded, pair_frames(frames), pairs, delays, correlations, peaks
            )
        ]

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
    if isinstance(ckpt, (list, tuple)):
        from gml.ensemble import load_members

        members = load_members(ckpt)
    else:
        members = [load_module(ckpt)]
    # align codec delays as the training data were aligned (an explicit align= wins)
    config = members[0].checkpoint_config or {}
    kwargs.setdefault("align", bool((config.get("data") or {}).get("align", True)))
    return Listener(members if len(members) > 1 else members[0], device=device, **kwargs)
