"""POST /v1/audio/speech through the real openai client against a live server."""

import base64
import io
import json
import threading
import time
from dataclasses import dataclass

import av
import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from speech.admission import speech_slots
from speech.engines.base import EngineError
from speech.engines.espeak import EspeakEngine
from voices.models import Voice

pytestmark = pytest.mark.django_db(transaction=True)

SENTENCES = (
    "The quick brown fox jumps over the lazy dog. "
    "A second sentence follows the first one. "
    "And a third sentence ends the paragraph."
)


@dataclass
class DecodedAudio:
    container: str
    codec: str
    sample_rate: int
    seconds: float
    samples: np.ndarray


def decode(data: bytes) -> DecodedAudio:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        samples = np.concatenate(frames)
        return DecodedAudio(
            container=container.format.name,
            codec=stream.codec_context.name,
            sample_rate=stream.codec_context.sample_rate,
            seconds=samples.size / stream.codec_context.sample_rate,
            samples=samples,
        )


@pytest.fixture
def client(openai_client: OpenAI) -> OpenAI:
    return openai_client


@pytest.mark.parametrize(
    ("response_format", "container", "codecs", "rate"),
    [
        ("mp3", "mp3", {"mp3", "mp3float"}, 24000),
        ("opus", "ogg", {"opus", "libopus"}, 48000),  # Opus always decodes at 48 kHz
        ("aac", "aac", {"aac"}, 24000),
        ("flac", "flac", {"flac"}, 24000),
        ("wav", "wav", {"pcm_s16le"}, 24000),
    ],
)
def test_it_speaks_every_container_format(client, response_format, container, codecs, rate):
    # when
    audio = client.audio.speech.create(
        model="tts-1", voice="alloy", input=SENTENCES, response_format=response_format
    )
    # then
    decoded = decode(audio.content)
    assert decoded.container == container
    assert decoded.codec in codecs
    assert decoded.sample_rate == rate
    # Three sentences at eSpeak's normal rate take several seconds.
    assert 4.0 < decoded.seconds < 15.0
    assert np.abs(decoded.samples).max() > 0.05


def test_it_returns_the_content_type_of_each_format(api):
    expected = {
        "mp3": "audio/mpeg",
        "opus": "audio/opus",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm",
    }
    for response_format, content_type in expected.items():
        response = api.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "input": "Hello.", "response_format": response_format},
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == content_type


def test_it_defaults_to_mp3(api):
    response = api.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hello there."})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert decode(response.content).codec in {"mp3", "mp3float"}


def test_pcm_is_raw_24khz_signed_16_bit_mono(client):
    # given the same text as WAV, whose header states the format
    wav = decode(
        client.audio.speech.create(
            model="tts-1", voice="echo", input=SENTENCES, response_format="wav"
        ).content
    )
    # when
    pcm = client.audio.speech.create(
        model="tts-1", voice="echo", input=SENTENCES, response_format="pcm"
    ).content
    # then: no header, 2 bytes per sample, as long as the WAV at 24 kHz
    # (eSpeak's output varies by a few samples from call to call, so compare lengths loosely)
    assert not pcm.startswith(b"RIFF")
    assert len(pcm) % 2 == 0
    samples = np.frombuffer(pcm, dtype="<i2")
    assert samples.size / 24000 == pytest.approx(wav.seconds, rel=0.01)
    assert np.abs(samples).max() > 1000


def test_speed_two_halves_the_duration(client):
    normal = decode(
        client.audio.speech.create(
            model="tts-1", voice="alloy", input=SENTENCES, response_format="wav"
        ).content
    )
    fast = decode(
        client.audio.speech.create(
            model="tts-1", voice="alloy", input=SENTENCES, response_format="wav", speed=2.0
        ).content
    )
    assert fast.seconds == pytest.approx(normal.seconds / 2, rel=0.15)


@pytest.mark.parametrize("speed", [0.25, 4.0])
def test_speeds_beyond_the_engine_are_time_stretched(client, speed):
    # eSpeak renders 0.46x..2.57x itself; the rest is stretched after synthesis.
    normal = decode(
        client.audio.speech.create(
            model="tts-1", voice="nova", input="One short sentence.", response_format="wav"
        ).content
    )
    changed = decode(
        client.audio.speech.create(
            model="tts-1",
            voice="nova",
            input="One short sentence.",
            response_format="wav",
            speed=speed,
        ).content
    )
    assert changed.seconds == pytest.approx(normal.seconds / speed, rel=0.2)


def test_voices_sound_different(client):
    alloy = client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello.", response_format="pcm"
    ).content
    onyx = client.audio.speech.create(
        model="tts-1", voice="onyx", input="Hello.", response_format="pcm"
    ).content
    assert alloy != onyx


