"""Audio input and the gammatone frontend (features know nothing of data or model)."""

from gml.features.audio import AudioError, load_audio
from gml.features.gammatone import (
    GammatoneFrontend,
    erb_center_frequencies,
    gammatone_power_response,
)
from gml.features.pair import pad_pair
from gml.features.stream import (
    AudioInfo,
    AudioSource,
    DecodedFile,
    audio_info,
    decode_short_file,
    streamed_spectrogram,
)

__all__ = [
    "AudioError",
    "AudioInfo",
    "AudioSource",
    "DecodedFile",
    "GammatoneFrontend",
    "audio_info",
    "decode_short_file",
    "erb_center_frequencies",
    "gammatone_power_response",
    "load_audio",
    "pad_pair",
    "streamed_spectrogram",
]
