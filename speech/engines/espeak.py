"""eSpeak NG through the `espeakng-loader` wheel (library and voice data ship in the wheel).

Instant and robotic, always available: the engine that makes the whole API work offline.
The C library keeps global state (one voice, one callback), so every call is serialised.
"""

import ctypes
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import espeakng_loader
import numpy as np

from speech.engines.base import (
    Capabilities,
    Engine,
    EngineError,
    SynthesisParams,
    VoiceSpec,
)

# espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS hands samples to the callback and returns.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 0x1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
# espeak_PARAMETER
_RATE, _PITCH, _RANGE = 1, 3, 4
_EE_OK = 0

# eSpeak's own rate limits, in words per minute; 175 is its normal speed (speed 1.0).
_NORMAL_WPM = 175
_MIN_WPM, _MAX_WPM = 80, 450


@dataclass(frozen=True)
class EspeakVoice:
    name: str  # eSpeak voice with variant
    pitch: int  # 0..100, 50 is eSpeak's default
    pitch_range: int  # 0..100, 50 is eSpeak's default


# Each standard OpenAI voice gets its own accent, variant and pitch so that they sound apart.
# British English is "gmw/en" in eSpeak NG (not "en-gb").
VOICES: dict[str, EspeakVoice] = {
    "alloy": EspeakVoice("en-us+f2", 50, 50),
    "ash": EspeakVoice("en-us+m3", 42, 45),
    "ballad": EspeakVoice("gmw/en+m2", 55, 70),
    "coral": EspeakVoice("en-us+f4", 62, 60),
    "echo": EspeakVoice("en-us+m1", 38, 40),
    "fable": EspeakVoice("gmw/en+m4", 50, 60),
    "onyx": EspeakVoice("en-us+m7", 22, 35),
    "nova": EspeakVoice("en-us+f5", 66, 55),
    "sage": EspeakVoice("gmw/en+f1", 48, 45),
    "shimmer": EspeakVoice("en-us+f3", 72, 65),
    "verse": EspeakVoice("en-us+m5", 50, 75),
    "marin": EspeakVoice("gmw/en+f2", 58, 50),
    "cedar": EspeakVoice("en-us+m6", 32, 45),
}

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakLibrary:
    """The C library, bound once per process. Not thread-safe: hold `lock` around every call."""

    lock = threading.Lock()

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        data_path = espeakng_loader.get_data_path().encode()
        sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT
        )
        if sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {sample_rate})")
        self.sample_rate = sample_rate
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes frees the trampoline when the Python object dies.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes.Array, num_samples: int, _events: int) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue

    def speak(self, text: str, voice: EspeakVoice, words_per_minute: int) -> np.ndarray:
        """Synthesize `text`; int16 samples. The caller holds `lock`."""
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != _EE_OK:
            # eSpeak keeps the previous voice on failure: never speak in the wrong one.
            raise EngineError(f"eSpeak has no voice {voice.name!r}", retryable=False)
        for parameter, value in (
            (_RATE, words_per_minute),
            (_PITCH, voice.pitch),
            (_RANGE, voice.pitch_range),
        ):
            if self._lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
                raise EngineError(f"eSpeak refused parameter {parameter}={value}", retryable=False)
        encoded = text.encode("utf-8")
        self._chunks = []
        status = self._lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
        )
        chunks, self._chunks = self._chunks, []
        if status != _EE_OK:
            raise EngineError(f"eSpeak synthesis failed (error {status})", retryable=True)
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks)


_library: _EspeakLibrary | None = None


def _get_library() -> _EspeakLibrary:
    global _library
    with _EspeakLibrary.lock:
        if _library is None:
            _library = _EspeakLibrary()
        return _library


class EspeakEngine(Engine):
    name = "espeak"
    capabilities = Capabilities(
        sample_rate=22050,
        cloning=False,
        context=False,
        streaming=True,
        batching=False,
        native_speed_range=(_MIN_WPM / _NORMAL_WPM, _MAX_WPM / _NORMAL_WPM),
        max_chunk_chars=400,
    )

    def _load(self) -> None:
        library = _get_library()
        if library.sample_rate != self.capabilities.sample_rate:
            raise RuntimeError(
                f"eSpeak produces {library.sample_rate} Hz, expected "
                f"{self.capabilities.sample_rate} Hz"
            )
        self._library = library

    def synthesize(
        self, chunks: Sequence[str], voice: VoiceSpec, params: SynthesisParams
    ) -> Iterator[np.ndarray]:
        self.ensure_ready()
        profile = VOICES.get(voice.standard or "")
        if profile is None:
            raise EngineError(f"eSpeak cannot speak voice {voice.name!r}", retryable=False)
        words_per_minute = round(min(max(_NORMAL_WPM * params.speed, _MIN_WPM), _MAX_WPM))
        for chunk in chunks:
            # Hold the lock per chunk, not per request, so concurrent requests interleave.
            with _EspeakLibrary.lock:
                samples = self._library.speak(chunk, profile, words_per_minute)
            yield samples.astype(np.float32) / 32768.0