def test_voice_can_be_given_as_an_object(api):
    by_object = api.post(
        "/v1/audio/speech",
        json={"model": "tts-1", "input": "Hi.", "voice": {"id": "onyx"}, "response_format": "pcm"},
    )
    by_name = api.post(
        "/v1/audio/speech",
        json={"model": "tts-1", "input": "Hi.", "voice": "onyx", "response_format": "pcm"},
    )
    assert by_object.status_code == 200
    assert len(by_object.content) == pytest.approx(len(by_name.content), rel=0.01)


def test_missing_voice_is_accepted(api):
    url = "/v1/audio/speech"
    without = api.post(url, json={"model": "tts-1", "input": "Hi.", "response_format": "pcm"})
    assert without.status_code == 200
    assert len(without.content) > 24000 * 2 * 0.2


def test_every_default_model_name_speaks(client):
    # csm-1b always means CSM: its own tests cover it.
    for model in ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "espeak"):
        audio = client.audio.speech.create(model=model, voice="sage", input="Hi.")
        assert decode(audio.content).seconds > 0.2


def test_the_original_api_prefix_works(api):
    response = api.post("/api/v1/audio/speech", json={"model": "tts-1", "input": "Hello."})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"


def test_audio_streams_in_several_chunks(client):
    text = " ".join(f"This is sentence number {n} of a longer text." for n in range(12))
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="pcm"
    ) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        chunks = [chunk for chunk in response.iter_bytes() if chunk]
    assert len(chunks) >= 3
    assert sum(len(chunk) for chunk in chunks) > 24000 * 2 * 5


def test_sse_streams_base64_deltas_and_a_done_event_with_usage(client):
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input=SENTENCES,
        response_format="pcm",
        stream_format="sse",
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[len("data: ") :])
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    deltas = [event for event in events if event["type"] == "speech.audio.delta"]
    assert len(deltas) >= 2
    assert events[-1]["type"] == "speech.audio.done"
    pcm = b"".join(base64.b64decode(event["audio"]) for event in deltas)
    seconds = len(pcm) / 2 / 24000
    usage = events[-1]["usage"]
    assert usage["input_tokens"] == len(SENTENCES)
    assert usage["output_tokens"] == pytest.approx(seconds * 12.5, abs=1)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_max_audio_length_ms_caps_the_audio(client):
    audio = client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input=SENTENCES,
        response_format="pcm",
        extra_body={"max_audio_length_ms": 1000},
    )
    assert len(audio.content) / 2 / 24000 == pytest.approx(1.0, abs=0.05)


def test_extra_parameters_are_accepted(client):
    audio = client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input="Hello.",
        instructions="Speak cheerfully.",
        extra_body={"temperature": 0.7, "topk": 40, "seed": 42, "voice_consistency": 0.5},
    )
    assert decode(audio.content).seconds > 0.2


# --- errors -------------------------------------------------------------------------------


def _bad_request(client, **overrides) -> openai.BadRequestError:
    request = {"model": "tts-1", "voice": "alloy", "input": "Hello."} | overrides
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(**request)
    return caught.value


def test_input_over_4096_characters_is_refused(client):
    error = _bad_request(client, input="a" * 4097)
    assert error.status_code == 400
    assert error.param == "input"
    assert error.type == "invalid_request_error"
    assert "4096" in error.message


def test_input_of_exactly_4096_characters_is_accepted(client):
    audio = client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input=("word " * 820)[:4096],
        response_format="pcm",
        extra_body={"max_audio_length_ms": 500},
    )
    assert len(audio.content) > 0


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u202e\x00"])
def test_empty_input_is_refused(client, text):
    error = _bad_request(client, input=text)
    assert error.param == "input"


def test_unknown_voice_is_a_400_naming_the_voice(client):
    error = _bad_request(client, voice="no-such-voice")
    assert error.param == "voice"
    assert "no-such-voice" in error.message


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"response_format": "ogg"}, "response_format"),
        ({"speed": 4.5}, "speed"),
        ({"speed": 0.2}, "speed"),
        ({"stream_format": "video"}, "stream_format"),
        ({"extra_body": {"temperature": 0}}, "temperature"),
        ({"extra_body": {"topk": 101}}, "topk"),
        ({"extra_body": {"seed": -1}}, "seed"),
        ({"extra_body": {"max_audio_length_ms": 0}}, "max_audio_length_ms"),
        ({"extra_body": {"voice_consistency": 1.5}}, "voice_consistency"),
    ],
)
def test_invalid_parameters_are_refused_by_name(client, overrides, param):
    error = _bad_request(client, **overrides)
    assert error.param == param


