"""What real clients send, replayed byte for byte against the live server.

Each request below is written out as the client puts it on the wire: its request line, its
headers in its order and spelling (User-Agent, Accept, ...), and its body as its JSON encoder
writes it (Python's `json.dumps` puts spaces after separators, JavaScript's `JSON.stringify`
does not). The bytes go over a plain socket, because some of them cannot be sent by a
well-behaved HTTP library: `Authorization: Bearer ` with nothing after it (SillyTavern and
LibreChat without a key) is refused by h11, which httpx uses. Only the response is parsed (by
h11).

Sources, as read in the clients' code:
- OpenWebUI, backend/open_webui/routers/audio.py: the model and voice lists are fetched with
  `requests.get(f"{base}/audio/models")` and `.../audio/voices`, without a key, and read as
  `data.get("models")` (a list of `{"id"}`) and `{v["id"]: v["name"] for v in data["voices"]}`.
  Speech: aiohttp `session.post(f"{base}/audio/speech", json=payload)` where the payload is the
  browser's `{input, voice}`, then `model` set from the admin settings, then the "additional
  parameters" (`TTS_OPENAI_PARAMS`) merged in; no `response_format`. The answer is cached as
  an `.mp3` file and served as such.
- Home Assistant's OpenAI TTS custom integration (sfortis/openai_tts): voice discovery with
  `GET .../audio/voices` and the key; a key check posting `{"model": "tts-1", "input": ".",
  "voice": "alloy", "response_format": "mp3"}` that must answer 2xx; speech through urllib with
  `User-Agent: HomeAssistant-OpenAI-TTS`, `response_format: "mp3"`, `speed` and `instructions`;
  streaming through aiohttp with `response_format: "opus"`.
- SillyTavern, the "OpenAI Compatible" TTS provider (public/scripts/extensions/tts/
  openai-compatible.js), sent by its server (src/endpoints/openai.js, `custom/generate-voice`)
  with node-fetch: `Authorization: Bearer ${key ?? ''}` and
  `JSON.stringify({input, response_format, voice, speed, model})`.
- LibreChat, api/server/services/Files/Audio/TTSService.js, the `openai` provider: axios posts
  `{input, model, voice, backend}` with undefined fields removed (no `voice` when no voices are
  configured) and `Authorization: Bearer ${apiKey}`, even when the key is empty.
"""

import io
import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import av
import h11
import pytest

from speech.audio.decode import decode_audio, sniff_container
from speech.audio.formats import SAMPLE_RATE
from speech.engines.base import SynthesisParams, VoiceSpec
from speech.engines.espeak import EspeakEngine

pytestmark = pytest.mark.django_db(transaction=True)

