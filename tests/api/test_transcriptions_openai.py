"""Speech to text through the real openai client against a live server on loopback:
`client.audio.transcriptions.create` and `client.audio.translations.create` in every response
format, word and segment timestamps, the content types, and the errors as the SDK raises them.

Whisper is a tiny random checkpoint (64-token text context) loaded through WHISPER_MODEL: the
tests check what the SDK makes of the answers, not the words.
"""

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import openai
import pytest
import whisper.model
from openai import OpenAI
from openai.types.audio import (
    Transcription,
    TranscriptionSegment,
    TranscriptionVerbose,
    TranscriptionWord,
    Translation,
    TranslationVerbose,
)

from ingest import transcription as transcription_module
from ingest.transcribe import transcriber_reset
from ingest.transcription import transcription_slots
from tests.support.audio import RATE, encoded, spoken

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # The SDK marks translations deprecated (whisper-1's shutdown is announced); clients still
    # call it, and so do these tests.
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning"),
]

SENTENCE = "A gentle breeze moved slowly through the tall grass by the river."
# One sampling pass instead of the fallback ladder of temperature 0.
ONE_PASS = 0.5


@pytest.fixture
def whisper_for(settings, short_whisper) -> Iterator[Callable[[str], None]]:
    """Point WHISPER_MODEL at one of the checkpoints ("en" or "multilingual")."""

    def use(kind: str) -> None:
        settings.WHISPER_MODEL = str(short_whisper[kind])
        transcriber_reset()

    use("en")
    yield use
    transcriber_reset()


@pytest.fixture(scope="module")
def speech_file() -> tuple[str, bytes, str]:
    """About four seconds of eSpeak NG speech, as an upload: (name, bytes, type)."""
    return ("speech.wav", encoded(spoken(SENTENCE)), "audio/wav")


@pytest.fixture
def client(openai_client: OpenAI) -> OpenAI:
    # A random model's first decode and word timestamps' first compile take a while.
    return openai_client.with_options(timeout=180)


def seconds_of(upload: tuple[str, bytes, str]) -> float:
    return (len(upload[1]) - 44) / 2 / RATE


def assert_segments(segments: list[TranscriptionSegment], duration: float) -> None:
    assert segments
    for index, segment in enumerate(segments):
        assert isinstance(segment, TranscriptionSegment)
        assert segment.id == index
        assert 0.0 <= segment.start <= segment.end <= duration
        assert segment.text.strip()
        assert segment.tokens
        assert 0.0 <= segment.no_speech_prob <= 1.0


# --- Transcriptions -------------------------------------------------------------------------------


def test_json_is_a_transcription_with_its_usage(client, whisper_for, speech_file):
    transcription = client.audio.transcriptions.create(model="whisper-1", file=speech_file)

    assert isinstance(transcription, Transcription)
    assert transcription.text == transcription.text.strip()
    assert transcription.usage.type == "duration"
    assert transcription.usage.seconds == math.ceil(seconds_of(speech_file))


def test_verbose_json_is_a_verbose_transcription(client, whisper_for, speech_file):
    transcription = client.audio.transcriptions.create(
        model="whisper-1", file=speech_file, response_format="verbose_json", temperature=ONE_PASS
    )

    assert isinstance(transcription, TranscriptionVerbose)
    assert transcription.language == "english"
    assert transcription.duration == pytest.approx(seconds_of(speech_file), abs=1e-3)
    assert_segments(transcription.segments, transcription.duration)
    assert transcription.words is None
    assert transcription.usage.seconds == math.ceil(transcription.duration)


def test_word_and_segment_timestamps(client, whisper_for, speech_file):
    transcription = client.audio.transcriptions.create(
        model="whisper-1",
        file=speech_file,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        temperature=ONE_PASS,
    )

    assert isinstance(transcription, TranscriptionVerbose)
    assert_segments(transcription.segments, transcription.duration)
    assert transcription.words
    for word in transcription.words:
        assert isinstance(word, TranscriptionWord)
        assert word.word and word.word == word.word.strip()
        assert 0.0 <= word.start <= word.end <= transcription.duration
    assert "".join(w.word for w in transcription.words) == "".join(transcription.text.split())


@pytest.mark.parametrize("response_format", ["text", "srt", "vtt"])
def test_text_formats_are_strings(client, whisper_for, speech_file, response_format):
    text = client.audio.transcriptions.create(
        model="whisper-1", file=speech_file, response_format=response_format, temperature=1.0
    )

    assert isinstance(text, str)
    assert text.endswith("\n")
    if response_format == "srt":
        assert text.startswith("1\n00:00:")
        assert " --> " in text
    if response_format == "vtt":
        assert text.startswith("WEBVTT\n\n00:00:")


@pytest.mark.parametrize(
    ("response_format", "content_type"),
    [
        ("json", "application/json"),
        ("verbose_json", "application/json"),
        ("text", "text/plain; charset=utf-8"),
        ("srt", "text/plain; charset=utf-8"),
        ("vtt", "text/plain; charset=utf-8"),
    ],
)
def test_each_format_has_openais_content_type(
    client, whisper_for, speech_file, response_format, content_type
):
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=speech_file, response_format=response_format, temperature=1.0
    )

    assert raw.http_response.status_code == 200
    assert raw.headers["content-type"] == content_type
    assert "x-ratelimit-remaining-requests" in raw.headers


