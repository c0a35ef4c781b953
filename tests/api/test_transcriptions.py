"""POST /v1/audio/transcriptions and /v1/audio/translations through Django's test client: the
answers' shapes and content types in every format, the limits, the errors in OpenAI's shape,
the refusals while Whisper loads, cannot load, or the server is full, and (on a live server)
what a request whose client left still costs.

Whisper is a tiny random checkpoint loaded through WHISPER_MODEL as the server loads any: it
hears gibberish, so the tests check shapes, timestamps and bookkeeping, never the words. Its
text context is short (64 tokens), so a random model that never stops talking stops soon.
"""

import math
import re
import socket
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import whisper
import whisper.model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import request_finished

from accounts.limits import generation_slots_acquire
from accounts.models import ApiKey, Usage
from api import transcriptions as transcriptions_view
from core.body_limit import FORM_OVERHEAD_BYTES
from ingest import transcribe as transcribe_module
from ingest.transcribe import FAILED_LOAD_MEMORY_SECONDS, transcriber_reset
from ingest.transcription import transcription_models, transcription_slots
from tests.security.hostile_cases import HOSTILE_UPLOADS
from tests.support.audio import RATE, encoded, spoken
from tests.support.whisper import whisper_loads_recorded

pytestmark = pytest.mark.django_db(transaction=True)

TRANSCRIPTIONS = "/v1/audio/transcriptions"
TRANSLATIONS = "/v1/audio/translations"
SENTENCE = "The quick brown fox jumps over the lazy dog."
# One sampling pass instead of the fallback ladder of temperature 0: what most tests need.
ONE_PASS = "0.5"
TEXT_PLAIN = "text/plain; charset=utf-8"
SEGMENT_FIELDS = {
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
}
SRT_CUE = re.compile(
    r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)\n([^\n]+)\n\n"
)
VTT_CUE = re.compile(
    r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)\n([^\n]+)\n\n"
)


@pytest.fixture
def english_whisper(settings, short_whisper) -> Iterator[Path]:
    settings.WHISPER_MODEL = str(short_whisper["en"])
    transcriber_reset()
    yield short_whisper["en"]
    transcriber_reset()


@pytest.fixture
def multilingual_whisper(settings, short_whisper) -> Iterator[Path]:
    settings.WHISPER_MODEL = str(short_whisper["multilingual"])
    transcriber_reset()
    yield short_whisper["multilingual"]
    transcriber_reset()


@pytest.fixture(scope="module")
def speech() -> bytes:
    """About three seconds of eSpeak NG speech as a 24 kHz WAV."""
    return encoded(spoken(SENTENCE))


def seconds_of(wav: bytes) -> float:
    return (len(wav) - 44) / 2 / RATE


def post(client, key: str | None, path: str = TRANSCRIPTIONS, *, file=None, **fields):
    """A multipart POST as OpenAI's clients send it: `file` is (name, bytes, type), or None
    for no file; lists become repeated fields."""
    data = {"model": "whisper-1", **fields}
    if file is not None:
        name, content, content_type = file
        data["file"] = SimpleUploadedFile(name, content, content_type)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.post(path, data=data, **headers)


def wav(speech: bytes) -> tuple[str, bytes, str]:
    return ("speech.wav", speech, "audio/wav")


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def assert_segments(segments: list[dict], duration: float) -> None:
    for index, segment in enumerate(segments):
        assert set(segment) == SEGMENT_FIELDS
        assert segment["id"] == index
        assert isinstance(segment["seek"], int)
        assert 0.0 <= segment["start"] <= segment["end"] <= duration
        assert isinstance(segment["text"], str)
        assert segment["tokens"] and all(isinstance(token, int) for token in segment["tokens"])
        for name in ("temperature", "avg_logprob", "compression_ratio", "no_speech_prob"):
            assert isinstance(segment[name], float)
        assert 0.0 <= segment["no_speech_prob"] <= 1.0


def timestamps(match: re.Match, first: int) -> tuple[float, float]:
    values = [int(value) for value in match.groups()[first : first + 8]]
    start = values[0] * 3600 + values[1] * 60 + values[2] + values[3] / 1000
    end = values[4] * 3600 + values[5] * 60 + values[6] + values[7] / 1000
    return start, end


