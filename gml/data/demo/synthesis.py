"""The built-in demo's audio: music-like and speech-like excerpts synthesised with numpy
(deterministic for a seed)."""

from __future__ import annotations

import numpy as np
from scipy import signal

from gml.data.demo.spec import K_SYNTH, SAMPLE_RATE, TEST_KEY, seeded_rng


# --------------------------------------------------------------------------------------------
# small DSP helpers
# --------------------------------------------------------------------------------------------
def _pan(x: np.ndarray, pos: float) -> np.ndarray:
    """Constant-power pan of a mono signal, ``pos`` in [-1 (left), 1 (right)] -> [n, 2]."""
    th = (np.clip(pos, -1, 1) + 1) * np.pi / 4
    return np.stack([np.cos(th) * x, np.sin(th) * x], axis=1)


def _reverb(x: np.ndarray, rng, t60: float, wet: float, width: float = 1.0) -> np.ndarray:
    """Add a decorrelated exponentially decaying noise reverb to a stereo signal."""
    n_ir = int(min(t60, 1.2) * SAMPLE_RATE)
    t = np.arange(n_ir) / SAMPLE_RATE
    env = np.exp(-6.9 * t / t60)
    common = rng.standard_normal(n_ir)
    irs = []
    for _ in range(2):
        own = rng.standard_normal(n_ir)
        irs.append((np.sqrt(1 - width**2 / 2) * common + width / np.sqrt(2) * own) * env)
    mono = x.mean(axis=1)
    out = x.copy()
    for c in range(2):
        w = signal.fftconvolve(mono, irs[c])[: len(x)]
        out[:, c] += wet * w / (np.sqrt(np.sum(irs[c] ** 2)) + 1e-12)
    return out


def _env_adsr(n: int, attack: float, decay: float, release: float = 0.03) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    a = np.minimum(1.0, t / max(attack, 1e-4))
    d = np.exp(-t / max(decay, 1e-3))
    r = np.minimum(1.0, (n / SAMPLE_RATE - t) / release)
    return a * d * np.clip(r, 0, 1)


