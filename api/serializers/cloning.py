"""Request and response shapes of the cloning API: the original server's, and OpenAI's."""

from typing import Any

from rest_framework import serializers

from api.serializers.speech import MAX_INPUT_CHARS, SynthesisOptionsSerializer
from ingest.jobs import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_TRANSCRIPT_CHARS
from speech.audio.formats import DEFAULT_FORMAT, FORMATS
from voices.selectors import text_is_storable

CONSENT_HELP = (
    "true to attest that you have the right to clone this voice, or the id of a voice consent "
    "recording (POST /v1/audio/voice_consents)."
)


class CloneUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_CHARS)
    audio_file = serializers.FileField(allow_empty_file=True)
    transcript = serializers.CharField(
        max_length=MAX_TRANSCRIPT_CHARS, required=False, allow_blank=True, default=""
    )
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_CHARS, required=False, allow_blank=True, default=""
    )
    consent = serializers.CharField(
        required=False, allow_blank=True, default="", help_text=CONSENT_HELP
    )


class CloneYoutubeSerializer(serializers.Serializer):
    youtube_url = serializers.CharField(max_length=2048)
    voice_name = serializers.CharField(max_length=MAX_NAME_CHARS)
    start_time = serializers.FloatField(
        min_value=0.0, max_value=86400.0, required=False, default=0.0
    )
    # At most YOUTUBE_MAX_DURATION_SECONDS (600 by default): checked when the job starts.
    duration = serializers.FloatField(min_value=1.0, required=False, default=180.0)
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_CHARS, required=False, allow_blank=True, default=""
    )
    transcript = serializers.CharField(
        max_length=MAX_TRANSCRIPT_CHARS, required=False, allow_blank=True, default=""
    )
    consent = serializers.JSONField(required=False, default=None, help_text=CONSENT_HELP)

    def validate_consent(self, value: Any) -> Any:
        # A consent id is looked up in the database, which stores neither NUL nor lone
        # surrogates.
        if isinstance(value, str) and not text_is_storable(value):
            raise serializers.ValidationError("Not a consent id.", "invalid")
        return value


class ClonedVoiceSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    audio_duration = serializers.FloatField()
    sample_count = serializers.IntegerField()
    speaker_id = serializers.IntegerField()


class ClonedVoiceListSerializer(serializers.Serializer):
    voices = ClonedVoiceSerializer(many=True)


class YoutubeVoiceSerializer(serializers.Serializer):
    voice_id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    audio_duration = serializers.FloatField()
    sample_count = serializers.IntegerField()


class JobErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField(allow_null=True)


class JobSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="ingest.job")
    kind = serializers.CharField()
    status = serializers.ChoiceField(choices=["queued", "running", "succeeded", "failed"])
    stage = serializers.CharField()
    progress = serializers.IntegerField(min_value=0, max_value=100)
    error = JobErrorSerializer(allow_null=True)
    voice_id = serializers.CharField(allow_null=True)
    created_at = serializers.IntegerField()


class PreviewSerializer(serializers.Serializer):
    text = serializers.CharField(
        max_length=MAX_INPUT_CHARS,
        required=False,
        default="Hello! This is a preview of my cloned voice.",
    )
    response_format = serializers.ChoiceField(
        choices=list(FORMATS), required=False, default=DEFAULT_FORMAT
    )


class GenerateSerializer(SynthesisOptionsSerializer):
    voice_id = serializers.CharField(max_length=256)
    text = serializers.CharField(max_length=MAX_INPUT_CHARS, trim_whitespace=False)
    model = serializers.CharField(max_length=128, required=False, default="csm-1b")
    response_format = serializers.ChoiceField(
        choices=list(FORMATS), required=False, default=DEFAULT_FORMAT
    )
    speed = serializers.FloatField(min_value=0.25, max_value=4.0, required=False, default=1.0)


class VoiceConsentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_CHARS)
    language = serializers.CharField(max_length=16)
    recording = serializers.FileField(allow_empty_file=True)


class VoiceConsentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_CHARS)


class VoiceConsentSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="audio.voice_consent")
    name = serializers.CharField()
    language = serializers.CharField()
    created_at = serializers.IntegerField()


class VoiceConsentDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="audio.voice_consent")
    deleted = serializers.BooleanField()


class VoiceConsentListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = VoiceConsentSerializer(many=True)
    first_id = serializers.CharField(allow_null=True)
    last_id = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()


class OpenAIVoiceCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_CHARS)
    audio_sample = serializers.FileField(allow_empty_file=True)
    consent = serializers.CharField(max_length=64)
    type = serializers.ChoiceField(choices=["audio_sample"], required=False, default="audio_sample")


class OpenAIVoiceSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="audio.voice")
    name = serializers.CharField()
    type = serializers.CharField(default="audio_sample")
    created_at = serializers.IntegerField()