# --- Shapes and content types -------------------------------------------------------------------


def test_json_is_openais_transcription_with_its_usage(client, alice_key, english_whisper, speech):
    # The default temperature (0): whisper's fallback ladder, as OpenAI describes it.
    response = post(client, alice_key, file=wav(speech))

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"text", "usage"}
    assert isinstance(body["text"], str)
    assert body["text"] == body["text"].strip()
    assert body["usage"] == {"type": "duration", "seconds": math.ceil(seconds_of(speech))}


def test_verbose_json_has_segments_by_default(client, alice_key, english_whisper, speech):
    response = post(
        client, alice_key, file=wav(speech), response_format="verbose_json", temperature=ONE_PASS
    )

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"task", "language", "duration", "text", "segments", "usage"}
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert body["duration"] == pytest.approx(seconds_of(speech), abs=1e-3)
    assert body["segments"], "the random model says something in every window"
    assert_segments(body["segments"], body["duration"])
    assert body["text"] == "".join(segment["text"] for segment in body["segments"]).strip()
    assert body["usage"] == {"type": "duration", "seconds": math.ceil(body["duration"])}


def test_word_and_segment_timestamps(client, alice_key, english_whisper, speech):
    response = post(
        client,
        alice_key,
        file=wav(speech),
        response_format="verbose_json",
        temperature=ONE_PASS,
        **{"timestamp_granularities[]": ["word", "segment"]},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"task", "language", "duration", "text", "segments", "words", "usage"}
    assert_segments(body["segments"], body["duration"])
    words = body["words"]
    assert words
    previous = 0.0
    for word in words:
        assert set(word) == {"word", "start", "end"}
        assert word["word"] and word["word"] == word["word"].strip()
        assert previous <= word["start"] <= word["end"] <= body["duration"]
        previous = word["start"]
    # The words are the text, word by word.
    assert "".join(word["word"] for word in words) == "".join(body["text"].split())


def test_words_alone_leave_out_the_segments(client, alice_key, english_whisper, speech):
    response = post(
        client,
        alice_key,
        file=wav(speech),
        response_format="verbose_json",
        temperature=ONE_PASS,
        **{"timestamp_granularities[]": ["word"]},
    )

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"task", "language", "duration", "text", "words", "usage"}


def test_text_is_plain_text(client, alice_key, english_whisper, speech):
    response = post(client, alice_key, file=wav(speech), response_format="text", temperature="1")

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == TEXT_PLAIN
    text = response.content.decode()
    assert text.endswith("\n")
    assert text.strip() and text == text.strip() + "\n"


def test_srt_is_numbered_subrip_cues(client, alice_key, english_whisper, speech):
    response = post(client, alice_key, file=wav(speech), response_format="srt", temperature="1")

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == TEXT_PLAIN
    text = response.content.decode()
    cues = list(SRT_CUE.finditer(text))
    assert cues
    assert "".join(cue.group(0) for cue in cues) == text
    previous_end = 0.0
    for number, cue in enumerate(cues, start=1):
        assert int(cue.group(1)) == number
        start, end = timestamps(cue, 1)
        assert previous_end <= start <= end <= seconds_of(speech) + 0.001
        assert cue.group(10) == cue.group(10).strip()
        previous_end = end


def test_vtt_is_webvtt(client, alice_key, english_whisper, speech):
    response = post(client, alice_key, file=wav(speech), response_format="vtt", temperature="1")

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == TEXT_PLAIN
    text = response.content.decode()
    assert text.startswith("WEBVTT\n\n")
    cues = list(VTT_CUE.finditer(text))
    assert cues
    assert "WEBVTT\n\n" + "".join(cue.group(0) for cue in cues) == text
    for cue in cues:
        start, end = timestamps(cue, 0)
        assert 0.0 <= start <= end <= seconds_of(speech) + 0.001


def test_the_api_prefix_serves_it_too(client, alice_key, english_whisper, speech):
    response = post(
        client, alice_key, "/api/v1/audio/transcriptions", file=wav(speech), temperature=ONE_PASS
    )

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"text", "usage"}


# --- Languages and translation ------------------------------------------------------------------


