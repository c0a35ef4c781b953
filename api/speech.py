"""The OpenAI audio API: thin views over the speech services."""

import time

from adrf.views import APIView as AsyncAPIView
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.parsers import ConversationJSONParser
from api.serializers.speech import (
    SPEECH_RESPONSES,
    AudioModelListSerializer,
    ConversationRequestSerializer,
    ModelListSerializer,
    ResponseFormatListSerializer,
    SpeechRequestSerializer,
)
from api.streaming import speech_response
from api.throttling import RateLimitHeadersMixin, RequestsPerMinuteThrottle
from speech.audio.formats import FORMATS
from speech.models_catalog import model_ids
from speech.services import conversation_plan, speech_plan
from speech.synthesis import SpeechStream

# Models have no creation date of their own; report when this process started serving them.
_SERVED_SINCE = int(time.time())


class SpeechView(RateLimitHeadersMixin, AsyncAPIView):
    throttle_classes = [RequestsPerMinuteThrottle]

    @extend_schema(
        operation_id="createSpeech",
        request=SpeechRequestSerializer,
        responses={
            **SPEECH_RESPONSES,
            (200, "text/event-stream"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="With stream_format=sse: speech.audio.delta events, then "
                "speech.audio.done with usage.",
            ),
        },
        summary="Generate audio from the input text",
    )
    async def post(self, request: Request) -> Response:
        serializer = SpeechRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        plan = await speech_plan(user=request.user, data=data)
        sse = data["stream_format"] == "sse"
        return await speech_response(SpeechStream(plan), sse=sse, request=request)


class ConversationView(RateLimitHeadersMixin, AsyncAPIView):
    throttle_classes = [RequestsPerMinuteThrottle]
    parser_classes = [ConversationJSONParser]

    @extend_schema(
        operation_id="createConversationSpeech",
        request=ConversationRequestSerializer,
        responses=SPEECH_RESPONSES,
        summary="Speak the next turn of a conversation, conditioned on the earlier turns",
    )
    async def post(self, request: Request) -> Response:
        serializer = ConversationRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        plan = await conversation_plan(data=serializer.validated_data, user=request.user)
        return await speech_response(SpeechStream(plan), sse=False, request=request)


class ModelListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=ModelListSerializer, operation_id="listModels")
    def get(self, request: Request) -> Response:
        models = [
            {"id": name, "object": "model", "created": _SERVED_SINCE, "owned_by": "csm-server"}
            for name in model_ids()
        ]
        return Response({"object": "list", "data": models})


class AudioModelListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=AudioModelListSerializer, operation_id="listAudioModels")
    def get(self, request: Request) -> Response:
        return Response({"models": [{"id": name} for name in model_ids()]})


class ResponseFormatListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=ResponseFormatListSerializer, operation_id="listResponseFormats")
    def get(self, request: Request) -> Response:
        formats = [{"id": fmt.name, "content_type": fmt.content_type} for fmt in FORMATS.values()]
        return Response({"response_formats": formats})
