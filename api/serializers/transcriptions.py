"""Request and response shapes of OpenAI's speech-to-text API: transcriptions and translations."""

from typing import Any

from rest_framework import serializers

from ingest.transcription import GRANULARITIES, OPENAI_MODEL, RESPONSE_FORMATS

# Whisper reads at most the last 223 tokens of a prompt; this bounds what is tokenized.
MAX_PROMPT_CHARS = 4096
# OpenAI's clients send the list as repeated `timestamp_granularities[]` form fields.
GRANULARITIES_FIELD = "timestamp_granularities[]"


class GranularitiesField(serializers.ListField):
    """Repeated form fields named `timestamp_granularities[]` (as the SDKs send them) or
    `timestamp_granularities`."""

    def get_value(self, dictionary: Any) -> Any:
        if hasattr(dictionary, "getlist"):
            values = [
                *dictionary.getlist(self.field_name),
                *dictionary.getlist(self.field_name.removesuffix("[]")),
            ]
            return values or serializers.empty
        return super().get_value(dictionary)


class TranslationRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True,
        help_text="The audio: flac, mp3, mp4/m4a, ogg/opus, wav or webm; at most STT_MAX_BYTES "
        "(25 MiB) and STT_MAX_AUDIO_SECONDS (600 s).",
    )
    model = serializers.CharField(
        max_length=256,
        help_text=f"{OPENAI_MODEL}, or the server's WHISPER_MODEL name (such as base.en).",
    )
    prompt = serializers.CharField(
        max_length=MAX_PROMPT_CHARS,
        required=False,
        allow_blank=True,
        help_text="Text that guides the spelling and style (Whisper's initial prompt).",
    )
    response_format = serializers.ChoiceField(
        choices=RESPONSE_FORMATS, required=False, default="json"
    )
    temperature = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        default=0.0,
        help_text="0: greedy, raised step by step where the text looks wrong (as OpenAI's).",
    )


class TranscriptionRequestSerializer(TranslationRequestSerializer):
    language = serializers.CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        help_text="The language of the audio in ISO-639-1 (en, de, ...); without it, detected.",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # A name no Python attribute can have: declared here rather than in the class body.
        fields[GRANULARITIES_FIELD] = GranularitiesField(
            child=serializers.ChoiceField(choices=GRANULARITIES),
            required=False,
            max_length=len(GRANULARITIES),
            help_text="With response_format=verbose_json: segment (the default) and/or word.",
        )
        return fields


class TranscriptionWordSerializer(serializers.Serializer):
    word = serializers.CharField()
    start = serializers.FloatField()
    end = serializers.FloatField()


class TranscriptionSegmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    seek = serializers.IntegerField()
    start = serializers.FloatField()
    end = serializers.FloatField()
    text = serializers.CharField()
    tokens = serializers.ListField(child=serializers.IntegerField())
    temperature = serializers.FloatField()
    avg_logprob = serializers.FloatField()
    compression_ratio = serializers.FloatField()
    no_speech_prob = serializers.FloatField()


class TranscriptionUsageSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["duration"])
    seconds = serializers.IntegerField(help_text="Seconds of audio heard, counted whole.")


class TranscriptionSerializer(serializers.Serializer):
    """json: text (and usage for a transcription); verbose_json adds the rest."""

    text = serializers.CharField()
    task = serializers.ChoiceField(choices=["transcribe", "translate"], required=False)
    language = serializers.CharField(
        required=False, help_text="The language's name (english); a translation's is english."
    )
    duration = serializers.FloatField(required=False, help_text="Seconds of audio.")
    segments = TranscriptionSegmentSerializer(many=True, required=False)
    words = TranscriptionWordSerializer(many=True, required=False)
    usage = TranscriptionUsageSerializer(required=False)