def test_a_multilingual_model_transcribes_in_the_language_given(
    client, alice_key, multilingual_whisper, speech
):
    response = post(
        client,
        alice_key,
        file=wav(speech),
        response_format="verbose_json",
        language="de",
        temperature=ONE_PASS,
    )

    assert response.status_code == 200, response.content
    assert response.json()["language"] == "german"


def test_an_unknown_language_is_refused(client, alice_key, english_whisper, speech):
    error = error_of(post(client, alice_key, file=wav(speech), language="xx"), 400)

    assert error["param"] == "language"
    assert error["code"] == "invalid_language_format"
    assert "ISO-639-1" in error["message"]


def test_an_english_only_model_refuses_other_languages(client, alice_key, english_whisper, speech):
    error = error_of(post(client, alice_key, file=wav(speech), language="de"), 400)

    assert error["param"] == "language"
    assert error["code"] == "unsupported_language"
    assert "WHISPER_MODEL" in error["message"]


@pytest.mark.parametrize(
    ("response_format", "keys"),
    [("json", {"text"}), ("verbose_json", {"task", "language", "duration", "text", "segments"})],
)
def test_translations_answer_in_english(
    client, alice_key, multilingual_whisper, speech, response_format, keys
):
    response = post(
        client,
        alice_key,
        TRANSLATIONS,
        file=wav(speech),
        response_format=response_format,
        temperature=ONE_PASS,
    )

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == keys
    if response_format == "verbose_json":
        assert body["task"] == "translate"
        assert body["language"] == "english"
        assert_segments(body["segments"], body["duration"])


def test_translations_answer_srt_as_text(client, alice_key, multilingual_whisper, speech):
    response = post(
        client, alice_key, TRANSLATIONS, file=wav(speech), response_format="srt", temperature="1"
    )

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == TEXT_PLAIN
    assert SRT_CUE.match(response.content.decode())


def test_an_english_only_model_cannot_translate(client, alice_key, english_whisper, speech):
    error = error_of(post(client, alice_key, TRANSLATIONS, file=wav(speech)), 400)

    assert error["param"] == "model"
    assert error["code"] == "model_not_supported"
    assert "multilingual" in error["message"]


# --- Fields, models and keys --------------------------------------------------------------------


def test_the_file_is_required(client, alice_key):
    error = error_of(post(client, alice_key, response_format="json"), 400)

    assert error["param"] == "file"
    assert error["code"] == "missing_required_parameter"


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"response_format": "xml"}, "response_format", "invalid_value"),
        ({"temperature": "1.5"}, "temperature", "number_above_max_value"),
        ({"temperature": "-0.1"}, "temperature", "number_below_min_value"),
        ({"prompt": "x" * 4097}, "prompt", "string_above_max_length"),
        ({"model": ""}, "model", "empty_string"),
        ({"timestamp_granularities[]": ["char"]}, "timestamp_granularities[][0]", "invalid_value"),
    ],
)
def test_fields_are_validated(client, alice_key, speech, fields, param, code):
    error = error_of(post(client, alice_key, file=wav(speech), **fields), 400)

    assert (error["param"], error["code"]) == (param, code)


def test_an_unknown_model_is_not_found(client, alice_key, english_whisper, speech):
    error = error_of(post(client, alice_key, file=wav(speech), model="whisper-9"), 404)

    assert error["param"] == "model"
    assert error["code"] == "model_not_found"
    assert "whisper-1" in error["message"]
    # The configured checkpoint is a file: its path is neither offered nor accepted.
    assert str(english_whisper.parent) not in error["message"]
    by_path = post(client, alice_key, file=wav(speech), model=str(english_whisper))
    assert error_of(by_path, 404)["code"] == "model_not_found"


@pytest.mark.parametrize(
    "model",
    ["gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-mini-transcribe-2025-12-15"],
)
def test_openais_newer_transcription_models_are_served_by_whisper(
    client, alice_key, english_whisper, speech, model
):
    response = post(client, alice_key, file=wav(speech), model=model, temperature="0.5")

    assert response.status_code == 200
    assert isinstance(response.json()["text"], str)


@pytest.mark.parametrize("model", ["gpt-4o-transcribe-diarize", "gpt-4o-mini-transcribe-2025"])
def test_other_transcription_models_are_not_found(
    client, alice_key, english_whisper, speech, model
):
    error = error_of(post(client, alice_key, file=wav(speech), model=model), 404)

    assert error["code"] == "model_not_found"


