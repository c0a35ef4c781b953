"""OpenAI's voice consents: the recordings in which a speaker agrees to have their voice
cloned. Each caller sees only their own."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.error_codes import ErrorCode
from api.errors import ApiError, invalid_request
from api.idempotency import idempotent
from api.parsers import BoundedJSONParser
from api.serializers import cloning as s
from api.write_limits import WritesThrottled
from ingest.audio import recording_checked
from ingest.jobs import jobs_using_consent
from voices.models import VoiceConsent
from voices.selectors import text_is_storable
from voices.services import consent_create, consent_delete

_PAGE_DEFAULT = 20
_PAGE_MAX = 100


def consent_body(consent: VoiceConsent) -> dict[str, Any]:
    return {
        "id": consent.id,
        "object": "audio.voice_consent",
        "name": consent.name,
        "language": consent.language,
        "created_at": int(consent.created.timestamp()),
    }


class VoiceConsentListView(WritesThrottled, APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="1 to 100 (default 20)"),
            OpenApiParameter("after", str, description="the last id of the previous page"),
        ],
        responses=s.VoiceConsentListSerializer,
        operation_id="listVoiceConsents",
    )
    def get(self, request: Request) -> Response:
        consents = list(VoiceConsent.objects.filter(owner=request.user).order_by("-created"))
        after = request.query_params.get("after")
        if after:
            ids = [c.id for c in consents]
            consents = consents[ids.index(after) + 1 :] if after in ids else []
        limit = _limit(request.query_params.get("limit"))
        page, has_more = consents[:limit], len(consents) > limit
        return Response(
            {
                "object": "list",
                "data": [consent_body(c) for c in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": has_more,
            }
        )

    @extend_schema(
        request={"multipart/form-data": s.VoiceConsentCreateSerializer},
        responses=s.VoiceConsentSerializer,
        operation_id="createVoiceConsent",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = s.VoiceConsentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        consent = consent_create(
            owner=request.user,
            name=data["name"],
            language=data["language"],
            recording=recording_checked(data["recording"], param="recording"),
        )
        return Response(consent_body(consent))


def _limit(raw: str | None) -> int:
    try:
        return min(max(int(raw), 1), _PAGE_MAX) if raw else _PAGE_DEFAULT
    except ValueError as exc:
        raise invalid_request("limit must be an integer.", param="limit") from exc


class VoiceConsentDetailView(WritesThrottled, APIView):
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]

    def _consent(self, request: Request, consent_id: str) -> VoiceConsent:
        consent = None
        if text_is_storable(consent_id):
            consent = VoiceConsent.objects.filter(owner=request.user, id=consent_id).first()
        if consent is None:
            raise ApiError(
                404,
                f"No voice consent '{consent_id}'.",
                param="consent_id",
                code=ErrorCode.NOT_FOUND,
            )
        return consent

    @extend_schema(responses=s.VoiceConsentSerializer, operation_id="retrieveVoiceConsent")
    def get(self, request: Request, consent_id: str) -> Response:
        return Response(consent_body(self._consent(request, consent_id)))

    @extend_schema(
        request=s.VoiceConsentUpdateSerializer,
        responses=s.VoiceConsentSerializer,
        operation_id="updateVoiceConsent",
    )
    def post(self, request: Request, consent_id: str) -> Response:
        consent = self._consent(request, consent_id)
        serializer = s.VoiceConsentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        consent.name = serializer.validated_data["name"].strip()
        consent.save(update_fields=["name"])
        return Response(consent_body(consent))

    @extend_schema(
        responses={200: s.VoiceConsentDeletedSerializer}, operation_id="deleteVoiceConsent"
    )
    def delete(self, request: Request, consent_id: str) -> Response:
        consent = self._consent(request, consent_id)
        # A consent that voices were, or are being, made with stays: 409 naming them.
        consent_delete(consent=consent, jobs=jobs_using_consent(consent))
        return Response({"id": consent_id, "object": "audio.voice_consent", "deleted": True})