def test_missing_model_is_refused(api):
    response = api.post("/v1/audio/speech", json={"input": "Hello."})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert response.json()["error"]["code"] == "missing_required_parameter"


def test_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.audio.speech.create(model="tts-9", voice="alloy", input="Hello.")
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


def test_malformed_json_is_a_400(api):
    response = api.post(
        "/v1/audio/speech",
        content=b'{"model": "tts-1", "input": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_an_oversized_body_is_refused(api):
    response = api.post(
        "/v1/audio/speech",
        json={"model": "tts-1", "input": "Hello.", "padding": "x" * 300_000},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_a_cloned_voice_is_refused_by_an_engine_that_cannot_clone(client, alice):
    Voice.objects.create(
        owner=alice,
        name="my-clone",
        kind=Voice.Kind.CLONED,
        source=Voice.Source.UPLOAD,
        reference_audio="voices/x/reference.wav",
        reference_text="hello",
    )
    error = _bad_request(client, voice="my-clone")
    assert error.param == "voice"
    assert error.code == "voice_not_supported"


def test_a_busy_server_answers_503_with_retry_after(client, settings):
    settings.SPEECH_MAX_INFLIGHT = 1
    assert speech_slots.try_acquire()
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")
    finally:
        speech_slots.release()
    assert caught.value.status_code == 503
    assert caught.value.code == "server_busy"
    assert caught.value.response.headers["retry-after"] == "1"


def test_an_engine_crash_is_a_500_without_details(client, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("boom in /srv/secret/path.py")
        yield  # pragma: no cover - makes this a generator like the real one

    monkeypatch.setattr(EspeakEngine, "synthesize", crash)
    with pytest.raises(openai.InternalServerError) as caught:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")
    assert caught.value.status_code == 500
    assert "secret" not in caught.value.response.text
    assert "Traceback" not in caught.value.response.text
    assert speech_slots.inflight == 0


def test_a_retryable_engine_failure_is_a_503(client, monkeypatch):
    def fail(*args, **kwargs):
        raise EngineError("out of memory", retryable=True)
        yield  # pragma: no cover

    monkeypatch.setattr(EspeakEngine, "synthesize", fail)
    with pytest.raises(openai.InternalServerError) as caught:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "1"
    # and the next request succeeds
    monkeypatch.undo()
    assert client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.").content


def test_a_client_that_disconnects_stops_its_generation(api, monkeypatch):
    # given an engine that would speak forever, a chunk every 20 ms
    stopped = threading.Event()

    def endless(self, chunks, voice, params):
        try:
            while True:
                time.sleep(0.02)
                yield np.full(2205, 0.1, dtype=np.float32)
        finally:
            stopped.set()

    monkeypatch.setattr(EspeakEngine, "synthesize", endless)
    # when the client reads the first audio and hangs up
    with api.stream(
        "POST",
        "/v1/audio/speech",
        json={"model": "tts-1", "input": "Hello.", "response_format": "pcm"},
    ) as response:
        assert response.status_code == 200, response.read()
        # Keep the iterator: a dropped one is closed at once, and closes the connection.
        chunks = response.iter_raw()
        first = next(chunks)
        # The patched engine's constant 0.1 is the PCM sample 3277.
        assert set(np.frombuffer(first[:1000], dtype="<i2")) == {3277}
        assert not stopped.is_set()
        assert speech_slots.inflight == 1
    # then the server stops generating and frees the slot
    assert stopped.wait(timeout=10)
    deadline = time.monotonic() + 10
    while speech_slots.inflight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert speech_slots.inflight == 0


def test_a_failure_mid_stream_cuts_the_response_and_frees_the_slot(api, monkeypatch):
    # given an engine that fails after its first audio
    def fail_later(self, chunks, voice, params):
        yield np.full(22050, 0.1, dtype=np.float32)
        raise EngineError("device lost", retryable=True)

    monkeypatch.setattr(EspeakEngine, "synthesize", fail_later)
    # when: the status is already sent, so the only honest signal is a cut-off body
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(
            "/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "response_format": "pcm"}
        )
    # then the generation slot comes back
    deadline = time.monotonic() + 10
    while speech_slots.inflight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert speech_slots.inflight == 0


@pytest.mark.parametrize("speed", [0.25, 1.0, 4.0])
def test_max_audio_length_ms_caps_the_delivered_audio_at_any_speed(client, speed):
    audio = client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input=SENTENCES,
        response_format="pcm",
        speed=speed,
        extra_body={"max_audio_length_ms": 1000},
    )
    assert len(audio.content) / 2 / 24000 == pytest.approx(1.0, abs=0.1)
