"""A transcription in each of OpenAI's response formats, exactly (ingest/transcription_formats.py),
from a transcription made up here so that every character of the answer is known."""

import pytest

from ingest.transcription import (
    TRANSCRIBE,
    TRANSLATE,
    Segment,
    SpeechText,
    TranscriptionRequest,
    Word,
)
from ingest.transcription_formats import transcription_body


def segment(index: int, start: float, end: float, text: str) -> Segment:
    return Segment(
        id=index,
        seek=0,
        start=start,
        end=end,
        text=text,
        tokens=[50364, 440 + index, 50530],
        temperature=0.0,
        avg_logprob=-0.25,
        compression_ratio=1.2,
        no_speech_prob=0.01,
    )


SEGMENTS = [
    segment(0, 0.0, 3.32, " The beach was a popular spot."),
    segment(1, 3.32, 3725.5, " People were swimming."),
]
WORDS = [Word("The", 0.0, 0.24), Word("beach", 0.24, 0.6)]


def heard(task: str = TRANSCRIBE, *, words: list[Word] | None = None) -> SpeechText:
    return SpeechText(
        task=task,
        language="english",
        duration=3726.25,
        text="The beach was a popular spot. People were swimming.",
        segments=SEGMENTS,
        words=words,
    )


def request(response_format: str, task: str = TRANSCRIBE, **options) -> TranscriptionRequest:
    return TranscriptionRequest(
        task=task, model="whisper-1", response_format=response_format, **options
    )


def test_json_is_the_text_and_the_seconds_counted_whole():
    assert transcription_body(heard(), request("json")) == {
        "text": "The beach was a popular spot. People were swimming.",
        "usage": {"type": "duration", "seconds": 3727},
    }


def test_a_translations_json_is_the_text_alone():
    assert transcription_body(heard(TRANSLATE), request("json", TRANSLATE)) == {
        "text": "The beach was a popular spot. People were swimming."
    }


def test_text_ends_with_a_newline():
    assert (
        transcription_body(heard(), request("text"))
        == "The beach was a popular spot. People were swimming.\n"
    )


def test_srt_numbers_its_cues_from_one_with_comma_milliseconds():
    assert transcription_body(heard(), request("srt")) == (
        "1\n00:00:00,000 --> 00:00:03,320\nThe beach was a popular spot.\n\n"
        "2\n00:00:03,320 --> 01:02:05,500\nPeople were swimming.\n\n"
    )


def test_vtt_has_its_header_and_dot_milliseconds():
    assert transcription_body(heard(), request("vtt")) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:03.320\nThe beach was a popular spot.\n\n"
        "00:00:03.320 --> 01:02:05.500\nPeople were swimming.\n\n"
    )


def test_subtitles_of_silence_have_no_cues():
    silent = SpeechText(
        task=TRANSCRIBE, language="english", duration=2.0, text="", segments=[], words=None
    )

    assert transcription_body(silent, request("srt")) == ""
    assert transcription_body(silent, request("vtt")) == "WEBVTT\n\n"
    assert transcription_body(silent, request("text")) == "\n"


def test_verbose_json_has_openais_fields_and_segments():
    body = transcription_body(heard(), request("verbose_json"))

    assert body == {
        "task": "transcribe",
        "language": "english",
        "duration": 3726.25,
        "text": "The beach was a popular spot. People were swimming.",
        "segments": [
            {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": 3.32,
                "text": " The beach was a popular spot.",
                "tokens": [50364, 440, 50530],
                "temperature": 0.0,
                "avg_logprob": -0.25,
                "compression_ratio": 1.2,
                "no_speech_prob": 0.01,
            },
            {
                "id": 1,
                "seek": 0,
                "start": 3.32,
                "end": 3725.5,
                "text": " People were swimming.",
                "tokens": [50364, 441, 50530],
                "temperature": 0.0,
                "avg_logprob": -0.25,
                "compression_ratio": 1.2,
                "no_speech_prob": 0.01,
            },
        ],
        "usage": {"type": "duration", "seconds": 3727},
    }


@pytest.mark.parametrize(
    ("granularities", "keys"),
    [
        ({"word"}, {"words"}),
        ({"segment"}, {"segments"}),
        ({"word", "segment"}, {"words", "segments"}),
    ],
)
def test_verbose_json_has_the_timestamps_asked_for(granularities, keys):
    options = request("verbose_json", granularities=frozenset(granularities))

    body = transcription_body(heard(words=WORDS if "word" in granularities else None), options)

    assert set(body) == {"task", "language", "duration", "text", "usage"} | keys
    if "word" in granularities:
        assert body["words"] == [
            {"word": "The", "start": 0.0, "end": 0.24},
            {"word": "beach", "start": 0.24, "end": 0.6},
        ]


def test_word_timestamps_are_only_worked_out_for_verbose_transcriptions():
    words = frozenset({"word"})

    assert request("verbose_json", granularities=words).wants_words
    assert not request("json", granularities=words).wants_words
    assert not request("verbose_json", TRANSLATE, granularities=words).wants_words


def test_a_verbose_translation_has_segments_and_no_usage():
    body = transcription_body(heard(TRANSLATE), request("verbose_json", TRANSLATE))

    assert set(body) == {"task", "language", "duration", "text", "segments"}
    assert body["task"] == "translate"
    assert body["language"] == "english"