def test_the_configured_model_name_is_accepted(client, alice_key, settings, monkeypatch, speech):
    """WHISPER_MODEL=tiny.en: the name is a model here (it is loaded, and, offline, the
    download fails), while other names are not."""

    def unreachable(url: str, root: str, in_memory: bool):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(whisper, "_download", unreachable)
    settings.WHISPER_MODEL = "tiny.en"
    transcriber_reset()

    assert transcription_models() == ["whisper-1", "tiny.en"]
    error = error_of(post(client, alice_key, file=wav(speech), model="tiny.en"), 503)
    assert error["code"] == "transcription_unavailable"
    assert error_of(post(client, alice_key, file=wav(speech), model="base.en"), 404)
    transcriber_reset()


def test_a_key_is_required(client, speech):
    error = error_of(post(client, None, file=wav(speech)), 401)

    assert error["code"] == "invalid_api_key"


def test_an_unknown_key_is_refused(client, speech):
    error = error_of(post(client, "sk-csm-not-a-key", file=wav(speech)), 401)

    assert error["code"] == "invalid_api_key"


# --- Upload limits ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_before_it_is_read(client, alice_key, settings):
    # The parser's bound is the body guard's: the file's limit and the form around it.
    settings.STT_MAX_BYTES = 1024
    big = b"RIFF" + bytes(1024 + FORM_OVERHEAD_BYTES)

    error = error_of(post(client, alice_key, file=("big.wav", big, "audio/wav")), 413)

    assert error["code"] == "request_too_large"


def test_a_file_over_the_limit_is_refused(client, alice_key, settings, speech):
    settings.STT_MAX_BYTES = len(speech) - 1

    error = error_of(post(client, alice_key, file=wav(speech)), 400)

    assert (error["param"], error["code"]) == ("file", "file_too_large")


def test_audio_over_the_duration_limit_is_refused(client, alice_key, settings, speech):
    settings.STT_MAX_AUDIO_SECONDS = 1.0

    error = error_of(post(client, alice_key, file=wav(speech)), 400)

    assert (error["param"], error["code"]) == ("file", "recording_too_long")
    assert "1 seconds" in error["message"]


@pytest.mark.parametrize(
    ("file", "code"),
    [
        (("notes.txt", b"these are not the sounds you seek", "text/plain"), "unsupported_format"),
        (("broken.wav", b"RIFF" + bytes(range(256)) * 4, "audio/wav"), "invalid_audio"),
        (("empty.wav", b"", "audio/wav"), "empty_file"),
    ],
    ids=["not-audio", "damaged", "empty"],
)
def test_what_is_not_audio_is_refused(client, alice_key, file, code):
    error = error_of(post(client, alice_key, file=file), 400)

    assert (error["param"], error["code"]) == ("file", code)
    assert transcription_slots.taken == 0


@pytest.mark.parametrize("path", [TRANSCRIPTIONS, TRANSLATIONS])
def test_every_hostile_upload_is_refused_before_whisper(client, alice_key, path):
    # WHISPER_MODEL is the default, which cannot load here: a 503 would mean it was reached.
    for upload in HOSTILE_UPLOADS:
        response = post(
            client, alice_key, path, file=(upload.filename, upload.build(), "audio/wav")
        )

        error = error_of(response, 400)
        assert error["param"] == "file", (upload.name, error)
    assert transcription_slots.taken == 0


# --- Whisper loading, unavailable, and a full server --------------------------------------------