def test_a_language_is_passed_on(client, whisper_for, speech_file):
    whisper_for("multilingual")

    transcription = client.audio.transcriptions.create(
        model="whisper-1",
        file=speech_file,
        language="fr",
        prompt="Un texte en français.",
        response_format="verbose_json",
        temperature=ONE_PASS,
    )

    assert transcription.language == "french"


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_requests_at_once_take_their_turn(client, whisper_for, speech_file, settings, monkeypatch):
    """More requests than one decode: they wait for the model in turn (no two decodes at
    once), within the process's bound, and every slot is given back."""
    settings.STT_MAX_INFLIGHT = 3
    answers: list[object] = []
    # The first decode holds the model until the gate opens; the decodes at once are counted.
    gate = threading.Event()
    count_lock = threading.Lock()
    decodes = {"started": 0, "running": 0, "most_at_once": 0}
    real_transcribe = whisper.model.Whisper.transcribe

    def gated(model, *args, **kwargs):
        with count_lock:
            decodes["started"] += 1
            decodes["running"] += 1
            decodes["most_at_once"] = max(decodes["most_at_once"], decodes["running"])
            first = decodes["started"] == 1
        try:
            if first:
                assert gate.wait(timeout=120)
            return real_transcribe(model, *args, **kwargs)
        finally:
            with count_lock:
                decodes["running"] -= 1

    monkeypatch.setattr(whisper.model.Whisper, "transcribe", gated)
    # (the requests that have asked for the model)
    asked: list[str] = []
    real_in_use = transcription_module.whisper_in_use

    @contextmanager
    def counted_in_use(*, wait: float | None):
        asked.append(threading.current_thread().name)
        with real_in_use(wait=wait) as model:
            yield model

    monkeypatch.setattr(transcription_module, "whisper_in_use", counted_in_use)

    def ask() -> None:
        try:
            answers.append(
                client.audio.transcriptions.create(
                    model="whisper-1", file=speech_file, temperature=1.0
                )
            )
        except Exception as exc:  # reported below
            answers.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        # while the first decodes, the others ask for the model and wait
        wait_for(lambda: decodes["started"] >= 1 and len(asked) == 3, "all three to ask")
        time.sleep(0.3)
        assert decodes["started"] == 1, "a decode began while the first held the model"
        assert transcription_slots.taken == 3
        assert not answers
    finally:
        gate.set()
    for thread in threads:
        thread.join(timeout=300)

    # then each is served in turn
    assert len(answers) == 3
    assert all(isinstance(answer, Transcription) for answer in answers), answers
    assert decodes["started"] == 3
    assert decodes["most_at_once"] == 1
    assert transcription_slots.taken == 0


# --- Translations ---------------------------------------------------------------------------------


def test_translations_in_every_format(client, whisper_for, speech_file):
    whisper_for("multilingual")
    create = client.audio.translations.create

    json = create(model="whisper-1", file=speech_file, temperature=1.0)
    verbose = create(
        model="whisper-1", file=speech_file, response_format="verbose_json", temperature=ONE_PASS
    )
    texts = {
        fmt: create(model="whisper-1", file=speech_file, response_format=fmt, temperature=1.0)
        for fmt in ("text", "srt", "vtt")
    }

    assert isinstance(json, Translation)
    assert json.text == json.text.strip()
    assert isinstance(verbose, TranslationVerbose)
    assert verbose.language == "english"
    assert verbose.duration == pytest.approx(seconds_of(speech_file), abs=1e-3)
    assert_segments(verbose.segments, verbose.duration)
    assert all(isinstance(text, str) and text.endswith("\n") for text in texts.values())
    assert texts["srt"].startswith("1\n00:00:")
    assert texts["vtt"].startswith("WEBVTT\n\n")


def test_an_english_only_model_does_not_translate(client, whisper_for, speech_file):
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.translations.create(model="whisper-1", file=speech_file)

    assert caught.value.code == "model_not_supported"
    assert caught.value.param == "model"


# --- Errors as the SDK raises them ----------------------------------------------------------------


def test_an_unknown_model_is_not_found(client, whisper_for, speech_file):
    with pytest.raises(openai.NotFoundError) as caught:
        client.audio.transcriptions.create(model="gpt-4o-transcribe-diarize", file=speech_file)

    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


def test_what_is_not_audio_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(
            model="whisper-1", file=("notes.txt", b"no sound in here", "text/plain")
        )

    assert caught.value.code == "unsupported_format"
    assert caught.value.param == "file"
    assert transcription_slots.taken == 0


def test_too_long_a_recording_is_a_bad_request(client, settings, speech_file):
    settings.STT_MAX_AUDIO_SECONDS = 2.0

    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.translations.create(model="whisper-1", file=speech_file)

    assert caught.value.code == "recording_too_long"
    assert caught.value.param == "file"


def test_too_large_a_file_is_refused(client, settings, speech_file):
    settings.STT_MAX_BYTES = 4096
    name, data, content_type = speech_file

    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=(name, data * 30, content_type))

    assert caught.value.status_code == 413
    assert caught.value.code == "request_too_large"


def test_an_unknown_key_is_an_authentication_error(live_server_url, speech_file):
    stranger = OpenAI(base_url=f"{live_server_url}/v1", api_key="sk-nobody", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.audio.transcriptions.create(model="whisper-1", file=speech_file)

    assert caught.value.code == "invalid_api_key"


def test_without_whisper_the_sdk_sees_a_503_with_the_reason(
    client, settings, tmp_path, speech_file
):
    settings.WHISPER_MODEL = str(tmp_path / "whisper.pt")
    transcriber_reset()

    with pytest.raises(openai.InternalServerError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=speech_file)

    assert caught.value.status_code == 503
    assert caught.value.code == "transcription_unavailable"
    assert "WHISPER_MODEL" in caught.value.message
    assert str(tmp_path) not in caught.value.message
    transcriber_reset()
