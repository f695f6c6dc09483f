"""The built-in demo's codec-like degradations (band-limiting with spectral holes, quantisation
noise, stereo collapse, pre-echo) and its low-pass anchors."""

from __future__ import annotations

import numpy as np
from scipy import signal

from gml.data.demo.spec import SAMPLE_RATE


# --------------------------------------------------------------------------------------------
# anchors and codec-like degradations (x: [n, 2] float; s: effective strength)
# --------------------------------------------------------------------------------------------
def lowpass(x: np.ndarray, fc: float) -> np.ndarray:
    sos = signal.ellip(8, 0.1, 80, fc, btype="lowpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfiltfilt(sos, x, axis=0)


def _stft(x: np.ndarray, nper: int):
    _, _, z = signal.stft(x.T, fs=SAMPLE_RATE, nperseg=nper, noverlap=nper // 2)
    return z  # [2, bins, frames]


def _istft(z: np.ndarray, nper: int, n: int) -> np.ndarray:
    _, y = signal.istft(z, fs=SAMPLE_RATE, nperseg=nper, noverlap=nper // 2)
    y = y[:, :n]
    if y.shape[1] < n:
        y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return y.T


def erb_edges(fmin: float, fmax: float, n: int) -> np.ndarray:
    e = np.linspace(21.4 * np.log10(1 + 0.00437 * fmin), 21.4 * np.log10(1 + 0.00437 * fmax), n + 1)
    return (10 ** (e / 21.4) - 1) / 0.00437


def _bin_bands(nper: int, n_bands: int, fmin: float = 0.0) -> list[slice]:
    """Contiguous bin groups on an ERB-like grid (each at least one bin), for codec bands."""
    df = SAMPLE_RATE / nper
    edges = np.round(erb_edges(max(fmin, df), SAMPLE_RATE / 2, n_bands) / df).astype(int)
    edges[0] = 0
    edges[-1] = nper // 2 + 1
    edges = np.maximum.accumulate(np.maximum(edges, np.arange(len(edges))))
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _band_rms(mag: np.ndarray, bands: list[slice]) -> np.ndarray:
    out = np.empty_like(mag)
    for sl in bands:
        out[:, sl, :] = np.sqrt(np.mean(mag[:, sl, :] ** 2, axis=1, keepdims=True))
    return out


def _deg_bandlimit_holes(x, s, rng):
    nper = 2048
    z = _stft(x, nper)
    f = np.arange(z.shape[1]) * SAMPLE_RATE / nper
    fc = float(np.clip(17000 - 7500 * s, 4000, 17000))
    z[:, f >= fc, :] = 0
    p_hole = float(np.clip(0.3 * s, 0, 0.7))
    lo = np.flatnonzero(f >= 0.45 * fc)[0]
    hi = np.flatnonzero(f < fc)[-1] + 1
    width = 4
    n_groups = (hi - lo + width - 1) // width
    holes = rng.random((n_groups, z.shape[2])) < p_hole  # same for both channels
    mask = np.repeat(holes, width, axis=0)[: hi - lo]
    z[:, lo:hi, :] *= ~mask[None]
    return _istft(z, nper, len(x))


def _deg_quantnoise(x, s, rng):
    """Quantise STFT magnitudes per band (short frames) with a step proportional to strength."""
    nper = 1024
    z = _stft(x, nper)
    bands = _bin_bands(nper, 24)
    mag, ph = np.abs(z), np.angle(z)
    rms = _band_rms(mag, bands) + 1e-12
    tilt = 1 + 0.8 * np.linspace(0, 1, z.shape[1])[None, :, None]  # fewer bits up high
    step = 1.6 * s * tilt * rms
    offset = rng.uniform(-0.5, 0.5, size=mag.shape)  # fixed random per-bin rounding bias
    q = step * np.round(mag / step + 0.25 * offset)
    return _istft(np.maximum(q, 0) * np.exp(1j * ph), nper, len(x))


def _deg_stereo_collapse(x, s, rng):
    """Side reduction, intensity-stereo-like panning of M above f_is, and some crosstalk."""
    nper = 2048
    z = _stft(x, nper)
    f = np.arange(z.shape[1]) * SAMPLE_RATE / nper
    m, sd = (z[0] + z[1]) / 2, (z[0] - z[1]) / 2
    sd = sd * float(np.clip(1 - 0.45 * s, 0.1, 1))
    f_is = float(np.clip(11000 / (1 + 2.5 * s), 1200, 11000))
    left, right = m + sd, m - sd
    el, er, em = np.abs(z[0]) ** 2, np.abs(z[1]) ** 2, np.abs(m) ** 2
    for sl in _bin_bands(nper, 24):
        if f[sl.start] < f_is:
            continue
        gl = np.sqrt(el[sl].sum(0) / (em[sl].sum(0) + 1e-12))
        gr = np.sqrt(er[sl].sum(0) / (em[sl].sum(0) + 1e-12))
        left[sl] = m[sl] * gl
        right[sl] = m[sl] * gr
    lam = float(np.clip(0.12 * s, 0, 0.3))
    y = np.stack([(1 - lam) * left + lam * right, (1 - lam) * right + lam * left])
    return _istft(y, nper, len(x))


def _deg_preecho(x, s, rng):
    """Coarse quantisation of complex coefficients in long frames: noise spreads before onsets."""
    nper = 2048 if s < 0.5 else 4096 if s < 1.0 else 8192
    z = _stft(x, nper)
    bands = _bin_bands(nper, 24)
    rms = _band_rms(np.abs(z), bands) + 1e-12
    step = 1.1 * s * rms
    re = step * np.round(z.real / step)
    im = step * np.round(z.imag / step)
    return _istft(re + 1j * im, nper, len(x))


DEGRADE = {
    "bandlimit_holes": _deg_bandlimit_holes,
    "quantnoise": _deg_quantnoise,
    "stereo_collapse": _deg_stereo_collapse,
    "preecho": _deg_preecho,
}
