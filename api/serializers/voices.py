from rest_framework import serializers


class VoiceSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField(help_text="standard, builtin or cloned")
    public = serializers.BooleanField()
    owned = serializers.BooleanField(help_text="whether the caller owns the voice")


class VoiceDetailSerializer(VoiceSerializer):
    duration_seconds = serializers.FloatField()
    reference_text = serializers.CharField()
    created = serializers.DateTimeField(allow_null=True)


class VoiceListSerializer(serializers.Serializer):
    voices = VoiceSerializer(many=True)


class VoiceDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="audio.voice.deleted")
    deleted = serializers.BooleanField()
