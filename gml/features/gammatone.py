"""ViSQOL v3 (audio mode) gammatone spectrogram, computed with one FFT per frame in torch.

ViSQOL frames the signal, applies a symmetric Hann window, runs every frame through a bank of
Slaney ERB gammatone IIR filters (four cascaded biquads per band, filter state reset per frame)
and takes the RMS of each band output over the frame. Here the same quantity comes from the
frame's power spectrum: by Parseval, the energy of the filtered frame is the power spectrum
weighted by the filter's squared magnitude response, so one fixed ``[num_bands, n_fft // 2 + 1]``
matrix replaces the filterbank (no Python loops over frames or bands).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["GammatoneFrontend", "erb_center_frequencies", "gammatone_power_response"]

# Glasberg & Moore ERB parameters, as in Slaney's Auditory Toolbox and ViSQOL.
_EAR_Q = 9.26449
_MIN_BW = 24.7


def erb_center_frequencies(f_min: float, f_max: float, num_bands: int) -> np.ndarray:
    """Centre frequencies uniformly spaced on the ERB scale (Slaney's ``ERBSpace``).

    The lowest centre is exactly ``f_min``; the highest lies one ERB step below ``f_max``.

    Args:
        f_min: Lowest centre frequency in Hz.
        f_max: Upper edge in Hz (ViSQOL audio mode: fs / 2).
        num_bands: Number of bands.

    Returns:
        Centre frequencies in Hz, ascending, float64.

    Shape:
        - Output: ``[num_bands]``.
    """
    offset = _EAR_Q * _MIN_BW
    step = (math.log(f_min + offset) - math.log(f_max + offset)) / num_bands
    cf = -offset + np.exp(np.arange(1, num_bands + 1) * step) * (f_max + offset)
    return cf[::-1].copy()


def gammatone_power_response(
    center_frequencies: np.ndarray, sample_rate: float, frequencies: np.ndarray
) -> np.ndarray:
    """Squared magnitude response of Slaney's 4th-order gammatone IIR filters.

    Each filter is the cascade of four biquads ``(T + a_j z^-1) / (1 + b1 z^-1 + b2 z^-2)``
    (Slaney 1993, ``MakeERBFilters``; identical coefficients in ViSQOL's
    ``EquivalentRectangularBandwidth::MakeFilters``), normalised to unit gain at its centre
    frequency.

    Args:
        center_frequencies: Centre frequencies in Hz.
        sample_rate: Sample rate in Hz.
        frequencies: Frequencies in Hz at which to evaluate ``|H|^2``.

    Returns:
        ``|H(f)|^2``, float64.

    Shape:
        - center_frequencies: ``[num_bands]``, frequencies: ``[num_freqs]``.
        - Output: ``[num_bands, num_freqs]``.
    """
    cf = np.asarray(center_frequencies, dtype=np.float64)[:, None]
    t = 1.0 / sample_rate
    bw = 2.0 * math.pi * 1.019 * (cf / _EAR_Q + _MIN_BW)
    decay = np.exp(-bw * t)
    theta = 2.0 * math.pi * cf * t
    b1 = -2.0 * np.cos(theta) * decay
    b2 = decay**2

    def response(omega: np.ndarray) -> np.ndarray:
        z1 = np.exp(-1j * omega)  # z^-1 on the unit circle
        num = np.ones(np.broadcast_shapes(cf.shape, np.shape(omega)), dtype=np.complex128)
        for root in (math.sqrt(3.0 + 2.0**1.5), math.sqrt(3.0 - 2.0**1.5)):
            for sign in (1.0, -1.0):
                a = -t * (np.cos(theta) + sign * root * np.sin(theta)) * decay
                num = num * (t + a * z1)
        den = (1.0 + b1 * z1 + b2 * z1**2) ** 4
        return num / den

    gain = np.abs(response(theta))  # response at the centre frequency
    omega = 2.0 * math.pi * np.asarray(frequencies, dtype=np.float64)[None, :] * t
    return (np.abs(response(omega)) / gain) ** 2


class GammatoneFrontend(nn.Module):
    """ViSQOL v3 audio-mode gammatone spectrogram of stereo signals, views L, R, M, S.

    Pipeline per channel: frames of ``win_length`` samples (80 ms) every ``hop_length`` samples
    (20 ms) → symmetric Hann window → rFFT with ``n_fft`` (next power of two ≥ window, zero
    padding at the end) → power spectrum → ``[num_bands, n_fft // 2 + 1]`` weight matrix of
    squared gammatone magnitude responses → per-band mean square ``E`` of the filtered frame →
    ``db_scale * log10(sqrt(E))`` → floors → shift.

    **Level reference.** ``E`` is ViSQOL's quantity: the mean over the ``win_length`` samples of
    the squared output of the gammatone filter (unit gain at its centre) applied to the
    Hann-windowed frame, for samples in [-1, 1] (full scale = 1.0). So 0 dB (before the shift)
    means a band RMS of 1.0; a full-scale sine at a band's centre frequency has band mean square
    3/16 (Hann-window mean square 3/8 times 1/2), i.e. band RMS 0.433. Against ViSQOL's per-frame
    IIR filtering the FFT path agrees to < 0.1 % in the bands above ~500 Hz; the lowest four bands
    differ by up to a few per cent (their filter tails run past the frame end).

    **dB convention.** With the default ``db_scale=10`` the level is ``10 * log10(RMS)``, which is
    what ViSQOL v3 does (``Spectrogram::ConvertToDb`` applies ``10 * log10`` to band RMS
    amplitudes, so its "dB" are half-size and its −45 dB floor is an RMS of 10^-4.5, about
    −90 dBFS). The full-scale centre sine then reads −3.63 dB. ``db_scale=20`` gives true dB
    (−7.27 dB for that sine), with the floors then meaning true dB too.

    **Floors and shift.** Values below ``abs_floor_db`` are raised to it; then, per view and per
    frame, values below ``frame peak − rel_floor_db`` are raised to that (ViSQOL raises this floor
    jointly over reference and degraded; here it is per signal so that every spectrogram stands
    on its own). With the default floors the relative one rises above the absolute one only in
    frames whose peak band exceeds 0 dB (band RMS > 1), which audio in [-1, 1] hardly reaches;
    that is so in ViSQOL too. The output is ``dB − abs_floor_db``: always ≥ 0, and digital silence
    is exactly 0, so zero padding of spectrograms in time equals silence. (ViSQOL subtracts the
    common minimum of the pair instead; that differs from this by a constant.)

    **Framing.** Frame ``t`` covers samples ``[t * hop_length, t * hop_length + win_length)``;
    only whole frames are used (trailing samples that do not fill a frame are dropped, as in
    ViSQOL), so ``T = 1 + (n - win_length) // hop_length`` for ``n ≥ win_length``. A signal
    shorter than one window is zero-padded at the end to one window, giving ``T = 1``.
    :meth:`num_frames` returns ``T`` for ``n`` samples.

    **Views.** ``L``, ``R``, ``M = (L + R) / 2``, ``S = (L − R) / 2``. Only the rFFTs of L and R
    are computed (the STFT is linear, so the spectra of M and S are ``(L ± R) / 2`` per bin), and
    all four views go through one matmul with the weight matrix. The band energies are
    equivalently ``E_M, E_S = (E_L + E_R ± 2 E_X) / 4`` with ``E_X = W · Re(L conj(R))``, but
    forming them that way cancels large float32 numbers for near-mono material (for a stereo
    signal whose channels differ by 1e-5, S came out up to 130 dB wrong); squaring
    ``(L − R) / 2`` per bin costs the same time and keeps S accurate.

    Works on any device and batch size; input is converted to float32 (the buffers' dtype).
    Buffers (``window``, ``weights`` ``[num_bands, n_fft // 2 + 1]``, centre frequencies) are
    not persistent (they are rebuilt from :meth:`settings`), follow ``module.to(...)``, and are
    moved to the input's device if they differ. On CPU, frames are processed in blocks of
    :attr:`cpu_block_frames` (memory-bound otherwise); on GPU in one call. Gradients flow (no
    ``no_grad`` is forced).

    Args:
        sample_rate: Sample rate of the input in Hz.
        num_bands: Number of gammatone bands.
        f_min: Lowest centre frequency in Hz; the bands are ERB-spaced up to ``sample_rate / 2``.
        window_seconds: Frame length in seconds (rounded to samples).
        hop_fraction: Hop as a fraction of the frame length.
        abs_floor_db: Absolute floor in dB (see the dB convention above).
        rel_floor_db: Per-frame floor, in dB below the frame's peak band.
        db_scale: Factor on ``log10(band RMS)``: 10 reproduces ViSQOL v3, 20 gives true dB.

    Shape:
        - spectrogram: ``[B, 2, n]`` → ``[B, 4, num_bands, T]`` (``[2, n]`` → ``[4, num_bands, T]``).
        - forward: two ``[B, 2, n]`` → ``[B, 4, 2, num_bands, T]`` (views × ref/coded × bands ×
          frames).
    """

    #: CPU only: frames (batch items × frames) per block in :meth:`band_energies`. On one
    #: thread 64 was 8 % faster than 128 (``benchmarks/frontend.py --blocks 64,128``).
    cpu_block_frames: int = 64

    def __init__(
        self,
        sample_rate: int = 48000,
        num_bands: int = 32,
        f_min: float = 50.0,
        window_seconds: float = 0.08,
        hop_fraction: float = 0.25,
        abs_floor_db: float = -45.0,
        rel_floor_db: float = 45.0,
        db_scale: float = 10.0,
    ) -> None:
        super().__init__()
        if sample_rate <= 0 or num_bands <= 0:
            raise ValueError("sample_rate and num_bands must be positive")
        if not 0.0 < f_min < sample_rate / 2:
            raise ValueError(f"f_min must lie in (0, sample_rate / 2), got {f_min}")
        if rel_floor_db < 0 or db_scale <= 0:
            raise ValueError("rel_floor_db must be ≥ 0 and db_scale > 0")
        self._settings = {
            "sample_rate": int(sample_rate),
            "num_bands": int(num_bands),
            "f_min": float(f_min),
            "window_seconds": float(window_seconds),
            "hop_fraction": float(hop_fraction),
            "abs_floor_db": float(abs_floor_db),
            "rel_floor_db": float(rel_floor_db),
            "db_scale": float(db_scale),
        }
        # ViSQOL: size = round(fs * duration); hop = size * overlap (truncated).
        self._win_length = int(round(sample_rate * window_seconds))
        self._hop_length = int(self._win_length * hop_fraction)
        if self._win_length < 2 or self._hop_length < 1:
            raise ValueError("window_seconds and hop_fraction give an empty window or hop")
        self._n_fft = 1 << (self._win_length - 1).bit_length()

        cf = erb_center_frequencies(f_min, sample_rate / 2.0, num_bands)
        num_bins = self._n_fft // 2 + 1
        bin_freqs = np.arange(num_bins) * sample_rate / self._n_fft
        weights = gammatone_power_response(cf, sample_rate, bin_freqs)
        # One-sided spectrum: interior bins stand for two bins of the full spectrum.
        weights[:, 1:-1] *= 2.0
        # Parseval (sum_n y^2 = sum_k |Y_k|^2 / n_fft), then the mean over the window.
        weights /= self._n_fft * self._win_length

        window = torch.hann_window(self._win_length, periodic=False, dtype=torch.float64)
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("weights", torch.from_numpy(weights).float(), persistent=False)
        # The same weights for interleaved (real, imag) parts, transposed for the matmul.
        interleaved = torch.from_numpy(np.repeat(weights, 2, axis=1).T.copy()).float()
        self.register_buffer("_interleaved_weights", interleaved, persistent=False)
        self.register_buffer("_center_frequencies", torch.from_numpy(cf).float(), persistent=False)

    # ------------------------------------------------------------------ properties
    @property
    def hop_length(self) -> int:
        """Hop between frame starts in samples (960 at the defaults)."""
        return self._hop_length

    @property
    def win_length(self) -> int:
        """Frame (Hann window) length in samples (3840 at the defaults)."""
        return self._win_length

    @property
    def n_fft(self) -> int:
        """FFT size: the next power of two ≥ ``win_length`` (4096 at the defaults)."""
        return self._n_fft

    @property
    def num_bands(self) -> int:
        """Number of gammatone bands."""
        return self._settings["num_bands"]

    @property
    def center_frequencies(self) -> Tensor:
        """Band centre frequencies in Hz, ascending (band 0 is ``f_min``), shape ``[num_bands]``."""
        return self._center_frequencies

    def settings(self) -> dict[str, Any]:
        """All constructor arguments as a plain dict (a cache key for computed features)."""
        return dict(self._settings)

    def num_frames(self, n: int) -> int:
        """Number of frames ``T`` that :meth:`spectrogram` gives for ``n`` samples."""
        if n <= self._win_length:
            return 1
        return 1 + (n - self._win_length) // self._hop_length

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self._settings.items())

    # ------------------------------------------------------------------ computation
    def band_energies(self, audio: Tensor) -> Tensor:
        """Per-band mean square of the gammatone-filtered frames (linear, before dB and floors).

        ``sqrt`` of this is ViSQOL's band RMS (see the class docstring for the level reference).

        Args:
            audio: Stereo signal(s), float, samples in [-1, 1].

        Returns:
            Band energies for the views L, R, M, S, float32, ≥ 0.

        Shape:
            - audio: ``[B, 2, n]`` or ``[2, n]``.
            - Output: ``[B, 4, num_bands, T]`` or ``[4, num_bands, T]``.
        """
        unbatched = audio.dim() == 2
        if unbatched:
            audio = audio.unsqueeze(0)
        if audio.dim() != 3 or audio.shape[1] != 2:
            raise ValueError(
                f"audio must have shape [B, 2, n] or [2, n] (channels L, R), got {list(audio.shape)}"
            )
        if not audio.is_floating_point():
            raise ValueError(f"audio must be a floating-point tensor, got {audio.dtype}")
        window, weights = self.window, self._interleaved_weights
        if window.device != audio.device:
            window, weights = window.to(audio.device), weights.to(audio.device)
        audio = audio.to(weights.dtype)

        n = audio.shape[-1]
        if n < self._win_length:
            audio = nn.functional.pad(audio, (0, self._win_length - n))
        frames = audio.unfold(-1, self._win_length, self._hop_length)  # [B, 2, T, win] (view)
        batch, _, num_frames, _ = frames.shape
        differentiable = torch.is_grad_enabled() and frames.requires_grad
        block = self.cpu_block_frames
        if frames.device.type != "cpu" or differentiable or batch * num_frames <= block:
            energies = _frame_energies(frames, window, weights, self._n_fft, differentiable)
        else:
            # On CPU, blocks of a few dozen frames keep every temporary in cache and below
            # malloc's mmap threshold; one huge call is 2-3x slower per frame.
            items_per_block = max(1, block // num_frames)
            energies = torch.cat(
                [
                    torch.cat(
                        [
                            _frame_energies(
                                frames[b : b + items_per_block, :, t : t + block],
                                window,
                                weights,
                                self._n_fft,
                                differentiable,
                            )
                            for t in range(0, num_frames, block)
                        ],
                        dim=2,
                    )
                    for b in range(0, batch, items_per_block)
                ],
                dim=0,
            )
        energies = energies.transpose(-1, -2).contiguous()  # [B, 4, bands, T]
        return energies[0] if unbatched else energies

    def spectrogram(self, audio: Tensor) -> Tensor:
        """Floored, shifted gammatone spectrogram (dB above ``abs_floor_db``) of views L, R, M, S.

        Args:
            audio: Stereo signal(s), float, samples in [-1, 1].

        Returns:
            ``level_db − abs_floor_db`` per view, band and frame, float32, ≥ 0; silence is 0.

        Shape:
            - audio: ``[B, 2, n]`` or ``[2, n]``.
            - Output: ``[B, 4, num_bands, T]`` or ``[4, num_bands, T]``, ``T = num_frames(n)``.
        """
        s = self._settings
        energies = self.band_energies(audio)
        # Clamp before the log so silence gives a finite value (it is floored right after).
        tiny = torch.finfo(energies.dtype).tiny
        db = (0.5 * s["db_scale"]) * torch.log10(energies.clamp_min(tiny))
        db = db.clamp_min(s["abs_floor_db"])
        peak = db.amax(dim=-2, keepdim=True)  # per view and frame, over bands
        db = torch.maximum(db, peak - s["rel_floor_db"])
        return db - s["abs_floor_db"]

    def forward(self, reference: Tensor, coded: Tensor) -> Tensor:
        """Spectrograms of a reference/coded pair, stacked as the backbones expect.

        Args:
            reference: Reference signal(s), float, samples in [-1, 1].
            coded: Coded signal(s), same shape as ``reference``.

        Returns:
            ``torch.stack([spectrogram(reference), spectrogram(coded)], dim=2)``.

        Shape:
            - reference, coded: ``[B, 2, n]`` (or both ``[2, n]``).
            - Output: ``[B, 4, 2, num_bands, T]`` (or ``[4, 2, num_bands, T]``).
        """
        if reference.shape != coded.shape:
            raise ValueError(
                "reference and coded must have the same shape (pad them with pad_pair), got "
                f"{list(reference.shape)} and {list(coded.shape)}"
            )
        both = torch.stack([reference, coded], dim=-3)  # [..., 2 (ref/coded), 2 (L/R), n]
        lead = both.shape[:-2]
        spec = self.spectrogram(both.reshape(-1, 2, both.shape[-1]))  # [B*2, 4, bands, T]
        spec = spec.reshape(*lead, *spec.shape[1:])  # [..., 2, 4, bands, T]
        return spec.transpose(-4, -3).contiguous()  # [..., 4, 2, bands, T]


def _frame_energies(
    frames: Tensor, window: Tensor, weights: Tensor, n_fft: int, differentiable: bool
) -> Tensor:
    """Band energies of the views L, R, M, S for stereo frames.

    ``weights`` is the weight matrix transposed with every row repeated for the real and the
    imaginary part, so that ``|z|^2`` summed with weights is one matmul over interleaved parts.

    Shape:
        - frames: ``[B, 2, T, win]``, window: ``[win]``, weights: ``[2 * bins, bands]``.
        - Output: ``[B, 4, T, bands]``.
    """
    if differentiable:
        spec = torch.fft.rfft(frames * window, n=n_fft)  # [B, 2, T, bins] complex
        parts = torch.view_as_real(spec).flatten(-2)  # [B, 2, T, 2 * bins]: re, im, re, im...
        left, right = parts[:, 0], parts[:, 1]
        views = torch.stack([left, right, left + right, left - right], dim=1).square()
        energies = torch.matmul(views, weights)  # [B, 4, T, bands]
        return energies * energies.new_tensor([1.0, 1.0, 0.25, 0.25]).view(4, 1, 1)
    # The same sums with fewer passes over memory (out= and in-place ops, which autograd
    # does not support; on any device): the windowed frames are written straight into the
    # zero-padded FFT input, and L and R are squared where the FFT left them instead of being
    # copied next to M and S first (on CPU, with 64-frame blocks, a third less time on one
    # thread: benchmarks/frontend.py).
    batch, _, num_frames, win = frames.shape
    padded = frames.new_empty(batch, 2, num_frames, n_fft)
    padded[..., win:] = 0
    torch.mul(frames, window, out=padded[..., :win])
    parts = torch.view_as_real(torch.fft.rfft(padded)).flatten(-2)  # [B, 2, T, 2 * bins]
    left, right = parts[:, 0], parts[:, 1]
    mid_side = parts.new_empty(parts.shape)
    torch.add(left, right, out=mid_side[:, 0])  # 2 M
    torch.sub(left, right, out=mid_side[:, 1])  # 2 S
    mid_side.square_()
    return torch.cat(
        [torch.matmul(parts.square_(), weights), torch.matmul(mid_side, weights) * 0.25], dim=1
    )  # [B, 4, T, bands]
