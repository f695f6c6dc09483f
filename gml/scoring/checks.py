"""Warnings for pairs that can be scored but whose score may not mean what it seems."""

from __future__ import annotations

from dataclasses import dataclass

from gml.features.pair import MAX_LENGTH_DIFFERENCE, describe_difference, length_difference
from gml.features.stream import AudioInfo

__all__ = ["PairChecks", "feature_dbfs"]


def feature_dbfs(peak: float, settings: dict) -> float:
    """A value of the frontend's features (dB above its floor) as the band RMS in dB relative
    to full scale (-90 for silence at the default floor); ``settings``: the frontend's."""
    return (float(peak) + settings["abs_floor_db"]) * 20.0 / settings["db_scale"]


@dataclass
class PairChecks:
    """The limits beyond which a pair gets a warning (one line each, see :meth:`notes`).

    Attributes:
        max_length_difference: Seconds the aligned signals' lengths may differ.
        min_sample_rate: Below this rate the gammatone bands above its Nyquist frequency are
            empty.
        min_duration: Seconds below which an excerpt (the longer signal) is too short:
            listening tests, and a listener's training material, use several seconds.
        silence_dbfs: A signal whose loudest gammatone band (RMS over one 80 ms frame) stays
            below this level (dB relative to full scale) is (near) silence.
        unrelated_correlation: Waveforms that correlate less than this at every delay the
            search tries (over the first 30 s; needs the delay search) are unrelated. Real
            coded, low-passed and source-separated signals stayed above it
            (docs/errors.md); the delay search itself removes no delay below 0.3.
    """

    max_length_difference: float = MAX_LENGTH_DIFFERENCE
    min_sample_rate: int = 16000
    min_duration: float = 1.0
    silence_dbfs: float = -70.0
    unrelated_correlation: float = 0.1

    def notes(
        self,
        reference: AudioInfo,
        coded: AudioInfo,
        delay_seconds: float,
        levels: tuple[float, float] | None = None,
        silence_floor: float = -90.0,
        correlation: float | None = None,
    ) -> list[str]:
        """One line per reason the pair's score may not mean what the user thinks.

        Args:
            reference, coded: The files as read.
            delay_seconds: The delay removed (positive: the coded signal lags).
            levels: The loudest band of each signal in dBFS (:func:`feature_dbfs`); None
                leaves out the silence checks.
            silence_floor: The level of digital silence (the features' floor) in dBFS.
            correlation: The delay search's normalised correlation (None: not searched).
        """
        notes = []
        for info in (reference, coded):
            if info.sample_rate < self.min_sample_rate:
                notes.append(
                    f"{info.source}: sample rate {info.sample_rate} Hz; the bands above "
                    f"{info.sample_rate // 2} Hz are empty, so the score compares less of the "
                    "spectrum than for full-band audio"
                )
        diff = length_difference(reference.duration, coded.duration, delay_seconds)
        if abs(diff) > self.max_length_difference:
            notes.append(
                f"{coded.source} is {describe_difference(diff)} than its reference "
                f"{reference.source} after removing a {1000 * delay_seconds:.0f} ms delay; "
                "the shorter one is zero-padded on both sides"
            )
        if reference.channels != coded.channels:
            mono_coded = coded.channels == 1
            notes.append(
                f"{coded.source} is {'mono' if mono_coded else 'stereo'} and its reference "
                f"{reference.source} {'stereo' if mono_coded else 'mono'}; the mono one is "
                "used as L = R, so the difference in stereo image counts as a degradation"
            )
        duration = max(reference.duration, coded.duration)
        if duration < self.min_duration:
            notes.append(
                f"{coded.source} and its reference {reference.source} last {duration:.2f} s, "
                f"less than {self.min_duration:g} s; listening tests (and the training "
                "material) use excerpts of several seconds, so the score means little"
            )
        silent = False
        if levels is not None:
            consequence = (
                "there is nothing to compare the coded signal with",
                "a silent signal is not a coded version of its reference",
            )
            for info, level, why in zip((reference, coded), levels, consequence):
                if level < self.silence_dbfs:
                    silent = True
                    if level <= silence_floor:
                        what = f"silent (all its bands at the features' floor, {level:.0f} dBFS)"
                    else:
                        what = (
                            f"near-silent (its loudest band peaks at {level:.0f} dBFS, below "
                            f"{self.silence_dbfs:g})"
                        )
                    notes.append(f"{info.source} is {what}: {why}, so the score means little")
        if correlation is not None and not silent and correlation < self.unrelated_correlation:
            notes.append(
                f"{coded.source} and its reference {reference.source} look unrelated: "
                f"their waveforms correlate at most {correlation:.2f} (below "
                f"{self.unrelated_correlation:g}) at any delay within ±0.5 s, so the score "
                "of the pair means little (a different excerpt?)"
            )
        return notes
