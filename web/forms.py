"""The pages' forms: signing in, API keys, cloning a voice and generating speech.

The cloning and speech forms back the session endpoints the voice cloning page calls; their
fields are the page's own field names, and they check what the API checks for the same values
(web/fields.py), so a mistake reads the same on the page as in an API error.
"""

import datetime
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.login_throttle import sign_in_throttled
from accounts.models import ApiKey
from api.serializers.speech import MAX_INPUT_CHARS, MAX_VOICE_CHARS, MIN_TEMPERATURE
from ingest.jobs import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_TRANSCRIPT_CHARS
from speech.audio.formats import DEFAULT_FORMAT, FORMATS
from voices.standard import DEFAULT_VOICE
from web.fields import (
    ChoiceField,
    NumberField,
    TextField,
    TickedField,
    UploadField,
    VoiceField,
)

MAX_EXPIRY_DAYS = 3650
MAX_URL_CHARS = 2048
MAX_MODEL_CHARS = 128
# What a browser's <audio> element plays (raw pcm has no header to play it by).
PLAYABLE_FORMATS = ("mp3", "wav", "opus", "aac", "flac")


# --- Accounts ----------------------------------------------------------------------------------


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login page's form: refused for a while after repeated failures, on the counter the
    admin's sign-in shares (accounts/login_throttle.py)."""

    def clean(self) -> dict[str, Any]:
        username = self.data.get("username", "") or ""
        return sign_in_throttled(super().clean, request=self.request, username=username)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=ApiKey._meta.get_field("name").max_length,
        required=False,
        help_text="A label to tell your keys apart, e.g. the app or machine that uses it.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        required=False,
        help_text=f"1 to {MAX_EXPIRY_DAYS}. Leave empty for a key that never expires.",
    )

    def expires_at(self, *, now: datetime.datetime) -> datetime.datetime | None:
        """When the key should stop working, counted from `now`; None for never."""
        days = self.cleaned_data.get("expires_in_days")
        return None if days is None else now + datetime.timedelta(days=days)


# --- Cloning -----------------------------------------------------------------------------------


class CloneUploadForm(forms.Form):
    # First: without a recording nothing else matters.
    audio_file = UploadField(missing="Choose an audio file to upload.")
    # A field left out reads as left empty, as the page's own form sends it.
    name = TextField(max_length=MAX_NAME_CHARS, missing_is_empty=True)
    transcript = TextField(max_length=MAX_TRANSCRIPT_CHARS, allow_blank=True, missing_is_empty=True)
    description = TextField(
        max_length=MAX_DESCRIPTION_CHARS, allow_blank=True, missing_is_empty=True
    )
    consent = TickedField()


class CloneYoutubeForm(forms.Form):
    # An emptied field means what leaving it out of an API call means: a required one is
    # missing, an optional one takes its default.
    youtube_url = TextField(max_length=MAX_URL_CHARS, empty_is_missing=True)
    name = TextField(max_length=MAX_NAME_CHARS, empty_is_missing=True)
    start_time = NumberField(number=float, min_value=0.0, max_value=86400.0, default=0.0)
    # At most YOUTUBE_MAX_DURATION_SECONDS: checked when the job starts.
    duration = NumberField(number=float, min_value=1.0, default=180.0)
    description = TextField(
        max_length=MAX_DESCRIPTION_CHARS, required=False, allow_blank=True, empty_is_missing=True
    )
    transcript = TextField(
        max_length=MAX_TRANSCRIPT_CHARS, required=False, allow_blank=True, empty_is_missing=True
    )
    consent = TickedField()


# --- Speech ------------------------------------------------------------------------------------


class SpeechForm(forms.Form):
    model = TextField(max_length=MAX_MODEL_CHARS)
    # As typed: leading spaces or line breaks may matter to how it is read.
    input = TextField(max_length=MAX_INPUT_CHARS, trim=False)
    voice = VoiceField(max_length=MAX_VOICE_CHARS, default=DEFAULT_VOICE)
    response_format = ChoiceField(choices=FORMATS, default=DEFAULT_FORMAT)
    speed = NumberField(number=float, min_value=0.25, max_value=4.0, default=1.0)
    temperature = NumberField(number=float, min_value=MIN_TEMPERATURE, max_value=2.0)
    seed = NumberField(number=int, min_value=0, max_value=2**32 - 1)

    def clean_input(self) -> str:
        text = self.cleaned_data["input"]
        if not text.strip():
            raise forms.ValidationError("The input must not be empty.", code="blank")
        return text

    def clean(self) -> dict[str, Any]:
        # After every field's own checks: a format the API takes, but a browser cannot play.
        fmt = self.cleaned_data.get("response_format")
        if not self.errors and fmt not in PLAYABLE_FORMATS:
            # No code: the page's own message, not a parameter the API would refuse.
            message = f"A browser cannot play '{fmt}'; choose one of {', '.join(PLAYABLE_FORMATS)}."
            self.add_error("response_format", message)
        return self.cleaned_data
