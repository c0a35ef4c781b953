"""The voice cloning page's forms say what is wrong in the API's words: the same mistake in a
form and in an API request gives the same message and code, named by the page's field."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import QueryDict

from api.errors import validation_error
from api.serializers.cloning import CloneUploadSerializer
from api.serializers.speech import SpeechRequestSerializer
from web.errors import form_error
from web.forms import CloneUploadForm, CloneYoutubeForm, SpeechForm

SPEECH_MISTAKES = {
    "model": [None, "", "  ", "x" * 129, "a\x00b"],
    "input": [None, "", "   ", "y" * 4097, "a\x00"],
    "voice": ["", " ", "v" * 257, "a\x00"],
    "response_format": ["", "MP3", "wav "],
    "speed": ["9", "0.1", "abc", "nan", "inf", "1" * 1001],
    "temperature": ["0", "3", "x"],
    "seed": ["-1", "4294967296", "1.5", "abc"],
}
GOOD_SPEECH = {"model": "tts-1", "input": "Hello.", "voice": "alloy"}


def _posted(fields: dict) -> QueryDict:
    data = QueryDict(mutable=True)
    for name, value in fields.items():
        if value is not None:
            data[name] = value
    return data


def _api_error(serializer) -> dict:
    assert not serializer.is_valid()
    return validation_error(serializer.errors).body()


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field, values in SPEECH_MISTAKES.items() for value in values],
)
def test_a_speech_mistake_reads_as_the_apis(field, value):
    # given a generation with one mistake
    fields = {**GOOD_SPEECH, field: value}

    # when the page's form and the API's request check it
    form = SpeechForm(_posted(fields))
    sent = {name: value for name, value in fields.items() if value is not None}

    # then both say the same
    assert not form.is_valid()
    assert form_error(form).body() == _api_error(SpeechRequestSerializer(data=sent))


def test_speech_options_left_empty_take_their_defaults():
    form = SpeechForm(_posted({**GOOD_SPEECH, "speed": " ", "temperature": "", "seed": "7.0"}))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["speed"] == 1.0
    assert form.cleaned_data["temperature"] is None
    assert form.cleaned_data["seed"] == 7


def test_a_format_no_browser_plays_is_the_pages_own_refusal():
    form = SpeechForm(_posted({**GOOD_SPEECH, "response_format": "pcm"}))

    assert not form.is_valid()
    assert form_error(form).body()["error"] == {
        "message": "A browser cannot play 'pcm'; choose one of mp3, wav, opus, aac, flac.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"name": "  "},
        {"name": "n" * 65},
        {"name": "a\x00"},
        {"transcript": "t" * 4001},
        {"description": "d" * 1001},
    ],
)
def test_an_upload_mistake_reads_as_the_apis(fields):
    form_fields = {"name": "narrator", "transcript": "", "description": "", **fields}
    recording = SimpleUploadedFile("sample.wav", b"RIFF")

    form = CloneUploadForm(_posted(form_fields), {"audio_file": recording})
    api = CloneUploadSerializer(data={**form_fields, "audio_file": recording})

    assert not form.is_valid()
    assert form_error(form).body() == _api_error(api)


def test_an_emptied_youtube_field_counts_as_left_out():
    required = CloneYoutubeForm(_posted({"youtube_url": "https://www.youtube.com/watch?v=x"}))
    defaults = CloneYoutubeForm(
        _posted(
            {
                "youtube_url": "https://www.youtube.com/watch?v=x",
                "name": "narrator",
                "start_time": "",
                "duration": "",
            }
        )
    )

    assert not required.is_valid()
    assert form_error(required).body()["error"] == {
        "message": "Invalid value for 'name': This field is required.",
        "type": "invalid_request_error",
        "param": "name",
        "code": "missing_required_parameter",
    }
    assert defaults.is_valid(), defaults.errors
    assert (defaults.cleaned_data["start_time"], defaults.cleaned_data["duration"]) == (0.0, 180.0)
    assert defaults.cleaned_data["consent"] is False
