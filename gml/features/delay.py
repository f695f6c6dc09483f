"""Codec delay: the global time offset between a reference and its coded version.

Codecs add delay (AAC encoders/decoders typically 1–3 k samples; real AAC output in the
ViSQOL conformance set is about 0.1 s longer than its reference). Comparing frames of the two
signals that are shifted against each other makes clean audio look degraded, so gml estimates
one global delay per pair and drops it from the start of the later signal before features.

The estimate is the lag that maximises the cross-correlation of the two mono downmixes over
the first ``analysis_seconds`` (bounded memory however long the files), searched in
``±max_delay_seconds``. It is computed by FFT at a reduced rate (``search_rate``), then refined
at the full rate in a small window around the coarse peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gml.features.audio import check_finite, resample_factors
from gml.features.device import values_on
from gml.features.stream import AudioSource, open_source

__all__ = [
    "Delay",
    "delay_of_mono",
    "delays_of_heads_torch",
    "estimate_delay",
    "mono_head",
]


#: Defaults of :func:`estimate_delay`: the beginning of the signals that is compared, and the
#: largest delay searched either way. Its readers take the first ``HEAD_SECONDS``.
ANALYSIS_SECONDS = 30.0
MAX_DELAY_SECONDS = 0.5
HEAD_SECONDS = ANALYSIS_SECONDS + MAX_DELAY_SECONDS


@dataclass(frozen=True)
class Delay:
    """An estimated delay of the coded signal relative to the reference.

    Attributes:
        samples: Delay at ``sample_rate``; positive when the coded signal lags (its content
            starts later), negative when it leads.
        sample_rate: The rate ``samples`` is counted at.
        correlation: Normalised cross-correlation at that lag (1: identical up to gain); a
            low value (< 0.3) means the estimate is unreliable and 0 was used.
    """

    samples: int
    sample_rate: int
    correlation: float

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate


def _read_mono(source: AudioSource, seconds: float) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of a source as a float32 mono downmix at its own rate."""
    with open_source(source) as reader:
        file_rate = reader.info.sample_rate
        want = max(1, math.ceil(seconds * file_rate))
        parts, got = [], 0
        for block in reader.blocks(min(want, 10 * file_rate)):
            check_finite(reader.info.source, block)
            # the slice bounds the head; mono_head's own bound (want) never cuts it shorter
            parts.append(mono_head(block[:, : want - got].T, want / file_rate, file_rate))
            got += parts[-1].shape[0]
            if got >= want:
                break
    return np.concatenate(parts), file_rate


