"""Request and response shapes of the speech API (OpenAI's, plus the original server's extras)."""

import base64
import binascii
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from speech.audio.formats import DEFAULT_FORMAT, FORMATS
from voices.standard import DEFAULT_VOICE

MAX_INPUT_CHARS = 4096
MAX_VOICE_CHARS = 256
# Below this, sampling is greedy in all but name, and a temperature near zero overflows the
# scaled logits to infinity (and the engine's draw to NaN).
MIN_TEMPERATURE = 0.01


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "maxLength": MAX_VOICE_CHARS},
            {
                "type": "object",
                "properties": {"id": {"type": "string", "maxLength": MAX_VOICE_CHARS}},
                "required": ["id"],
            },
        ]
    }
)
class VoiceField(serializers.Field):
    """A voice name or id, as a string or as `{"id": ...}` (OpenAI accepts both)."""

    default_error_messages = {
        # Braces doubled: DRF formats these messages.
        "invalid": 'Expected a voice name or id, as a string or as {{"id": "..."}}.',
        "blank": "A voice name cannot be empty.",
        "max_length": f"A voice name has at most {MAX_VOICE_CHARS} characters.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A name is looked up in the database, which stores neither NUL nor lone surrogates.
        self.validators += [
            ProhibitNullCharactersValidator(),
            ProhibitSurrogateCharactersValidator(),
        ]

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, dict):
            data = data.get("id")
        if not isinstance(data, str):
            self.fail("invalid")
        data = data.strip()
        if not data:
            self.fail("blank")
        if len(data) > MAX_VOICE_CHARS:
            self.fail("max_length")
        return data

    def to_representation(self, value: str) -> str:
        return value


# The sampling options of every request that speaks, declared once. They come after the
# request's own fields, in the schema and in validation, so that a request's first reported
# problem stays one with its own fields. (No docstring: the schema would show it for every
# request that inherits it.)
class SynthesisOptionsSerializer(serializers.Serializer):
    temperature = serializers.FloatField(min_value=MIN_TEMPERATURE, max_value=2.0, required=False)
    topk = serializers.IntegerField(min_value=1, max_value=100, required=False)
    max_audio_length_ms = serializers.IntegerField(min_value=1, max_value=3_600_000, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=2**32 - 1, required=False)
    voice_consistency = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name in SynthesisOptionsSerializer._declared_fields:
            if name in fields:
                fields[name] = fields.pop(name)
        return fields


class SpeechRequestSerializer(SynthesisOptionsSerializer):
    model = serializers.CharField(max_length=128)
    input = serializers.CharField(max_length=MAX_INPUT_CHARS, trim_whitespace=False)
    voice = VoiceField(required=False, default=DEFAULT_VOICE)
    instructions = serializers.CharField(
        max_length=MAX_INPUT_CHARS,
        required=False,
        allow_blank=True,
        help_text="Accepted for compatibility; engines that cannot follow instructions ignore it.",
    )
    response_format = serializers.ChoiceField(
        choices=list(FORMATS), required=False, default=DEFAULT_FORMAT
    )
    speed = serializers.FloatField(min_value=0.25, max_value=4.0, required=False, default=1.0)
    stream_format = serializers.ChoiceField(
        choices=["audio", "sse"], required=False, default="audio"
    )

    def validate_input(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The input must not be empty.", "blank")
        return value


MAX_SPEAKER_ID = 9999
MAX_CONTEXT_TURNS = 32


class ContextTurnSerializer(serializers.Serializer):
    speaker = serializers.IntegerField(min_value=0, max_value=MAX_SPEAKER_ID)
    text = serializers.CharField(max_length=MAX_INPUT_CHARS, trim_whitespace=False)
    audio = serializers.CharField(
        trim_whitespace=True,
        help_text="The turn's audio, base64 of any supported format (wav, mp3, flac, ogg, m4a).",
    )

    def validate_audio(self, value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise serializers.ValidationError("The audio is not valid base64.", "invalid") from exc


class ConversationRequestSerializer(SynthesisOptionsSerializer):
    """The original server's conversation request: speak `text` after the context turns."""

    model = serializers.CharField(max_length=128, required=False, default="csm-1b")
    text = serializers.CharField(max_length=MAX_INPUT_CHARS, trim_whitespace=False)
    speaker_id = serializers.IntegerField(
        min_value=0, max_value=MAX_SPEAKER_ID, required=False, default=0
    )
    context = ContextTurnSerializer(
        many=True, required=False, default=list, max_length=MAX_CONTEXT_TURNS
    )
    response_format = serializers.ChoiceField(
        choices=list(FORMATS), required=False, default=DEFAULT_FORMAT
    )
    # A conversation's voice is its context: there is no voice to keep consistent.
    voice_consistency = None

    def validate_text(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The text must not be empty.", "blank")
        return value


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = ModelSerializer(many=True)


class AudioModelSerializer(serializers.Serializer):
    id = serializers.CharField()


class AudioModelListSerializer(serializers.Serializer):
    models = AudioModelSerializer(many=True)


class ResponseFormatSerializer(serializers.Serializer):
    id = serializers.CharField()
    content_type = serializers.CharField()


class ResponseFormatListSerializer(serializers.Serializer):
    response_formats = ResponseFormatSerializer(many=True)


SPEECH_RESPONSES: dict[Any, Any] = {
    (200, fmt.content_type): OpenApiTypes.BINARY for fmt in FORMATS.values()
}
