"""Errors reach callers in OpenAI's shape, never as HTML or tracebacks."""

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

ERROR_KEYS = {"message", "type", "param", "code"}


def test_an_unknown_url_is_a_json_404(live_server_url):
    response = httpx.post(f"{live_server_url}/v1/audio/nothing-here", json={})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()["error"]) == ERROR_KEYS


def test_a_wrong_method_is_a_json_405(api):
    response = api.get("/v1/audio/speech")
    assert response.status_code == 405
    assert set(response.json()["error"]) == ERROR_KEYS


def test_a_non_json_body_is_refused_clearly(api):
    response = api.post(
        "/v1/audio/speech",
        content=b"model=tts-1&input=hello",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert set(response.json()["error"]) == ERROR_KEYS


def test_a_json_array_body_is_refused_clearly(api):
    response = api.post("/v1/audio/speech", json=["tts-1", "hello"])
    assert response.status_code == 400
    assert set(response.json()["error"]) == ERROR_KEYS