def _decimated(mono: np.ndarray, factor: int) -> np.ndarray:
    """Every ``factor``-th sample after a triangular low-pass of length ``2 * factor - 1``
    (weights 1, 2, ..., factor, ..., 2, 1; float64 out).

    A coarse view for locating the correlation peak, ~20x cheaper than ``resample_poly``
    and as good for it on the conformance pairs (same delays): it keeps the band below the
    new rate's Nyquist frequency nearly flat, which matters for tonal content there (a
    glockenspiel), at the price of some aliasing; the peak is refined at the full rate.
    Computed as two weighted sums over blocks of ``factor`` samples (einsum: one thread,
    no BLAS workers left spinning).
    """
    if factor <= 1:
        return mono.astype(np.float64)
    blocks = mono[: len(mono) // factor * factor].reshape(-1, factor)
    rising = np.arange(1, factor + 1, dtype=blocks.dtype)  # 1 .. factor
    falling = np.arange(factor - 1, -1, -1, dtype=blocks.dtype)  # factor-1 .. 0
    up = np.einsum("ij,j->i", blocks, rising, dtype=np.float64)
    down = np.einsum("ij,j->i", blocks, falling, dtype=np.float64)
    return (up[:-1] + down[1:]) / factor**2


def fast_length(n: int) -> int:
    """The smallest ``2^a · 3^b · 5^c ≥ n``: a length the real FFTs do fast (numpy's FFT,
    not scipy's, whose import costs a fresh process about a third of a second)."""
    best = 1 << max(0, int(n) - 1).bit_length()  # the next power of two
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = -(-int(n) // p35)  # ceil(n / p35), then up to a power of two
            candidate = p35 * (1 << max(0, m - 1).bit_length())
            best = min(best, candidate)
            p35 *= 3
        p5 *= 5
    return best


def _at_rate(mono: np.ndarray, file_rate: int, rate: int | None) -> np.ndarray:
    if rate is None or file_rate == rate:
        return mono
    up, down = resample_factors(file_rate, rate)
    # scipy.signal takes a noticeable part of start-up, and most files need no resampling
    from scipy.signal import resample_poly

    return resample_poly(mono, up, down).astype(np.float32, copy=False)


def _xcorr(ref: np.ndarray, cod: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Cross-correlation ``c[k] = sum_n ref[n] cod[n + k]`` for ``|k| <= max_lag``.

    A circular correlation of length ``size`` equals the linear one at lags ``|k| <=
    size - max(len(ref), len(cod))``, so the FFT only needs ``max(len) + max_lag`` points
    (rounded up to a fast size), not ``len(ref) + len(cod)``: about 3x fewer.
    """
    size = fast_length(max(len(ref), len(cod)) + max_lag + 1)
    c = np.fft.irfft(np.conj(np.fft.rfft(ref, size)) * np.fft.rfft(cod, size), size)
    lags = np.arange(-max_lag, max_lag + 1)
    return lags, c[lags % size]


def estimate_delay(
    reference: AudioSource,
    coded: AudioSource,
    sample_rate: int = 48000,
    max_delay_seconds: float = MAX_DELAY_SECONDS,
    analysis_seconds: float = ANALYSIS_SECONDS,
    search_rate: int = 8000,
    min_correlation: float = 0.3,
) -> Delay:
    """Estimate the global delay of ``coded`` relative to ``reference``.

    Args:
        reference, coded: Paths or ``(array, sample_rate)`` tuples.
        sample_rate: Rate of the returned delay (the frontend's rate).
        max_delay_seconds: Largest delay searched, either way.
        analysis_seconds: Length of the beginning of the signals that is compared.
        search_rate: Rate of the coarse FFT search (a low-pass view: codecs keep the low band).
        min_correlation: Below this normalised peak the delay is reported as 0 (silence,
            noise or unrelated signals have no meaningful delay).

    Returns:
        A :class:`Delay`.
    """
    span = analysis_seconds + max_delay_seconds
    # each file is read once; float32 is ample for locating a correlation peak, and the
    # sums that decide it (the dot products, the FFT's products) are done in float64 below
    ref_full, cod_full = (_read_mono(s, span) for s in (reference, coded))
    return delay_of_mono(
        ref_full, cod_full, sample_rate, max_delay_seconds, search_rate, min_correlation
    )


def mono_head(samples: np.ndarray, seconds: float, rate: int) -> np.ndarray:
    """The first ``seconds`` of decoded samples as the float32 mono downmix that
    :func:`estimate_delay` reads from a file (the same arithmetic, so the same delay).

    Shape:
        samples: ``[n, channels]`` (1 or 2 channels, soundfile's layout) → ``[m]``.
    """
    head = samples[: max(1, math.ceil(seconds * rate))]
    if head.shape[1] == 2:  # adding columns is ~5x faster than .mean(axis=1) on strided views
        return (head[:, 0] + head[:, 1]) * np.float32(0.5)
    return head.sum(axis=1) * np.float32(1 / head.shape[1])


def delay_of_mono(
    ref_full: tuple[np.ndarray, int],
    cod_full: tuple[np.ndarray, int],
    sample_rate: int = 48000,
    max_delay_seconds: float = MAX_DELAY_SECONDS,
    search_rate: int = 8000,
    min_correlation: float = 0.3,
) -> Delay:
    """:func:`estimate_delay` on mono downmixes already read (``(mono, rate)`` each, the
    first ``analysis_seconds + max_delay_seconds``: :func:`mono_head`)."""
    # coarse: the whole search range at about search_rate (an integer fraction of each
    # file's rate; both files must share it, else they are resampled to search_rate)
    ref_rate, cod_rate = ref_full[1], cod_full[1]
    if ref_rate == cod_rate:
        factor = max(1, round(ref_rate / search_rate))
        coarse_rate = ref_rate / factor
        ref, cod = _decimated(ref_full[0], factor), _decimated(cod_full[0], factor)
    else:
        coarse_rate = search_rate
        ref = _at_rate(*ref_full, search_rate).astype(np.float64)
        cod = _at_rate(*cod_full, search_rate).astype(np.float64)
    max_lag = int(round(max_delay_seconds * coarse_rate))
    lags, c = _xcorr(ref - ref.mean(), cod - cod.mean(), max_lag)
    # a periodic signal correlates (nearly) as well at whole periods of shift: of the lags
    # within 1 % of the best, take the smallest shift rather than an arbitrary period
    near = np.flatnonzero(c >= c.max() - 0.01 * abs(c.max()))
    coarse = int(lags[near[np.argmin(np.abs(lags[near]))]])
    # fine: ± a few coarse steps around the peak at the full rate
    ref = _at_rate(*ref_full, sample_rate)
    cod = _at_rate(*cod_full, sample_rate)
    ref, cod = ref - ref.mean(dtype=np.float64), cod - cod.mean(dtype=np.float64)
    scale = sample_rate / coarse_rate
    centre, radius = int(round(coarse * scale)), int(math.ceil(2 * scale))
    lags = np.arange(centre - radius, centre + radius + 1)
    values = np.array([_dot_at(ref, cod, k) for k in lags])
    best = int(lags[np.argmax(values)])
    energy = math.sqrt(_dot(ref, ref) * _dot(cod, cod))
    corr = float(values.max() / energy) if energy > 0 else 0.0
    if corr < min_correlation:
        return Delay(0, sample_rate, corr)
    return Delay(best, sample_rate, corr)


def _dot_at(ref: np.ndarray, cod: np.ndarray, k: int) -> float:
    """``sum_n ref[n] cod[n + k]`` over the overlap."""
    if k >= 0:
        n = min(len(ref), len(cod) - k)
        return _dot(ref[:n], cod[k : k + n]) if n > 0 else 0.0
    n = min(len(ref) + k, len(cod))
    return _dot(ref[-k : -k + n], cod[:n]) if n > 0 else 0.0


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """``sum(a * b)`` on this thread. ``np.dot`` would call numpy's BLAS, whose worker threads
    keep spinning after the call and take a core from torch's threads: the features of the
    next file were measured 2x slower after it on a 2-core machine."""
    return float(np.einsum("i,i->", a, b))


def delays_of_heads_torch(
    ref: torch.Tensor,
    ref_lengths: list[int],
    cod: torch.Tensor,
    cod_lengths: list[int],
    sample_rate: int = 48000,
    max_delay_seconds: float = MAX_DELAY_SECONDS,
    search_rate: int = 8000,
    min_correlation: float = 0.3,
) -> list[Delay]:
    """:func:`delay_of_mono` for a batch of pairs of mono heads at ``sample_rate`` itself,
    zero-padded into two tensors on any device: on a GPU a batch costs about a millisecond
    instead of tens of milliseconds of CPU time a pair, in a fixed number of kernel launches
    (not a number per pair) and one synchronisation.

    The same search in float64: the same triangular decimation and coarse FFT correlation,
    the smallest of the near-best coarse lags, then the full-rate correlation at ± 2 coarse
    steps around it (here from one batched FFT rather than dot products: the same sums but
    for float64 rounding), so the same delays and correlations (tested against
    :func:`delay_of_mono`). Zero padding at the end of a shorter signal leaves its linear
    correlation unchanged, so pairs of any lengths share the FFTs; each row's mean is taken
    over its own length.

    Args:
        ref, cod: The heads (:func:`mono_head`), zero beyond each row's length.
        ref_lengths, cod_lengths: Each row's length in samples.

    Shape:
        ref: ``[B, n]``, cod: ``[B, m]`` float32, on one device.
    """
    batch = ref.shape[0]
    if batch == 0:
        return []
    device = ref.device
    factor = max(1, round(sample_rate / search_rate))
    coarse_rate = sample_rate / factor
    max_lag = int(round(max_delay_seconds * coarse_rate))

    lengths = values_on(device, [*ref_lengths, *cod_lengths], torch.float64)
    ref_len, cod_len = lengths[:batch], lengths[batch:]
    # coarse: decimated rows, each centred on its own mean
    coarse_ref = _centred(*_decimated_rows(ref, ref_len, factor))
    coarse_cod = _centred(*_decimated_rows(cod, cod_len, factor))
    values = _batched_xcorr(coarse_ref, coarse_cod, max_lag)
    coarse_lags = torch.arange(-max_lag, max_lag + 1, device=device)
    values = values[:, coarse_lags % values.shape[1]]  # negative lags: the circular wrap
    near = values >= values.amax(1, keepdim=True) - 0.01 * values.amax(1, keepdim=True).abs()
    # the smallest shift among the near-best lags (argmin: the first of equal ones, as numpy)
    shift = torch.where(near, coarse_lags.abs(), max_lag + 1)
    coarse = coarse_lags[torch.argmin(shift, dim=1)]  # [B]
    scale = sample_rate / coarse_rate
    radius = int(math.ceil(2 * scale))
    # fine: the full-rate correlation at ± 2 coarse steps around the coarse peak
    full_ref, full_cod = _centred(ref.double(), ref_len), _centred(cod.double(), cod_len)
    reach = int(round(max_lag * scale)) + radius
    correlation = _batched_xcorr(full_ref, full_cod, reach)
    centre = torch.round(coarse * scale).long()
    fine_lags = centre[:, None] + torch.arange(-radius, radius + 1, device=device)  # [B, 2r+1]
    fine = correlation.gather(1, fine_lags % correlation.shape[1])
    best_value, best_at = fine.max(dim=1)  # the first of equal maxima, as numpy's argmax
    best = fine_lags.gather(1, best_at[:, None])[:, 0]
    energy = torch.stack([full_ref.square().sum(1), full_cod.square().sum(1)], 1)
    out = torch.cat([best.double()[:, None], best_value[:, None], energy], 1).tolist()
    delays = []
    for lag, value, e_ref, e_cod in out:
        energy_ = math.sqrt(e_ref * e_cod)
        corr = float(value / energy_) if energy_ > 0 else 0.0
        delays.append(Delay(int(lag) if corr >= min_correlation else 0, sample_rate, corr))
    return delays


def _centred(rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row minus its mean over its first ``lengths[b]`` samples, zero beyond them
    (float64 in).

    Shape:
        rows: ``[B, n]``, lengths: ``[B]`` → ``[B, n]``.
    """
    valid = torch.arange(rows.shape[1], device=rows.device) < lengths[:, None]
    rows = rows * valid  # the padding is zero already, unless a caller's rows are longer
    mean = rows.sum(1, keepdim=True) / lengths.clamp_min(1)[:, None]
    return (rows - mean) * valid


def _batched_xcorr(ref: torch.Tensor, cod: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Circular cross-correlations ``c[b, k] = sum_n ref[b, n] cod[b, n + k]`` of zero-padded
    rows, exact (linear) at ``|k| <= max_lag``; negative ``k`` at index ``size + k``.

    Shape:
        ref: ``[B, n]``, cod: ``[B, m]`` float64 → ``[B, size]``, ``size >= max(n, m) +
        max_lag + 1``.
    """
    size = fast_length(max(ref.shape[1], cod.shape[1]) + max_lag + 1)
    spectrum = torch.fft.rfft(ref, size).conj() * torch.fft.rfft(cod, size)
    return torch.fft.irfft(spectrum, size)


def _decimated_rows(
    rows: torch.Tensor, lengths: torch.Tensor, factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_decimated` of each zero-padded row (float64 out) and the rows' new lengths:
    row ``b`` keeps its first ``lengths[b] // factor - 1`` values (blocks of ``factor``
    samples that lie wholly inside it).

    Shape:
        rows: ``[B, n]``, lengths: ``[B]`` → ``([B, n // factor - 1], [B])``.
    """
    if factor <= 1:
        return rows.double(), lengths
    blocks = rows[:, : rows.shape[1] // factor * factor].reshape(rows.shape[0], -1, factor)
    rising = torch.arange(1, factor + 1, dtype=torch.float64, device=rows.device)
    blocks = blocks.double()
    up, down = blocks @ rising, blocks @ (factor - rising)
    decimated = (up[:, :-1] + down[:, 1:]) / factor**2
    return decimated, (torch.div(lengths, factor, rounding_mode="floor") - 1).clamp_min(0)
