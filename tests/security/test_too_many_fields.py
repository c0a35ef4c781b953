"""More query parameters, form fields or files than Django reads (DATA_UPLOAD_MAX_NUMBER_FIELDS,
DATA_UPLOAD_MAX_NUMBER_FILES) are the client's mistake: a 400 in OpenAI's shape naming it, on
every route that reads them, never a 500."""

import json

import httpx
import pytest
from django.core.exceptions import TooManyFieldsSent, TooManyFilesSent
from django.test import RequestFactory

from api.errors import handler400

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = 1200  # more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1000)
FILES = 150  # more than DATA_UPLOAD_MAX_NUMBER_FILES (100)
MANY = "&".join(f"f{index}=1" for index in range(FIELDS))
# Each spelling alone is over the limit: many names, one name repeated, empty values.
QUERY_STRINGS = [MANY, "&".join(["limit=1"] * FIELDS), "&" * FIELDS + "a=1&" * FIELDS]

# Routes that read their form bodies (multipart or urlencoded).
FORM_ROUTES = [
    "/v1/voice-cloning/clone",
    "/api/v1/voice-cloning/clone",
    "/v1/audio/voice_consents",
    "/v1/audio/voices",
    "/v1/audio/watermark/detect",
]
# Routes that read their query strings.
QUERY_ROUTES = ["/v1/audio/voice_consents", "/api/v1/audio/voice_consents", "/v1/openapi.json"]


@pytest.fixture
def client(api, settings, media_root) -> httpx.Client:
    settings.RATE_LIMIT_REQUESTS_PER_MINUTE = 0
    return api


def _assert_too_many(response: httpx.Response, what: str) -> None:
    assert response.status_code == 400, (response.request.url, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", "too_many_fields")
    assert what in error["message"]


def test_too_many_query_parameters_are_a_400(client):
    for path in QUERY_ROUTES:
        for query in QUERY_STRINGS:
            _assert_too_many(client.get(f"{path}?{query}"), "query parameters")


def test_too_many_urlencoded_fields_are_a_400(client):
    for path in FORM_ROUTES:
        for body in QUERY_STRINGS:
            response = client.post(
                path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
            )

            if response.status_code == 415:  # a route that reads only multipart bodies
                continue
            _assert_too_many(response, "form fields")


def test_too_many_multipart_fields_are_a_400(client):
    for path in FORM_ROUTES:
        fields = {f"f{index}": "1" for index in range(FIELDS)}
        response = client.post(path, data=fields, files={"file": ("a.wav", b"RIFF")})

        _assert_too_many(response, "form fields")


def test_too_many_files_are_a_400(client):
    for path in FORM_ROUTES:
        for name in ("file", "f{index}"):
            files = [(name.format(index=index), ("a.wav", b"RIFF")) for index in range(FILES)]

            _assert_too_many(client.post(path, files=files), "files")


def test_djangos_own_refusal_outside_drf_answers_in_openais_shape_on_the_api():
    factory = RequestFactory()
    for exception, what in [(TooManyFieldsSent(), "form fields"), (TooManyFilesSent(), "files")]:
        api = handler400(factory.get("/v1/anything"), exception)
        page = handler400(factory.get("/voice-cloning"), exception)

        assert api.status_code == page.status_code == 400
        assert api["Content-Type"] == "application/json"
        error = json.loads(api.content)["error"]
        assert what in error["message"]
        assert error["code"] == "too_many_fields"
        assert page["Content-Type"].startswith("text/html")
