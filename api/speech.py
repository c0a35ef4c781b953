"""Speech: OpenAI's POST /v1/audio/speech, the conversation route, and the base of every view
that speaks."""

from typing import Any

from adrf.views import APIView as AsyncAPIView
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from api.parsers import ConversationJSONParser
from api.serializers.speech import (
    SPEECH_RESPONSES,
    ConversationRequestSerializer,
    SpeechRequestSerializer,
)
from api.streaming import generation_admit, speech_response
from api.throttling import (
    RateLimitHeadersMixin,
    RequestsPerMinuteThrottle,
    request_api_key,
)
from speech.services import conversation_plan, speech_plan
from speech.synthesis import SpeechStream


# A view that generates speech: limited per key, answered by streaming the plan. (No
# docstring: the schema would show it as each operation's description.)
class SpeakingView(RateLimitHeadersMixin, AsyncAPIView):
    throttle_classes = [RequestsPerMinuteThrottle]

    async def speak(self, request: Request, data: dict[str, Any], *, sse: bool = False) -> Response:
        plan = await speech_plan(user=request.user, data=data)
        return await speech_response(SpeechStream(plan), sse=sse, request=request)


class SpeechView(SpeakingView):
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
        return await self.speak(request, data, sse=data["stream_format"] == "sse")


class ConversationView(SpeakingView):
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
        # The slots first: decoding the context is the costly part of planning, and a request
        # the server has no room for must cost nothing.
        release = generation_admit(user=request.user, api_key=request_api_key(request))
        try:
            plan = await conversation_plan(data=serializer.validated_data, user=request.user)
        except BaseException:
            release()
            raise
        return await speech_response(
            SpeechStream(plan), sse=False, request=request, admitted=release
        )
