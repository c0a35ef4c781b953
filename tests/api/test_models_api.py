"""GET /v1/models/{id}, the dated snapshots of OpenAI's model names, and model lists that show
only the models whose engine can speak (or is loading)."""

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from django.test import Client

from speech.engines.base import Engine, EngineState
from speech.engines.registry import engine_get, engine_states
from speech.models_catalog import engine_name_for_model, model_base

pytestmark = pytest.mark.django_db

BASES = ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "espeak"]
DATED = {
    "tts-1-1106": "tts-1",
    "tts-1-hd-1106": "tts-1-hd",
    "gpt-4o-mini-tts-2025-03-20": "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-12-15": "gpt-4o-mini-tts",
    # Snapshots newer than any list: the date's shape is enough.
    "gpt-4o-mini-tts-2026-01-31": "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2028-02-29": "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2031-11-05": "gpt-4o-mini-tts",
}
NOT_MODELS = [
    "tts-1-2025",
    "gpt-4o-mini-tts-2025-13-45",
    "gpt-4o-mini-tts-2025-02-29",  # 2025 is no leap year
    "gpt-4o-mini-tts-2025-00-10",
    "gpt-4o-mini-tts-2024-12-31",  # before the first snapshot
    "gpt-4o-mini-tts-25-03-20",
    "gpt-4o-mini-tts-2025-3-20",
    "gpt-4o-mini-tts-2025-03-20x",
    "gpt-4o-mini-tts-\uff12\uff10\uff12\uff15-03-20",  # full-width digits
    "GPT-4O-MINI-TTS",
    "tts-1-hd-1107",
    "tts-1-2025-03-20",
    "csm-1b-2025-03-20",
    "whisper-2",
    "gpt-4o-transcribe-diarize",
    "tts-9",
]
# Speech to text, served by Whisper: listed by /v1/models, never by the speech picker's list.
TRANSCRIPTION_MODELS = [
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-03-20",
    "gpt-4o-mini-transcribe-2025-12-15",
]
# The models the test server offers with eSpeak loaded and CSM not (the tests' default).
ESPEAK_LIST = [
    "tts-1",
    "tts-1-1106",
    "tts-1-hd",
    "tts-1-hd-1106",
    "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-03-20",
    "gpt-4o-mini-tts-2025-12-15",
    "espeak",
]


@pytest.fixture
def espeak_started() -> None:
    """eSpeak NG loaded, as the server loads its default engine when it starts."""
    engine_get("espeak")


def _wait_for(engine: Engine, state: EngineState) -> None:
    deadline = time.monotonic() + 60
    while engine.state is not state and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.state is state, engine.reason


@pytest.fixture
def csm_unavailable() -> Engine:
    """CSM failed to load: its CSM_MODEL directory holds no checkpoint (tests/conftest.py)."""
    engine = engine_get("csm")
    _wait_for(engine, EngineState.UNAVAILABLE)
    return engine


@pytest.fixture
def csm_loading(monkeypatch) -> Iterator[tuple[Engine, threading.Event]]:
    """CSM still loading until the event is set; then its load fails."""
    from speech.engines.csm.engine import CsmEngine

    finish = threading.Event()

    def slow_load(self) -> None:
        finish.wait(60)
        raise RuntimeError("the test ended the load")

    monkeypatch.setattr(CsmEngine, "_load", slow_load)
    engine = engine_get("csm")
    assert engine.state is EngineState.LOADING
    yield engine, finish
    finish.set()


def _listed(client: Client) -> tuple[list[str], list[str]]:
    """The speech model ids /v1/models and /v1/audio/models list (/v1/models ends with the
    speech-to-text models, whichever engines are up)."""
    models = client.get("/v1/models")
    audio_models = client.get("/v1/audio/models")
    assert models.status_code == 200 and audio_models.status_code == 200
    ids = [model["id"] for model in models.json()["data"]]
    assert ids[-len(TRANSCRIPTION_MODELS) :] == TRANSCRIPTION_MODELS
    return (
        ids[: -len(TRANSCRIPTION_MODELS)],
        [model["id"] for model in audio_models.json()["models"]],
    )


def _not_found(client: Client, model: str) -> dict:
    response = client.get(f"/v1/models/{model}")
    assert response.status_code == 404, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    return error