# Request heads as each client writes them, with {host}, {length} and {key} filled in per
# request. Header order follows the client's HTTP stack: requests and aiohttp put Host first;
# urllib puts Accept-Encoding first and Host after Content-Length; Node puts Host last.
OPENWEBUI_LIST = (
    "GET {path} HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "User-Agent: python-requests/2.32.3\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Accept: */*\r\n"
    "Connection: keep-alive\r\n"
)
OPENWEBUI_SPEECH = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Content-Type: application/json\r\n"
    "Authorization: Bearer {key}\r\n"
    # ENABLE_FORWARD_USER_INFO_HEADERS=true adds these
    "X-OpenWebUI-User-Name: Alice\r\n"
    "X-OpenWebUI-User-Id: 0b6f4a52-5f8e-4c55-9d0a-1f3c1e2d7a11\r\n"
    "X-OpenWebUI-User-Email: alice@example.com\r\n"
    "X-OpenWebUI-User-Role: admin\r\n"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "User-Agent: Python/3.11 aiohttp/3.11.18\r\n"
    "Content-Length: {length}\r\n"
)
# Home Assistant's shared aiohttp session (voice discovery, the key check, streaming).
HOME_ASSISTANT_SESSION = (
    "{method} {path} HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Authorization: Bearer {key}\r\n"
    "{content_type}"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "User-Agent: HomeAssistant/2025.1.4 aiohttp/3.11.11 Python/3.13\r\n"
    "{content_length}"
)
# Its streaming speech: a session of its own, with its own User-Agent.
HOME_ASSISTANT_STREAM = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Content-Type: application/json\r\n"
    "User-Agent: HomeAssistant-OpenAI-TTS\r\n"
    "Authorization: Bearer {key}\r\n"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Content-Length: {length}\r\n"
)
HOME_ASSISTANT_URLLIB = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Accept-Encoding: identity\r\n"
    "Content-Length: {length}\r\n"
    "Host: {host}\r\n"
    "Content-Type: application/json\r\n"
    "User-Agent: HomeAssistant-OpenAI-TTS\r\n"
    "Authorization: Bearer {key}\r\n"
    "Connection: close\r\n"
)
SILLYTAVERN = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Content-Type: application/json\r\n"
    "Authorization: Bearer {key}\r\n"
    "Accept: */*\r\n"
    "Content-Length: {length}\r\n"
    "User-Agent: node-fetch/1.0 (+https://github.com/bitinn/node-fetch)\r\n"
    "Accept-Encoding: gzip,deflate\r\n"
    "Connection: close\r\n"
    "Host: {host}\r\n"
)
LIBRECHAT = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Accept: application/json, text/plain, */*\r\n"
    "Content-Type: application/json\r\n"
    "Authorization: Bearer {key}\r\n"
    "User-Agent: axios/1.8.4\r\n"
    "Content-Length: {length}\r\n"
    "Accept-Encoding: gzip, compress, deflate, br\r\n"
    "Host: {host}\r\n"
    "Connection: keep-alive\r\n"
)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def replay(base_url: str, head: str, body: bytes = b"", **fields: str) -> Reply:
    """Send `head` (filled in) and `body` exactly as written, and read the answer."""
    url = urlsplit(base_url)
    head = head.format(host=url.netloc, length=len(body), **fields)
    raw = f"{head}\r\n".encode() + body
    method = head.split(" ", 1)[0]

    parser = h11.Connection(h11.CLIENT)
    # h11 is told that a request went out, so that it reads the answer to it; the bytes that
    # really go out are `raw`.
    parser.send(h11.Request(method=method, target="/", headers=[("Host", url.netloc)]))
    parser.send(h11.EndOfMessage())
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(raw)
        status, response_headers, chunks = 0, {}, []
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                parser.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    return Reply(status, response_headers, b"".join(chunks))


def home_assistant(base_url: str, method: str, path: str, key: str, body: bytes = b"") -> Reply:
    post = method == "POST"
    return replay(
        base_url,
        HOME_ASSISTANT_SESSION,
        body,
        method=method,
        path=path,
        key=key,
        content_type="Content-Type: application/json\r\n" if post else "",
        content_length=f"Content-Length: {len(body)}\r\n" if post else "",
    )


def python_json(payload: dict) -> bytes:
    """As Python's json.dumps writes it (requests, aiohttp, urllib callers)."""
    return json.dumps(payload).encode()


def javascript_json(payload: dict) -> bytes:
    """As JavaScript's JSON.stringify writes it (node-fetch, axios callers)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def assert_audio(reply: Reply, container: str, content_type: str):
    """A 200 with audio of the given container that decodes; the decoded samples."""
    assert reply.status == 200, reply.body[:500]
    assert reply.headers["content-type"] == content_type
    assert sniff_container(reply.body[:16]) == container
    with av.open(io.BytesIO(reply.body)) as decoded:
        assert decoded.streams.audio[0].sample_rate in {SAMPLE_RATE, 48000}
    samples = decode_audio(reply.body, sample_rate=SAMPLE_RATE, max_seconds=60)
    assert samples.size > 0
    return samples


def assert_streamed_for_proxies(reply: Reply) -> None:
    """Streamed as it is made, and marked so that nginx and its kin pass it on unbuffered."""
    assert reply.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in reply.headers
    assert reply.headers["x-accel-buffering"] == "no"
    assert reply.headers["cache-control"] == "no-store"


def error_code(reply: Reply) -> str:
    body = reply.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]["code"]


@pytest.fixture
def spoken(monkeypatch) -> list[tuple[tuple[str, ...], VoiceSpec, SynthesisParams]]:
    """What eSpeak is asked to say, request by request: text chunks, voice and parameters.

    (eSpeak's own output varies a little from call to call, so requests are compared by what
    the engine was asked, not by the audio.)"""
    calls = []
    synthesize = EspeakEngine.synthesize

    def recorded(self, chunks, voice, params):
        calls.append((tuple(chunks), voice, params))
        return synthesize(self, calls[-1][0], voice, params)

    monkeypatch.setattr(EspeakEngine, "synthesize", recorded)
    return calls


@pytest.fixture
def open_mode(settings, default_user):
    """AUTH_MODE=open: a trusted localhost where requests without a key act as the admin."""
    settings.AUTH_MODE = "open"
    return default_user


# --- OpenWebUI ------------------------------------------------------------------------------


def test_openwebui_reads_the_model_and_voice_lists_without_a_key(live_server_url):
    # when OpenWebUI's admin page fetches the lists (requests.get, no Authorization header)
    models = replay(live_server_url, OPENWEBUI_LIST, path="/v1/audio/models")
    voices = replay(live_server_url, OPENWEBUI_LIST, path="/v1/audio/voices")

    # then both answer, in the shapes it reads
    assert models.status == 200, models.body
    assert models.headers["content-type"] == "application/json"
    model_ids = [model["id"] for model in models.json().get("models", [])]
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "csm-1b"} <= set(model_ids)
    assert all(isinstance(model_id, str) for model_id in model_ids)

    assert voices.status == 200, voices.body
    by_id = {voice["id"]: voice["name"] for voice in voices.json().get("voices", [])}
    assert {"alloy", "echo", "fable", "onyx", "nova", "shimmer"} <= set(by_id)
    assert all(isinstance(name, str) and name for name in by_id.values())


def test_openwebui_speech_with_its_extra_parameters_is_mp3(live_server_url, alice_key):
    # given the browser's {input, voice}, the admin's model, and the "additional parameters"
    # {"speed": 1.25, "temperature": 0.8, "seed": 42} merged in by OpenWebUI's backend
    body = python_json(
        {
            "input": "Hello from Open WebUI.",
            "voice": "alloy",
            "model": "tts-1",
            "speed": 1.25,
            "temperature": 0.8,
            "seed": 42,
        }
    )

    # when it is sent, without a response_format
    reply = replay(live_server_url, OPENWEBUI_SPEECH, body, key=alice_key)

    # then it is MP3, which OpenWebUI stores and serves as an .mp3 file
    assert_audio(reply, "mp3", "audio/mpeg")
    assert_streamed_for_proxies(reply)


# --- Home Assistant -------------------------------------------------------------------------

HOME_ASSISTANT_KEY_CHECK = python_json(
    {"model": "tts-1", "input": ".", "voice": "alloy", "response_format": "mp3"}
)


def test_home_assistant_discovers_the_voices_with_its_key(live_server_url, alice_key):
    reply = home_assistant(live_server_url, "GET", "/v1/audio/voices", alice_key)

    assert reply.status == 200, reply.body
    payload = reply.json()
    # It takes "voices" from an object, and "id" and "name" from each entry.
    assert isinstance(payload, dict)
    assert isinstance(payload["voices"], list)
    discovered = {entry["id"]: entry["name"] for entry in payload["voices"]}
    assert discovered["alloy"]


def test_home_assistant_key_check_with_a_full_stop_is_accepted(live_server_url, alice_key):
    # when the integration checks the key with the smallest request it can make
    reply = home_assistant(
        live_server_url, "POST", "/v1/audio/speech", alice_key, HOME_ASSISTANT_KEY_CHECK
    )

    # then the answer is a 2xx, the only answer it takes as "key accepted"
    assert 200 <= reply.status < 300, reply.body
    assert reply.headers["content-type"] == "audio/mpeg"


def test_home_assistant_key_check_with_a_wrong_key_is_a_401(live_server_url):
    reply = home_assistant(
        live_server_url, "POST", "/v1/audio/speech", "sk-csm-wrong", HOME_ASSISTANT_KEY_CHECK
    )

    # 401 (or 403) is the only answer it takes as "wrong key"
    assert reply.status == 401
    assert error_code(reply) == "invalid_api_key"


def test_home_assistant_speech_through_urllib(live_server_url, alice_key):
    body = python_json(
        {
            "model": "tts-1",
            "input": "The front door is open.",
            "voice": "nova",
            "response_format": "mp3",
            "speed": 1.0,
            "instructions": "Speak calmly.",
        }
    )

    reply = replay(live_server_url, HOME_ASSISTANT_URLLIB, body, key=alice_key)

    assert_audio(reply, "mp3", "audio/mpeg")


def test_home_assistant_streams_opus(live_server_url, alice_key):
    body = python_json(
        {
            "model": "tts-1",
            "input": "Good morning. It is seven o'clock.",
            "voice": "alloy",
            "response_format": "opus",
            "speed": 1.0,
        }
    )

    reply = replay(live_server_url, HOME_ASSISTANT_STREAM, body, key=alice_key)

    assert_audio(reply, "ogg", "audio/opus")
    assert_streamed_for_proxies(reply)


# --- SillyTavern ----------------------------------------------------------------------------

SILLYTAVERN_BODY = javascript_json(
    # The speed slider's 1 is an integer in JSON.
    {
        "input": "*waves* Hello, traveller!",
        "response_format": "mp3",
        "voice": "fable",
        "speed": 1,
        "model": "tts-1",
    }
)


def test_sillytavern_speech_with_a_key(live_server_url, alice_key):
    reply = replay(live_server_url, SILLYTAVERN, SILLYTAVERN_BODY, key=alice_key)

    assert_audio(reply, "mp3", "audio/mpeg")


def test_sillytavern_without_a_key_works_in_open_mode(live_server_url, open_mode):
    # given no key saved in SillyTavern: it still sends "Authorization: Bearer "
    reply = replay(live_server_url, SILLYTAVERN, SILLYTAVERN_BODY, key="")

    assert_audio(reply, "mp3", "audio/mpeg")


def test_sillytavern_without_a_key_is_refused_when_keys_are_required(live_server_url):
    reply = replay(live_server_url, SILLYTAVERN, SILLYTAVERN_BODY, key="")

    assert reply.status == 401
    assert error_code(reply) == "invalid_api_key"


# --- LibreChat ------------------------------------------------------------------------------


def test_librechat_backend_field_is_ignored(live_server_url, alice_key, spoken):
    def speak(**backend: str) -> Reply:
        body = {"input": "LibreChat reads this aloud.", "model": "tts-1", "voice": "echo"}
        return replay(live_server_url, LIBRECHAT, javascript_json(body | backend), key=alice_key)

    # when the same request comes with and without LocalAI's "backend" field
    assert_audio(speak(backend="piper"), "mp3", "audio/mpeg")
    assert_audio(speak(), "mp3", "audio/mpeg")

    # then the engine is asked for exactly the same speech
    with_backend, without = spoken
    assert with_backend == without
    assert with_backend[1].standard == "echo"


def test_librechat_without_voices_configured_gets_alloy(live_server_url, alice_key, spoken):
    # given librechat.yaml lists no voices: the request has no "voice" at all
    body = javascript_json({"input": "No voice was named.", "model": "tts-1"})

    reply = replay(live_server_url, LIBRECHAT, body, key=alice_key)

    # then it is spoken in OpenAI's default voice, alloy
    assert_audio(reply, "mp3", "audio/mpeg")
    [(_, voice, _)] = spoken
    assert (voice.name, voice.standard) == ("alloy", "alloy")


def test_librechat_with_an_empty_key_works_in_open_mode(live_server_url, open_mode):
    body = javascript_json({"input": "Keyless.", "model": "tts-1", "voice": "alloy"})

    reply = replay(live_server_url, LIBRECHAT, body, key="")

    assert_audio(reply, "mp3", "audio/mpeg")


# --- Streaming behind a reverse proxy --------------------------------------------------------


@pytest.mark.parametrize(
    ("stream_format", "content_type"), [("audio", "audio/mpeg"), ("sse", "text/event-stream")]
)
def test_streamed_speech_tells_proxies_not_to_buffer(
    live_server_url, alice_key, stream_format, content_type
):
    body = python_json(
        {"model": "tts-1", "input": "Streaming.", "voice": "alloy", "stream_format": stream_format}
    )

    reply = replay(live_server_url, OPENWEBUI_SPEECH, body, key=alice_key)

    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == content_type
    assert_streamed_for_proxies(reply)