def test_while_whisper_loads_the_answer_is_503_with_retry_after(
    client, alice_key, english_whisper, settings, monkeypatch, speech
):
    # given a load that takes longer than a request waits for it
    may_finish = threading.Event()
    real_load = whisper.load_model

    def slow_load(*args, **kwargs):
        may_finish.wait(timeout=60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(whisper, "load_model", slow_load)
    settings.STT_LOAD_WAIT_SECONDS = 0.1

    try:
        # when a request comes while it loads
        response = post(client, alice_key, file=wav(speech), temperature=ONE_PASS)

        # then it is told to come back
        error = error_of(response, 503)
        assert error["code"] == "transcription_loading"
        assert error["type"] == "server_error"
        assert "loading" in error["message"]
        assert response["Retry-After"] == "5"
    finally:
        may_finish.set()

    # and once loaded, the same request is served
    settings.STT_LOAD_WAIT_SECONDS = 60
    assert post(client, alice_key, file=wav(speech), temperature=ONE_PASS).status_code == 200
    assert transcription_slots.taken == 0


def test_without_whisper_the_answer_is_503_with_the_reason(
    client, alice_key, settings, monkeypatch, tmp_path, speech
):
    settings.WHISPER_MODEL = str(tmp_path / "models" / "missing-whisper.pt")
    transcriber_reset()
    loads = whisper_loads_recorded(monkeypatch)

    response = post(client, alice_key, file=wav(speech))

    error = error_of(response, 503)
    assert error["code"] == "transcription_unavailable"
    assert error["type"] == "server_error"
    assert "WHISPER_MODEL" in error["message"]
    assert str(tmp_path) not in error["message"]
    # Cloning's alternative (a transcript with the upload) means nothing here.
    assert "transcript" not in error["message"]
    assert "Retry-After" not in response

    # and a request soon after is told the same at once, without another load
    again = error_of(post(client, alice_key, file=wav(speech)), 503)
    assert again == error
    assert len(loads) == 1

    # until the failure is old: then the model is tried again
    real_monotonic = transcribe_module.monotonic
    monkeypatch.setattr(
        transcribe_module, "monotonic", lambda: real_monotonic() + FAILED_LOAD_MEMORY_SECONDS + 1
    )
    assert error_of(post(client, alice_key, file=wav(speech)), 503) == error
    assert len(loads) == 2
    assert transcription_slots.taken == 0
    transcriber_reset()


def test_a_full_server_answers_503_server_busy(client, alice_key, settings, speech):
    settings.STT_MAX_INFLIGHT = 1
    assert transcription_slots.try_acquire()
    try:
        response = post(client, alice_key, file=wav(speech))
    finally:
        transcription_slots.release()

    error = error_of(response, 503)
    assert error["code"] == "server_busy"
    assert response["Retry-After"] == str(settings.SPEECH_RETRY_AFTER_SECONDS)
    assert transcription_slots.taken == 0


def test_a_key_at_its_concurrency_limit_answers_429(client, alice, alice_key, settings, speech):
    settings.RATE_LIMIT_CONCURRENT = 1
    held = generation_slots_acquire(user=alice, api_key=ApiKey.objects.get(owner=alice))
    assert held.refused_by is None
    try:
        response = post(client, alice_key, file=wav(speech))
    finally:
        held.release()

    error = error_of(response, 429)
    assert error["code"] == "concurrency_limit_exceeded"
    assert "Retry-After" in response
    assert transcription_slots.taken == 0


def test_slots_go_back_when_the_work_cannot_be_started(
    client, alice, alice_key, settings, monkeypatch, speech
):
    # given a pool that takes no more work (as while the interpreter shuts down)
    class ShutDown:
        def submit(self, *args, **kwargs):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(transcriptions_view, "_executor", ShutDown)
    settings.RATE_LIMIT_CONCURRENT = 1
    client.raise_request_exception = False

    # when a request comes
    response = post(client, alice_key, file=wav(speech))

    # then it fails, and gives back the slots it took
    assert error_of(response, 500)["type"] == "server_error"
    assert transcription_slots.taken == 0
    assert_caller_slots_free(alice, 1)


def assert_caller_slots_free(user, count: int) -> None:
    """All `count` of the caller's concurrent slots can be taken: none was left held."""
    taken = [
        generation_slots_acquire(user=user, api_key=ApiKey.objects.get(owner=user))
        for _ in range(count)
    ]
    try:
        assert [slots.refused_by for slots in taken] == [None] * count
    finally:
        for slots in taken:
            slots.release()


def test_requests_count_against_the_per_minute_limit(client, alice_key, settings, speech):
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 1

    first = post(client, alice_key, file=("notes.txt", b"not audio", "text/plain"))
    second = post(client, alice_key, file=wav(speech))

    assert first.status_code == 400
    assert first["x-ratelimit-remaining-requests"] == "0"
    error = error_of(second, 429)
    assert error["code"] == "rate_limit_exceeded"
    assert second["x-ratelimit-limit-requests"] == "1"


# --- A client that leaves ------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_request_whose_client_left_never_decodes(
    live_server_url, alice, alice_key, english_whisper, settings, monkeypatch, speech
):
    settings.STT_MAX_INFLIGHT = 2
    settings.RATE_LIMIT_CONCURRENT = 2
    settings.RATE_LIMIT_USER_CONCURRENT = 2
    # given a first request whose decode holds the model until the gate opens
    gate = threading.Event()
    decodes: list[str] = []
    real_transcribe = whisper.model.Whisper.transcribe

    def gated(model, *args, **kwargs):
        decodes.append(threading.current_thread().name)
        if len(decodes) == 1:
            assert gate.wait(timeout=60)
        return real_transcribe(model, *args, **kwargs)

    monkeypatch.setattr(whisper.model.Whisper, "transcribe", gated)
    # (each request's work as it starts on a pool thread, and each request Django ends)
    started: list[str] = []
    real_create = transcriptions_view.transcription_create

    def spied(**kwargs):
        started.append(threading.current_thread().name)
        return real_create(**kwargs)

    monkeypatch.setattr(transcriptions_view, "transcription_create", spied)
    finished = threading.Event()

    def on_finished(**kwargs) -> None:
        finished.set()

    request_finished.connect(on_finished)
    url = f"{live_server_url}{TRANSCRIPTIONS}"
    headers = {"Authorization": f"Bearer {alice_key}"}
    fields = {"model": "whisper-1", "temperature": ONE_PASS}
    answers: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: answers.append(
            httpx.post(url, headers=headers, data=fields, files={"file": wav(speech)}, timeout=120)
        )
    )
    first.start()
    wait_for(lambda: len(decodes) == 1, "the first decode")

    # when a second request's work has started (it waits for the model) and its client leaves
    second = httpx.Request("POST", url, headers=headers, data=fields, files={"file": wav(speech)})
    address = urlsplit(live_server_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        head = f"POST {TRANSCRIPTIONS} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in second.headers.items()
        )
        connection.sendall(f"{head}\r\n".encode() + second.read())
        wait_for(lambda: len(started) == 2, "the second request's work")
    try:
        # (Django ends the abandoned request; the first is still decoding)
        assert finished.wait(timeout=30), "the server did not notice the client leave"
    finally:
        request_finished.disconnect(on_finished)
        gate.set()
    first.join(timeout=120)

    # then the first is answered, the second never decodes, and every slot is given back
    assert [answer.status_code for answer in answers] == [200]
    wait_for(lambda: transcription_slots.taken == 0, "the slots to be given back")
    assert len(decodes) == 1
    assert_caller_slots_free(alice, 2)