# --- retrieve -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [*BASES, *DATED])
def test_it_retrieves_each_model_name_in_openai_shape(client, espeak_started, model):
    # when an anonymous caller asks for the model (no key: open like the lists)
    response = client.get(f"/v1/models/{model}")
    # then it is OpenAI's model object, under the name asked for
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"id", "object", "created", "owned_by"}
    assert body["id"] == model
    assert body["object"] == "model"
    assert isinstance(body["created"], int) and body["created"] > 0
    assert body["owned_by"] == "csm-server"


def test_it_answers_under_the_original_prefix_too(client, espeak_started):
    response = client.get("/api/v1/models/gpt-4o-mini-tts-2025-12-15")
    assert response.status_code == 200
    assert response.json()["id"] == "gpt-4o-mini-tts-2025-12-15"


@pytest.mark.parametrize("model", NOT_MODELS)
def test_it_is_a_404_for_a_name_that_is_no_model(client, espeak_started, model):
    error = _not_found(client, model)
    assert model in error["message"]
    assert "does not exist" in error["message"]


def test_a_very_long_name_is_not_echoed_whole(client, espeak_started):
    error = _not_found(client, "m" * 2000)
    assert len(error["message"]) < 300


# --- dated names resolve to their bases -----------------------------------------------------


@pytest.mark.parametrize(("dated", "base"), DATED.items())
def test_a_dated_name_means_its_base(dated, base):
    assert model_base(dated) == base
    assert engine_name_for_model(dated) == engine_name_for_model(base) == "espeak"


@pytest.mark.parametrize("model", NOT_MODELS)
def test_a_malformed_dated_name_means_nothing(model):
    assert model_base(model) is None
    assert engine_name_for_model(model) is None


# --- lists show what can speak --------------------------------------------------------------


def test_lists_hide_csm_while_it_cannot_load(client, espeak_started, csm_unavailable):
    models, audio_models = _listed(client)
    assert models == ESPEAK_LIST
    # OpenWebUI's picker gets base names only
    assert audio_models == ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "espeak"]


@pytest.mark.parametrize("model", ["csm-1b", "csm"])
def test_retrieving_csm_while_it_cannot_load_is_a_404_with_the_reason(
    client, espeak_started, csm_unavailable, model
):
    error = _not_found(client, model)
    assert f"The model '{model}' is not available" in error["message"]
    assert "unavailable" in error["message"]
    assert csm_unavailable.reason in error["message"]


