"""What this server offers: its models and its audio formats. Open to anonymous callers.

A model is listed (and retrieved) only while its engine can speak or is loading; asked for by
name in a speech request, an unlisted model still answers with the reason it cannot speak.
"""

import time
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.serializers.speech import (
    AudioModelListSerializer,
    ModelListSerializer,
    ModelSerializer,
    ResponseFormatListSerializer,
)
from ingest.transcription import OPENAI_MODEL, OPENAI_MODEL_ALIASES
from speech.audio.formats import FORMATS
from speech.models_catalog import model_check_offered, models_offered

# Models have no creation date of their own; report when this process started serving them.
_SERVED_SINCE = int(time.time())
# Speech to text: OpenAI's names, all served by the process's Whisper (loaded on first use, so
# listed whenever the server runs; a request that finds it unavailable gets 503 with the reason).
_TRANSCRIPTION_MODELS = (OPENAI_MODEL, *OPENAI_MODEL_ALIASES)


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _SERVED_SINCE, "owned_by": "csm-server"}


class ModelListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=ModelListSerializer, operation_id="listModels")
    def get(self, request: Request) -> Response:
        # OpenAI's list names dated snapshots beside their base models; so does this one.
        names = [*models_offered(dated=True), *_TRANSCRIPTION_MODELS]
        return Response({"object": "list", "data": [_model(name) for name in names]})


class ModelDetailView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=ModelSerializer, operation_id="retrieveModel")
    def get(self, request: Request, model_id: str) -> Response:
        if model_id not in _TRANSCRIPTION_MODELS:
            model_check_offered(model_id)
        # The id as asked: a dated snapshot answers under its own name, as OpenAI's does.
        return Response(_model(model_id))


class AudioModelListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=AudioModelListSerializer, operation_id="listAudioModels")
    def get(self, request: Request) -> Response:
        # A picker's list (OpenWebUI's): base names only, the dated snapshots would be clutter,
        # and speech models only (a text-to-speech picker has no use for Whisper).
        return Response({"models": [{"id": name} for name in models_offered(dated=False)]})


class ResponseFormatListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=ResponseFormatListSerializer, operation_id="listResponseFormats")
    def get(self, request: Request) -> Response:
        formats = [{"id": fmt.name, "content_type": fmt.content_type} for fmt in FORMATS.values()]
        return Response({"response_formats": formats})
