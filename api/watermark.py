"""POST /v1/audio/watermark/detect: is this audio marked with AudioSeal, and by which server?"""

from typing import Any

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from api.error_codes import ErrorCode
from api.errors import invalid_request
from api.parsers import RequestTooLarge
from api.throttling import RateLimitHeadersMixin, RequestsPerMinuteThrottle
from speech.audio.decode import AudioDecodeError, decode_audio
from speech.watermark import watermark_detect

# OpenAI's limit for an audio upload.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
# The watermark runs through the whole of marked audio, so a short stretch tells; a CPU scores
# a few seconds of audio per second, so longer uploads are refused rather than held.
MAX_SECONDS = 120.0
# The detector's rate: decoding straight to it saves a second resampling.
_ANALYSIS_RATE = 16000


class BoundedMultiPartParser(MultiPartParser):
    """Multipart bodies up to MAX_UPLOAD_BYTES (plus form overhead); larger ones are refused
    before they are read."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 64 * 1024:
            raise RequestTooLarge(f"The upload is larger than {MAX_UPLOAD_BYTES} bytes.")
        return super().parse(stream, media_type, parser_context)


class WatermarkDetectRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="The audio: wav, mp3, flac, ogg/opus, m4a/aac or webm; "
        f"at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB and {MAX_SECONDS:g} seconds."
    )


class WatermarkDetectionSerializer(serializers.Serializer):
    detected = serializers.BooleanField()
    probability = serializers.FloatField(help_text="Share of the audio that carries the mark.")
    message = serializers.IntegerField(
        allow_null=True, help_text="The 16-bit message in the mark (null when not detected)."
    )
    sample_rate = serializers.IntegerField(help_text="The rate the audio was analysed at.")
    duration_seconds = serializers.FloatField()


class WatermarkDetectView(RateLimitHeadersMixin, AsyncAPIView):
    throttle_classes = [RequestsPerMinuteThrottle]
    parser_classes = [BoundedMultiPartParser]

    @extend_schema(
        operation_id="detectWatermark",
        request={"multipart/form-data": WatermarkDetectRequestSerializer},
        responses={
            200: WatermarkDetectionSerializer,
            400: OpenApiResponse(description="No file, or not audio in a supported format."),
            503: OpenApiResponse(description="The detector is loading, unavailable or off."),
        },
        summary="Detect the AudioSeal watermark in an audio file",
        description="Upload audio (multipart field `file`); the answer says whether it carries "
        "the AudioSeal watermark this server puts on generated speech, the share of the audio "
        "that carries it, and the 16-bit message in it (which server made it).",
    )
    async def post(self, request: Request) -> Response:
        # Parsing, decoding and scoring are blocking work: off the event loop.
        body = await sync_to_async(_detect, thread_sensitive=False)(request)
        return Response(body)


def _detect(request: Request) -> dict[str, Any]:
    serializer = WatermarkDetectRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    upload = serializer.validated_data["file"]
    if upload.size > MAX_UPLOAD_BYTES:
        raise RequestTooLarge(f"The upload is larger than {MAX_UPLOAD_BYTES} bytes.")
    try:
        samples = decode_audio(upload.read(), sample_rate=_ANALYSIS_RATE, max_seconds=MAX_SECONDS)
    except AudioDecodeError as exc:
        raise invalid_request(str(exc), param="file", code=ErrorCode.INVALID_VALUE) from exc
    # WatermarkUnavailable (loading or off) reaches the caller through the error table.
    detection = watermark_detect(samples, _ANALYSIS_RATE)
    return {
        "detected": detection.detected,
        "probability": detection.probability,
        "message": detection.message,
        "sample_rate": _ANALYSIS_RATE,
        "duration_seconds": samples.size / _ANALYSIS_RATE,
    }
