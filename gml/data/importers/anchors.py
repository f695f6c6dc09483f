"""Low-pass anchors rendered offline, as webMUSHRA makes them in the browser.

ITU-R BS.1534-3 asks for a low anchor low-pass filtered at 3.5 kHz and a mid anchor at 7 kHz.
webMUSHRA (``createAnchor35`` / ``createAnchor70``) filters the reference in the listener's
browser and never stores the result, so the importer renders the anchors itself: a 16th-order
Butterworth low-pass (8 second-order sections) run forwards and backwards
(:func:`scipy.signal.sosfiltfilt`). Forward-backward filtering has zero phase, so the anchor is
time-aligned with the reference sample for sample; the magnitude response is the square of
the Butterworth's: -6 dB at the cutoff, -36 dB at 1.3 x and -96 dB at 2 x the cutoff. It is a
faithful BS.1534-3 anchor, not a bit-exact copy of what a browser played.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

from gml.atomic import atomic_write
from gml.data.importers.base import ImporterError

__all__ = ["ANCHOR_CUTOFFS", "ANCHOR_ORDER", "lowpass", "render_lowpass_anchor"]

#: webMUSHRA's anchor names and their cutoff frequencies in Hz.
ANCHOR_CUTOFFS = {"anchor35": 3500.0, "anchor70": 7000.0}

#: Butterworth order (run twice, so the magnitude falls like order 32 above the cutoff).
ANCHOR_ORDER = 16


def lowpass(
    audio: np.ndarray, rate: int, cutoff_hz: float, order: int = ANCHOR_ORDER
) -> np.ndarray:
    """Zero-phase Butterworth low-pass along the first axis.

    Args:
        audio: Samples, float.
        rate: Sample rate in Hz.
        cutoff_hz: Cutoff (-6 dB point of the forward-backward response).
        order: Butterworth order.

    Returns:
        The filtered samples (float64); a copy of ``audio`` when the cutoff is at or above the
        Nyquist frequency (nothing to remove).

    Shape:
        audio: ``[n]`` or ``[n, channels]``; the output has the same shape.
    """
    x = np.asarray(audio, dtype=np.float64)
    if cutoff_hz >= rate / 2:
        return x.copy()
    sos = butter(order, cutoff_hz, btype="low", fs=rate, output="sos")
    # sosfiltfilt's default edge padding needs a few dozen samples; shorter clips pad less
    padlen = min(3 * (2 * len(sos) + 1), max(x.shape[0] - 1, 0))
    return sosfiltfilt(sos, x, axis=0, padlen=padlen)


def render_lowpass_anchor(
    reference: str | os.PathLike, out: str | os.PathLike, cutoff_hz: float
) -> Path:
    """Write a low-pass filtered copy of ``reference`` to ``out`` (a WAV file), atomically.

    The anchor keeps the reference's sample rate, channels and sample format (subtype) when WAV
    can hold it (otherwise 32-bit float). Integer formats are clipped to full scale, since the
    filter's ringing can overshoot.

    Raises:
        ImporterError: The reference cannot be read.
    """
    ref = os.fspath(reference)
    try:
        info = sf.info(ref)
        data, rate = sf.read(ref, dtype="float64", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise ImporterError(f"{ref}: cannot be read as audio to render an anchor ({err})") from None
    if data.shape[0] == 0:
        raise ImporterError(f"{ref}: has no samples; expected a reference to render an anchor from")
    anchor = lowpass(data, rate, cutoff_hz)
    subtype = info.subtype if sf.check_format("WAV", info.subtype) else "FLOAT"
    if not subtype.startswith(("FLOAT", "DOUBLE")):
        anchor = np.clip(anchor, -1.0, 1.0)
    if info.channels == 1:
        anchor = anchor[:, 0]
    out = Path(out)
    atomic_write(out, lambda f: sf.write(f, anchor, rate, format="WAV", subtype=subtype))
    return out