def _harmonic(
    n: int, f0: float, rng, rolloff: float, vib_rate: float, vib_depth: float
) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    f = f0 * (1 + vib_depth * np.sin(2 * np.pi * vib_rate * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    out = np.zeros(n)
    kmax = int(0.45 * SAMPLE_RATE / (f0 * (1 + vib_depth)))
    for k in range(1, min(kmax, 48) + 1):
        amp = k**-rolloff * np.exp(0.35 * rng.standard_normal())
        out += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out


def _bandpass(x: np.ndarray, lo: float, hi: float, order: int = 2) -> np.ndarray:
    hi = min(hi, 0.45 * SAMPLE_RATE)
    lo = max(lo, 20.0)
    if lo >= hi * 0.95:
        lo = hi * 0.5
    sos = signal.butter(order, [lo, hi], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return signal.sosfilt(sos, x)


def _place(buf: np.ndarray, start: int, ev: np.ndarray) -> None:
    end = min(len(buf), start + len(ev))
    if start < end:
        buf[start:end] += ev[: end - start]


def _finish(x: np.ndarray) -> np.ndarray:
    """Normalise to -20 dBFS RMS and soft-limit peaks below 1.0."""
    x = x - x.mean(axis=0, keepdims=True)
    x = x * (0.1 / (np.sqrt(np.mean(x**2)) + 1e-12))
    thr = 0.8
    a = np.abs(x)
    lim = np.where(a > thr, thr + (0.97 - thr) * np.tanh((a - thr) / (0.97 - thr)), a)
    return np.sign(x) * lim


# --------------------------------------------------------------------------------------------
# excerpt synthesis (music-like)
# --------------------------------------------------------------------------------------------
_MUSIC_KINDS = ("chords", "drums", "applause", "solo", "band", "texture", "castanets", "pluck")


def _chords(n, rng):
    out = np.zeros((n, 2))
    n_chords = int(rng.integers(2, 4))
    seg = n // n_chords
    root = 110 * 2 ** (rng.integers(0, 12) / 12)
    for c in range(n_chords):
        r = root * 2 ** (rng.choice([0, 5, 7, 9, -3]) / 12)
        intervals = [0, 4 if rng.random() < 0.6 else 3, 7, 12 if rng.random() < 0.5 else 10]
        for i, iv in enumerate(intervals):
            f0 = r * 2 ** (iv / 12)
            m = seg + int(0.1 * SAMPLE_RATE)
            tone = _harmonic(m, f0, rng, rng.uniform(0.9, 1.6), rng.uniform(4.5, 6), 0.004)
            tone *= _env_adsr(m, rng.uniform(0.01, 0.08), rng.uniform(0.8, 3.0), 0.08)
            st = _pan(tone, -0.8 + 1.6 * i / (len(intervals) - 1) + 0.1 * rng.standard_normal())
            s0 = c * seg
            out[s0 : s0 + m] += st[: n - s0]
    return _reverb(out, rng, rng.uniform(0.8, 1.6), 0.35, 0.8)


def _drum_hits(n, rng, tempo, pans, hats=True):
    out = np.zeros((n, 2))
    beat = int(60 / tempo * SAMPLE_RATE)
    step = beat // 2
    kick_len = int(0.35 * SAMPLE_RATE)
    t = np.arange(kick_len) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * np.cumsum(50 + 90 * np.exp(-t / 0.03)) / SAMPLE_RATE)
    kick *= np.exp(-t / 0.12)
    snare_len = int(0.25 * SAMPLE_RATE)
    ts = np.arange(snare_len) / SAMPLE_RATE
    for i, s0 in enumerate(range(int(rng.integers(0, step)), n, step)):
        if i % 4 == 0 or (i % 8 == 5 and rng.random() < 0.5):
            _place(out[:, 0], s0, kick * np.cos(np.pi / 4))
            _place(out[:, 1], s0, kick * np.sin(np.pi / 4))
        if i % 4 == 2:
            sn = _bandpass(rng.standard_normal(snare_len), 180, 9000) * np.exp(-ts / 0.07)
            sn += 0.5 * np.sin(2 * np.pi * 185 * ts) * np.exp(-ts / 0.05)
            st = _pan(sn, pans[0])
            out[s0 : s0 + snare_len] += st[: n - s0]
        if hats:
            hl = int(0.08 * SAMPLE_RATE)
            th = np.arange(hl) / SAMPLE_RATE
            hh = signal.sosfilt(_HP7K, rng.standard_normal(hl)) * np.exp(-th / 0.02) * 0.5
            st = _pan(hh, pans[1])
            out[s0 : s0 + hl] += st[: n - s0]
    return out


_HP7K = signal.butter(4, 7000, btype="highpass", fs=SAMPLE_RATE, output="sos")
_LP1K = signal.butter(2, 1000, btype="lowpass", fs=SAMPLE_RATE, output="sos")


def _drums(n, rng):
    out = _drum_hits(n, rng, rng.uniform(90, 150), rng.uniform(-0.6, 0.6, 2))
    return _reverb(out, rng, rng.uniform(0.3, 0.8), 0.15, 0.7)


def _claps(n, rng, rate, width):
    out = np.zeros((n, 2))
    n_claps = int(rate * n / SAMPLE_RATE)
    cl = int(0.04 * SAMPLE_RATE)
    tc = np.arange(cl) / SAMPLE_RATE
    bank = [_bandpass(rng.standard_normal(cl * 40), fc / 1.6, fc * 1.6) for fc in (900, 1600, 2600)]
    for _ in range(n_claps):
        s0 = int(rng.integers(0, n))
        b = bank[int(rng.integers(0, 3))]
        o = int(rng.integers(0, len(b) - cl))
        ev = b[o : o + cl] * np.exp(-tc / rng.uniform(0.004, 0.012)) * rng.uniform(0.3, 1.0)
        st = _pan(ev, width * rng.uniform(-1, 1))
        out[s0 : s0 + cl] += st[: n - s0]
    return out


def _applause(n, rng):
    out = _claps(n, rng, rng.uniform(25, 60), 1.0)
    return _reverb(out, rng, rng.uniform(0.8, 1.5), 0.5, 1.0)


def _solo(n, rng):
    """A single harmonic instrument with vibrato, near mono (narrow image)."""
    out = np.zeros(n)
    notes = int(rng.integers(3, 7))
    seg = n // notes
    f_base = 220 * 2 ** (rng.integers(-5, 8) / 12)
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    roll = rng.uniform(0.6, 1.3)
    for i in range(notes):
        f0 = f_base * 2 ** (scale[int(rng.integers(0, len(scale)))] / 12)
        m = seg + int(0.03 * SAMPLE_RATE)
        tone = _harmonic(m, f0, rng, roll, rng.uniform(5, 6.5), rng.uniform(0.005, 0.012))
        tone *= _env_adsr(m, rng.uniform(0.02, 0.1), rng.uniform(2, 6), 0.04)
        _place(out, i * seg, tone)
    st = _pan(out, 0.1 * rng.standard_normal())
    return _reverb(st, rng, rng.uniform(0.4, 1.0), 0.12, 0.3)


def _band(n, rng):
    tempo = rng.uniform(80, 130)
    out = 0.7 * _drum_hits(n, rng, tempo, rng.uniform(-0.3, 0.3, 2), hats=rng.random() < 0.7)
    beat = int(60 / tempo * SAMPLE_RATE)
    root = 55 * 2 ** (rng.integers(0, 12) / 12)
    bass = np.zeros(n)
    for i, s0 in enumerate(range(0, n, beat)):
        f0 = root * 2 ** ([0, 0, 7, 5][i % 4] / 12)
        tone = _harmonic(beat, f0, rng, 1.8, 5, 0.0) * _env_adsr(beat, 0.005, 0.4, 0.02)
        _place(bass, s0, tone)
    out += 0.8 * _pan(bass, 0.0)
    pad = _chords(n, rng)
    out += 0.6 * pad / (np.sqrt(np.mean(pad**2)) + 1e-9) * np.sqrt(np.mean(out**2))
    return _reverb(out, rng, rng.uniform(1.0, 2.0), 0.3, 1.0)


def _texture(n, rng):
    """Filtered, slowly modulated noise (wind/rain-like) with random inter-channel coherence."""
    rho = rng.uniform(0.0, 0.95)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    x = np.stack([a, rho * a + np.sqrt(1 - rho**2) * b], axis=1)
    t = np.arange(n) / SAMPLE_RATE
    lo = rng.uniform(150, 1500)
    hi = lo * rng.uniform(3, 15)
    out = np.stack([_bandpass(x[:, c], lo, hi, 2) for c in range(2)], axis=1)
    out *= (1 + 0.6 * np.sin(2 * np.pi * rng.uniform(0.2, 1.2) * t))[:, None]
    if rng.random() < 0.6:  # rain drops
        drops = np.zeros((n, 2))
        for _ in range(int(rng.uniform(40, 200) * n / SAMPLE_RATE)):
            s0 = int(rng.integers(0, n))
            dl = int(0.006 * SAMPLE_RATE)
            ev = rng.standard_normal(dl) * np.exp(-np.arange(dl) / (0.001 * SAMPLE_RATE))
            st = _pan(signal.sosfilt(_HP7K, ev), rng.uniform(-1, 1)) * rng.uniform(0.5, 3)
            drops[s0 : s0 + dl] += st[: n - s0]
        out = out + drops * np.sqrt(np.mean(out**2)) * 3
    return out


def _castanets(n, rng):
    """Sparse, very sharp transients in near silence (the classic pre-echo killer)."""
    out = np.zeros((n, 2))
    s0 = int(rng.uniform(0.05, 0.3) * SAMPLE_RATE)
    pos = rng.uniform(-0.5, 0.5)
    hl = int(0.03 * SAMPLE_RATE)
    th = np.arange(hl) / SAMPLE_RATE
    while s0 < n:
        for _ in range(int(rng.integers(1, 5))):
            ev = _bandpass(rng.standard_normal(hl), 1500, 9000, 2)
            ev = ev * np.exp(-th / rng.uniform(0.002, 0.006)) * rng.uniform(0.5, 1)
            st = _pan(ev, pos + 0.1 * rng.standard_normal())
            out[s0 : s0 + hl] += st[: n - s0]
            s0 += int(rng.uniform(0.03, 0.08) * SAMPLE_RATE)
        s0 += int(rng.uniform(0.15, 0.5) * SAMPLE_RATE)
    bg = _solo(n, rng)
    out += bg * 0.05 * np.sqrt(np.mean(out**2) / (np.mean(bg**2) + 1e-12))
    return _reverb(out, rng, 0.5, 0.1, 0.6)


def _pluck(n, rng):
    """Plucked-string arpeggios (sharp attacks + tonal decay), panned wide."""
    out = np.zeros((n, 2))
    step = int(rng.uniform(0.12, 0.3) * SAMPLE_RATE)
    root = 196 * 2 ** (rng.integers(-5, 7) / 12)
    arp = [0, 4, 7, 12, 16, 12, 7, 4] if rng.random() < 0.5 else [0, 3, 7, 10, 12, 10, 7, 3]
    for i, s0 in enumerate(range(0, n, step)):
        m = min(int(1.5 * SAMPLE_RATE), n - s0)
        f0 = root * 2 ** (arp[i % len(arp)] / 12)
        tone = _harmonic(m, f0, rng, rng.uniform(0.7, 1.2), 5, 0.0)
        tone *= _env_adsr(m, 0.001, rng.uniform(0.2, 0.6), 0.02)
        out[s0 : s0 + m] += _pan(tone, 0.9 * np.sin(i * 1.3))
    return _reverb(out, rng, rng.uniform(0.6, 1.4), 0.25, 1.0)


_MUSIC_SYNTH = {
    "chords": _chords,
    "drums": _drums,
    "applause": _applause,
    "solo": _solo,
    "band": _band,
    "texture": _texture,
    "castanets": _castanets,
    "pluck": _pluck,
}


# --------------------------------------------------------------------------------------------
# excerpt synthesis (speech-like)
# --------------------------------------------------------------------------------------------
_VOWELS = np.array(
    [  # F1, F2, F3 (adult male; scaled for other voices)
        [730, 1090, 2440],
        [270, 2290, 3010],
        [300, 870, 2240],
        [530, 1840, 2480],
        [570, 840, 2410],
        [660, 1720, 2410],
        [520, 1190, 2390],
        [390, 1990, 2550],
    ],
    dtype=float,
)


def _resonator(f: float, bw: float):
    """Two-pole band-pass resonator (zeros at DC and Nyquist), ~unit gain at its peak."""
    r = np.exp(-np.pi * bw / SAMPLE_RATE)
    a = np.array([1.0, -2 * r * np.cos(2 * np.pi * f / SAMPLE_RATE), r * r])
    return np.array([1.0, 0.0, -1.0]) * (1 - r * r) / 2, a


def _speech(n, rng, female: bool):
    f_base = rng.uniform(170, 230) if female else rng.uniform(85, 130)
    fscale = 1.17 if female else 1.0
    # syllable timeline: (start, length, vowel, fricative onset?)
    sylls, t = [], int(rng.uniform(0.02, 0.2) * SAMPLE_RATE)
    while t < n:
        for _ in range(int(rng.integers(1, 4))):
            length = int(rng.uniform(0.12, 0.28) * SAMPLE_RATE)
            sylls.append((t, length, int(rng.integers(0, len(_VOWELS))), rng.random() < 0.5))
            t += length
        t += int(rng.uniform(0.06, 0.4) * SAMPLE_RATE)
    voiced_env = np.zeros(n)
    fric_env = np.zeros(n)
    targets = np.tile(_VOWELS[0], (n, 1))
    for s0, length, v, fric in sylls:
        m = min(length, n - s0)
        if m <= 0:
            continue
        ramp = int(0.03 * SAMPLE_RATE)
        e = np.ones(m)
        k = min(ramp, m // 2)
        e[:k] = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        e[m - k :] = e[:k][::-1]
        voiced_env[s0 : s0 + m] = np.maximum(voiced_env[s0 : s0 + m], e * rng.uniform(0.6, 1))
        targets[s0:] = _VOWELS[v]
        if fric:
            fl = min(int(rng.uniform(0.04, 0.1) * SAMPLE_RATE), s0)
            fe = np.hanning(2 * fl)[:fl] if fl > 1 else np.zeros(fl)
            fric_env[s0 - fl : s0] = np.maximum(fric_env[s0 - fl : s0], fe)
    # f0 contour: declination + slow intonation, limited to 80-250 Hz
    tt = np.arange(n) / SAMPLE_RATE
    f0 = (
        f_base
        * (1 - 0.08 * tt / tt[-1])
        * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * tt))
    )
    f0 = np.clip(f0, 80, 250)
    phase = np.cumsum(f0) / SAMPLE_RATE
    pulses = np.zeros(n)
    idx = np.flatnonzero(np.diff(np.floor(phase)) > 0) + 1
    pulses[idx] = 1 + 0.05 * rng.standard_normal(len(idx))
    pole = np.exp(-2 * np.pi * 450 / SAMPLE_RATE)
    src = signal.lfilter([1.0], [1, -2 * pole, pole * pole], pulses)
    src = np.diff(src, prepend=0.0)  # lip radiation
    src = src / (np.std(src) + 1e-12) + 0.03 * rng.standard_normal(n)  # aspiration
    src *= voiced_env
    # time-varying parallel formant filter bank (block-wise, states carried over)
    smooth = signal.butter(1, 20, fs=SAMPLE_RATE, output="sos")
    targets = signal.sosfiltfilt(smooth, targets, axis=0) * fscale
    bws = (90, 110, 160, 250, 300)
    gains = (1.0, 0.7, 0.45, 0.4, 0.35)
    fixed = (3500 * fscale, 4500 * fscale)
    block = 240
    y = np.zeros(n)
    zis = [np.zeros(2) for _ in range(5)]
    for b0 in range(0, n, block):
        seg = src[b0 : b0 + block]
        acc = np.zeros(len(seg))
        for j, fj in enumerate((*targets[b0], *fixed)):
            bb, aa = _resonator(fj, bws[j])
            yj, zis[j] = signal.lfilter(bb, aa, seg, zi=zis[j])
            acc += gains[j] * yj
        y[b0 : b0 + block] = acc
    fr = _bandpass(rng.standard_normal(n), rng.uniform(2500, 4500), 11000, 2)
    y = y / (np.std(y) + 1e-12) + 1.0 * fr * fric_env / (np.std(fr) + 1e-12)
    out = _pan(y, rng.uniform(-0.15, 0.15))
    out = _reverb(out, rng, rng.uniform(0.25, 0.6), rng.uniform(0.05, 0.2), 0.8)
    if rng.random() < 0.35:  # background noise, decorrelated (some width)
        noise = np.stack([rng.standard_normal(n), rng.standard_normal(n)], axis=1)
        noise = signal.sosfilt(_LP1K, noise, axis=0) + 0.1 * noise
        snr = rng.uniform(12, 25)
        noise *= np.sqrt(np.mean(out**2) / np.mean(noise**2)) * 10 ** (-snr / 20)
        out = out + noise
    return out, ("female" if female else "male")


def synth_item(test: str, index: int, n: int, seed: int) -> tuple[str, np.ndarray]:
    rng = seeded_rng(seed, K_SYNTH, TEST_KEY[test], index)
    if test == "demo-music":
        kind = _MUSIC_KINDS[index % len(_MUSIC_KINDS)]
        x = _MUSIC_SYNTH[kind](n, rng)
        name = f"music{index + 1:02d}_{kind}"
    else:
        x, voice = _speech(n, rng, female=index % 2 == 1)
        name = f"speech{index + 1:02d}_{voice}"
    return name, _finish(x[:n])
