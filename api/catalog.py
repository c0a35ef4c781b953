"""What this server offers: its models and its audio formats. Open to anonymous callers."""

import time

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.serializers.speech import (
    AudioModelListSerializer,
    ModelListSerializer,
    ResponseFormatListSerializer,
)
from speech.audio.formats import FORMATS
from speech.models_catalog import model_ids

# Models have no creation date of their own; report when this process started serving them.
_SERVED_SINCE = int(time.time())


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