# --- Usage and schema ---------------------------------------------------------------------------


def test_usage_records_the_seconds_heard(client, alice, alice_key, english_whisper, speech):
    assert post(client, alice_key, file=wav(speech), temperature=ONE_PASS).status_code == 200
    # A refused request is no usage.
    post(client, alice_key, file=("notes.txt", b"not audio", "text/plain"))

    usage = Usage.objects.get(user=alice)
    assert usage.api_key == ApiKey.objects.get(owner=alice)
    assert usage.requests == 1
    assert usage.input_characters == 0
    assert usage.audio_seconds == pytest.approx(seconds_of(speech), abs=1e-3)
    assert transcription_slots.taken == 0


def test_the_openapi_schema_describes_both_routes(client):
    schema = client.get("/v1/openapi.json").json()

    def fields(operation: dict) -> set[str]:
        form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        if "$ref" in form:
            form = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]
        return set(form["properties"])

    transcription = schema["paths"][TRANSCRIPTIONS]["post"]
    translation = schema["paths"][TRANSLATIONS]["post"]
    assert transcription["operationId"] == "createTranscription"
    assert translation["operationId"] == "createTranslation"
    assert fields(transcription) == {
        "file",
        "model",
        "prompt",
        "response_format",
        "temperature",
        "language",
        "timestamp_granularities[]",
    }
    assert fields(translation) == {"file", "model", "prompt", "response_format", "temperature"}
    for operation in (transcription, translation):
        assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/plain"}
        assert {"400", "401", "404", "413", "429", "503"} <= set(operation["responses"])
    assert "/api/v1/audio/transcriptions" not in schema["paths"]