def test_a_speech_request_for_csm_while_it_cannot_load_still_says_why(
    client, alice_key, espeak_started, csm_unavailable
):
    response = client.post(
        "/v1/audio/speech",
        {"model": "csm-1b", "voice": "alloy", "input": "Hello."},
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "engine_unavailable"
    assert csm_unavailable.reason in error["message"]


def test_lists_show_csm_while_it_loads_and_drop_it_when_the_load_fails(
    client, espeak_started, csm_loading
):
    engine, finish = csm_loading
    # while loading: listed and retrievable
    models, audio_models = _listed(client)
    assert models[0] == "csm-1b" and "csm" in models
    assert audio_models == ["csm-1b", "tts-1", "tts-1-hd", "gpt-4o-mini-tts", "csm", "espeak"]
    assert client.get("/v1/models/csm-1b").status_code == 200
    # when the load fails
    finish.set()
    _wait_for(engine, EngineState.UNAVAILABLE)
    # then it is gone from both lists
    models, audio_models = _listed(client)
    assert models == ESPEAK_LIST
    assert "csm-1b" not in audio_models and "csm" not in audio_models
    assert engine.reason in _not_found(client, "csm-1b")["message"]


def test_lists_show_csm_once_it_is_ready(client, csm_engine, espeak_started):
    # (csm_engine starts the engines afresh: eSpeak NG is started after it)
    models, audio_models = _listed(client)
    assert models == ["csm-1b", *ESPEAK_LIST[:-1], "csm", "espeak"]
    assert audio_models == ["csm-1b", "tts-1", "tts-1-hd", "gpt-4o-mini-tts", "csm", "espeak"]
    assert client.get("/v1/models/csm").status_code == 200


@pytest.mark.parametrize("model", TRANSCRIPTION_MODELS)
def test_speech_to_text_models_are_retrieved_in_openais_shape(client, model):
    response = client.get(f"/v1/models/{model}")
    assert response.status_code == 200
    assert response.json() == {
        "id": model,
        "object": "model",
        "created": response.json()["created"],
        "owned_by": "csm-server",
    }


def test_lists_and_retrieve_never_start_an_engine(client):
    # given a process where no engine has started
    assert {state["state"] for state in engine_states().values()} == {"not_loaded"}
    # when the lists and a retrieve are asked for
    models, audio_models = _listed(client)
    error = _not_found(client, "csm-1b")
    # then nothing is listed (nothing can speak yet), the retrieve says why, and nothing started
    assert models == [] and audio_models == []
    assert "not loaded" in error["message"]
    assert {state["state"] for state in engine_states().values()} == {"not_loaded"}


def test_under_auto_openai_names_stay_listed_when_csm_cannot_load(
    client, settings, espeak_started, csm_unavailable
):
    # given DEFAULT_ENGINE=auto: OpenAI's names fall back to eSpeak NG
    settings.DEFAULT_ENGINE = "auto"
    models, _ = _listed(client)
    assert models == ESPEAK_LIST
    assert client.get("/v1/models/tts-1").status_code == 200


def test_under_auto_openai_names_stay_listed_while_csm_is_not_built_yet(
    client, settings, espeak_started
):
    # given DEFAULT_ENGINE=auto just after start-up: eSpeak NG speaks, CSM is not built yet
    settings.DEFAULT_ENGINE = "auto"
    models, _ = _listed(client)
    assert models == ESPEAK_LIST
    assert engine_states()["csm"]["state"] == "not_loaded"


def test_under_auto_openai_names_are_listed_while_csm_loads(
    client, settings, espeak_started, csm_loading
):
    settings.DEFAULT_ENGINE = "auto"
    models, _ = _listed(client)
    assert models == ["csm-1b", *ESPEAK_LIST[:-1], "csm", "espeak"]


def test_openai_names_are_hidden_when_their_engine_cannot_load(
    client, settings, espeak_started, csm_unavailable
):
    # given DEFAULT_ENGINE=csm, which cannot load
    settings.DEFAULT_ENGINE = "csm"
    # then only the engine that can speak is listed, and OpenAI's names say why they are not
    models, audio_models = _listed(client)
    assert models == audio_models == ["espeak"]
    for model in ("tts-1", "gpt-4o-mini-tts-2025-12-15"):
        assert csm_unavailable.reason in _not_found(client, model)["message"]


# --- the openai client against the live server ------------------------------------------------

live = pytest.mark.django_db(transaction=True)


@live
def test_the_openai_client_retrieves_models(openai_client):
    model = openai_client.models.retrieve("tts-1")
    assert (model.id, model.object, model.owned_by) == ("tts-1", "model", "csm-server")
    assert openai_client.models.retrieve("gpt-4o-mini-tts-2025-12-15").id == (
        "gpt-4o-mini-tts-2025-12-15"
    )
    assert openai_client.models.retrieve("whisper-1").id == "whisper-1"
    assert [m.id for m in openai_client.models.list()] == ESPEAK_LIST + TRANSCRIPTION_MODELS


@live
@pytest.mark.parametrize("model", ["tts-1-2025", "gpt-4o-mini-tts-2025-13-45", "csm-1b"])
def test_the_openai_client_gets_model_not_found(openai_client, model):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.models.retrieve(model)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


@live
@pytest.mark.parametrize(
    "model",
    ["tts-1-1106", "tts-1-hd-1106", "gpt-4o-mini-tts-2025-03-20", "gpt-4o-mini-tts-2027-06-01"],
)
def test_speech_accepts_dated_names(openai_client, model):
    audio = openai_client.audio.speech.create(
        model=model, voice="alloy", input="Hello.", response_format="wav"
    )
    assert audio.content[:4] == b"RIFF"
    assert len(audio.content) > 1000


@live
def test_speech_refuses_a_malformed_dated_name(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.audio.speech.create(
            model="gpt-4o-mini-tts-2025-02-30", voice="alloy", input="Hello."
        )
    assert caught.value.code == "model_not_found"


@live
def test_retrieve_is_open_to_anonymous_callers_on_the_live_server(live_server_url):
    response = httpx.get(f"{live_server_url}/v1/models/tts-1-hd-1106")
    assert response.status_code == 200
    assert response.json()["id"] == "tts-1-hd-1106"


@live
def test_the_openapi_schema_describes_retrieve(live_server_url):
    schema = httpx.get(f"{live_server_url}/v1/openapi.json").json()
    operation = schema["paths"]["/v1/models/{model_id}"]["get"]
    assert operation["operationId"] == "retrieveModel"
    assert {"200", "404"} <= set(operation["responses"])
