"""What today's clients send, replayed against the live server, and what it answers.

Each request is written out as the client puts it on the wire: its request line, its headers in
its stack's order and spelling, with or without Authorization exactly as the client decides, and
its body as its JSON encoder writes it (Python's `json.dumps` puts spaces after separators,
JavaScript's `JSON.stringify` does not). The heads were recorded from the clients' own HTTP
stacks (aiohttp 3.14, urllib and requests 2.34 on Python 3.11, node-fetch 3 and axios 1.x on
Node 20) making the calls the clients' code makes; only version numbers in User-Agent vary
between installs. The bytes go over a plain socket, because some of them cannot be sent by a
well-behaved HTTP library (`Authorization: Bearer ` with nothing after it is refused by h11,
which httpx uses). Only the response is parsed (by h11). Home Assistant's own integration
speaks through the openai SDK, so its requests are made by the real SDK.

Sources, as read in each client's code:
- OpenWebUI, main as of 2026 (backend/open_webui/routers/audio.py). Lists: aiohttp
  `GET {base}/audio/models` and `{base}/audio/voices` with no key, read as `data["models"]` and
  `{v["id"]: v["name"] for v in data["voices"]}`. Speech (`speech()`): the browser's
  `{input, voice}`, then `model` from the settings, then the "additional parameters"
  (`TTS_OPENAI_PARAMS`) merged over it; no `response_format`; `Authorization: Bearer {key}`
  always, so `Bearer ` when no key is set; user headers with ENABLE_FORWARD_USER_INFO_HEADERS.
  Speech to text (`transcription_handler()`): requests multipart with the fields `model` and,
  when known, `language`, then `file` named `<uuid>.<ext>` with no part type. The browser's
  recorder names its file `recording.wav` (frontend `blobToFile(audioBlob, 'recording.wav')`)
  whatever it holds, which in Chromium is WebM/Opus: the server gets `<uuid>.wav` holding WebM.
- Home Assistant's "OpenAI TTS" custom integration, sfortis/openai_tts v3.7 (2026-02-11)
  (custom_components/openai_tts/openaitts_engine.py, tts.py, config_flow.py). Home Assistant
  hands an entity that streams all its speech through `async_stream_tts_audio` (components/tts
  `_async_generate_tts_audio`): there the body is `{model, input, voice, response_format: "mp3",
  speed}`, `instructions` when set, and the profile's Extra JSON payload (or the service call's
  `extra_payload`) merged in; `User-Agent: HomeAssistant-OpenAI-TTS`; Authorization only when a
  key is set (a key is optional for other endpoints than OpenAI's). Text of 60 characters or
  more without chime or normalisation goes through a fresh aiohttp session and is read as it
  arrives (`async_get_tts_stream`; Opus is switched off in the code since 3.5), shorter text
  through urllib (`get_tts`). Key check: `{"model": "tts-1",
  "input": ".", "voice": "alloy", "response_format": "mp3"}` through a fresh aiohttp session,
  only for OpenAI's own URL and on re-authentication; 401/403 mean a wrong key. Voices are a
  fixed list (a typed value is accepted); it never asks the server for them.
- Home Assistant core, openai_conversation (homeassistant/components/openai_conversation/tts.py
  and stt.py, 2026): `openai.AsyncOpenAI(api_key=...)` without a base URL, so the SDK reads
  `OPENAI_BASE_URL` from Home Assistant's environment. Speech:
  `audio.speech.with_streaming_response.create(model, voice, input, instructions=str(prompt),
  speed, response_format)` with the TTS entry's model (default `gpt-4o-mini-tts`), prompt (""
  by default) and speed, a voice from OpenAI's 13 names (default `marin`) and the format the
  pipeline prefers (mp3, opus, aac, flac, wav or pcm). Speech to text:
  `audio.transcriptions.create(model, file=("a.wav", wav), response_format="json", language,
  prompt)`. The key is checked by listing models.
- SillyTavern 1.13 (src/endpoints/openai.js, `custom/generate-voice`, the "OpenAI Compatible"
  provider of public/scripts/extensions/tts/openai-compatible.js), node-fetch 3:
  `Authorization: Bearer ${key ?? ''}` and `JSON.stringify({input, response_format, voice,
  speed, model})`.
- LibreChat v0.8.2 (api/server/services/Files/Audio/TTSService.js, `openAIProvider`), axios:
  `{input, model, voice, backend}` with undefined fields removed (no `voice` when librechat.yaml
  lists no voices), and `Authorization: Bearer <key>` only when a key is set: no header at all
  without one.
"""

import asyncio
import io
import json
import socket
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import av
import h11
import httpx
import numpy as np
import openai
import pytest
from django.urls import Resolver404, resolve
from scipy.signal import resample_poly

from speech.audio.decode import decode_audio, sniff_container
from speech.audio.formats import SAMPLE_RATE
from speech.engines.base import SynthesisParams, VoiceSpec
from speech.engines.espeak import EspeakEngine
from tests.support.audio import spoken as espeak_says
from tests.support.audio import written

pytestmark = pytest.mark.django_db(transaction=True)


def _routed(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


# Speech to text is replayed once the server has the route; until then these replays wait.
needs_transcriptions = pytest.mark.skipif(
    not _routed("/v1/audio/transcriptions"), reason="POST /v1/audio/transcriptions is not routed"
)

# --- Request heads, as recorded -------------------------------------------------------------------
# {host}, {length} and {key} are filled in per request. aiohttp puts Host first and its own
# headers after the caller's; urllib puts Accept-Encoding first and Host after Content-Length;
# requests puts its defaults before the caller's; node-fetch lower-cases and sorts its headers and
# Node adds Host and Connection last; axios writes its own order, Node adds Host last.

OPENWEBUI_LIST = (
    "GET {path} HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "User-Agent: Python/3.11 aiohttp/3.14.5\r\n"
)
OPENWEBUI_SPEECH = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Content-Type: application/json\r\n"
    "Authorization: Bearer {key}\r\n"
    "{user_headers}"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "User-Agent: Python/3.11 aiohttp/3.14.5\r\n"
    "Content-Length: {length}\r\n"
)
# ENABLE_FORWARD_USER_INFO_HEADERS=true adds these after its own two.
OPENWEBUI_USER_HEADERS = (
    "X-OpenWebUI-User-Name: Alice\r\n"
    "X-OpenWebUI-User-Id: 0b6f4a52-5f8e-4c55-9d0a-1f3c1e2d7a11\r\n"
    "X-OpenWebUI-User-Email: alice@example.com\r\n"
    "X-OpenWebUI-User-Role: admin\r\n"
)
OPENWEBUI_TRANSCRIPTION = (
    "POST /v1/audio/transcriptions HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "User-Agent: python-requests/2.34.2\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Accept: */*\r\n"
    "Connection: keep-alive\r\n"
    "Authorization: Bearer {key}\r\n"
    "Content-Length: {length}\r\n"
    "Content-Type: multipart/form-data; boundary={boundary}\r\n"
)
# Home Assistant's OpenAI TTS integration: short speech (`get_tts`) through urllib...
HOME_ASSISTANT_URLLIB = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Accept-Encoding: identity\r\n"
    "Content-Length: {length}\r\n"
    "Host: {host}\r\n"
    "Content-Type: application/json\r\n"
    "User-Agent: HomeAssistant-OpenAI-TTS\r\n"
    "{authorization}"
    "Connection: close\r\n"
)
# ...its longer speech through a fresh aiohttp session, read as it arrives...
HOME_ASSISTANT_STREAM = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Content-Type: application/json\r\n"
    "User-Agent: HomeAssistant-OpenAI-TTS\r\n"
    "{authorization}"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Content-Length: {length}\r\n"
)
# ...and its key check through another, with aiohttp's own User-Agent.
HOME_ASSISTANT_KEY_CHECK = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Content-Type: application/json\r\n"
    "Authorization: Bearer {key}\r\n"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "User-Agent: Python/3.11 aiohttp/3.14.5\r\n"
    "Content-Length: {length}\r\n"
)
SILLYTAVERN = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "accept: */*\r\n"
    "accept-encoding: gzip, deflate, br\r\n"
    "authorization: Bearer {key}\r\n"
    "content-length: {length}\r\n"
    "content-type: application/json\r\n"
    "user-agent: node-fetch\r\n"
    "Host: {host}\r\n"
    "Connection: keep-alive\r\n"
)
LIBRECHAT = (
    "POST /v1/audio/speech HTTP/1.1\r\n"
    "Accept: application/json, text/plain, */*\r\n"
    "Content-Type: application/json\r\n"
    "{authorization}"
    "User-Agent: axios/1.12.2\r\n"
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


def bearer(key: str | None) -> str:
    """The Authorization line of a client that sends one only when it has a key."""
    return f"Authorization: Bearer {key}\r\n" if key else ""


def python_json(payload: dict) -> bytes:
    """As Python's json.dumps writes it (aiohttp, urllib and requests callers)."""
    return json.dumps(payload).encode()


def javascript_json(payload: dict) -> bytes:
    """As JavaScript's JSON.stringify writes it (node-fetch, axios callers)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[str, bytes]:
    """A form as requests encodes `data=fields, files={"file": (filename, f)}`: the fields in
    order, then the file part without a Content-Type of its own."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        f"\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return boundary, b"".join(parts) + f"--{boundary}--\r\n".encode()


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


# --- OpenWebUI ------------------------------------------------------------------------------------


def test_openwebui_reads_the_model_and_voice_lists_without_a_key(live_server_url):
    # when OpenWebUI's admin page fetches the lists (aiohttp, no Authorization header)
    models = replay(live_server_url, OPENWEBUI_LIST, path="/v1/audio/models")
    voices = replay(live_server_url, OPENWEBUI_LIST, path="/v1/audio/voices")

    # then both answer, in the shapes it reads
    assert models.status == 200, models.body
    assert models.headers["content-type"] == "application/json"
    model_ids = [model["id"] for model in models.json()["models"]]
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"} <= set(model_ids)
    assert all(isinstance(model_id, str) for model_id in model_ids)

    assert voices.status == 200, voices.body
    by_id = {voice["id"]: voice["name"] for voice in voices.json()["voices"]}
    assert {"alloy", "echo", "fable", "onyx", "nova", "shimmer", "marin", "cedar"} <= set(by_id)
    assert all(isinstance(name, str) and name for name in by_id.values())


@pytest.mark.parametrize("user_headers", ["", OPENWEBUI_USER_HEADERS], ids=["plain", "user-info"])
def test_openwebui_speech_with_its_extra_parameters_is_mp3(
    live_server_url, alice_key, spoken, user_headers
):
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
    reply = replay(
        live_server_url, OPENWEBUI_SPEECH, body, key=alice_key, user_headers=user_headers
    )

    # then it is MP3, which OpenWebUI stores as an .mp3 file without transcoding it
    assert_audio(reply, "mp3", "audio/mpeg")
    assert_streamed_for_proxies(reply)
    [(chunks, voice, params)] = spoken
    assert chunks == ("Hello from Open WebUI.",)
    assert voice.standard == "alloy"
    assert (params.speed, params.temperature, params.seed) == (1.25, 0.8, 42)


def test_openwebui_without_a_key_sends_an_empty_bearer(live_server_url, settings, default_user):
    body = python_json({"input": "No key here.", "voice": "nova", "model": "tts-1"})

    refused = replay(live_server_url, OPENWEBUI_SPEECH, body, key="", user_headers="")
    settings.AUTH_MODE = "open"
    accepted = replay(live_server_url, OPENWEBUI_SPEECH, body, key="", user_headers="")

    assert refused.status == 401
    assert error_code(refused) == "invalid_api_key"
    assert_audio(accepted, "mp3", "audio/mpeg")


def webm_opus_recording() -> bytes:
    """What Chromium's MediaRecorder hands OpenWebUI: Opus at 48 kHz in WebM."""
    speech = resample_poly(espeak_says("Turn on the kitchen lights."), 2, 1).astype(np.float32)
    path = Path(f"/tmp/recording-{uuid.uuid4().hex}.webm")
    try:
        return written(speech, path, rate=48000, container_format="webm", codec="libopus")
    finally:
        path.unlink(missing_ok=True)


@needs_transcriptions
@pytest.mark.parametrize("language", ["en", None], ids=["with-language", "without-language"])
def test_openwebui_transcribes_its_recording_named_wav(
    live_server_url, alice_key, whisper_model, language
):
    # given OpenWebUI's STT settings: engine OpenAI, this server's /v1, the key, model whisper-1;
    # the browser's recording is WebM/Opus, stored and sent as "<uuid>.wav"
    fields = {"model": "whisper-1"} | ({"language": language} if language else {})
    recording = webm_opus_recording()
    boundary, body = multipart(fields, f"{uuid.uuid4()}.wav", recording)

    reply = replay(live_server_url, OPENWEBUI_TRANSCRIPTION, body, key=alice_key, boundary=boundary)

    # then it answers OpenAI's JSON, from which OpenWebUI takes "text"
    assert reply.status == 200, reply.body[:500]
    assert reply.headers["content-type"] == "application/json"
    assert isinstance(reply.json()["text"], str)


# --- Home Assistant: the OpenAI TTS custom integration (sfortis/openai_tts) -----------------------

KEY_CHECK_BODY = python_json(
    {"model": "tts-1", "input": ".", "voice": "alloy", "response_format": "mp3"}
)


def test_home_assistant_key_check_with_a_full_stop_is_accepted(live_server_url, alice_key):
    # when the integration checks the key (OpenAI's URL, or re-authentication)
    reply = replay(live_server_url, HOME_ASSISTANT_KEY_CHECK, KEY_CHECK_BODY, key=alice_key)

    # then the answer is a 2xx, the only answer it takes as "key accepted"
    assert_audio(reply, "mp3", "audio/mpeg")


def test_home_assistant_key_check_with_a_wrong_key_is_a_401(live_server_url):
    reply = replay(live_server_url, HOME_ASSISTANT_KEY_CHECK, KEY_CHECK_BODY, key="sk-csm-wrong")

    # 401 (or 403) is the only answer it takes as "wrong key"
    assert reply.status == 401
    assert error_code(reply) == "invalid_api_key"


def test_home_assistant_short_speech_goes_through_urllib(live_server_url, alice_key, spoken):
    # given a short text (under 60 characters), a profile's instructions and an extra payload
    body = python_json(
        {
            "model": "tts-1",
            "input": "The front door is open.",
            "voice": "nova",
            "response_format": "mp3",
            "speed": 1.0,
            "instructions": "Speak calmly.",
            "seed": 7,
        }
    )

    reply = replay(live_server_url, HOME_ASSISTANT_URLLIB, body, authorization=bearer(alice_key))

    assert_audio(reply, "mp3", "audio/mpeg")
    [(chunks, voice, params)] = spoken
    assert (chunks, voice.standard, params.seed) == (("The front door is open.",), "nova", 7)


def test_home_assistant_without_a_key_sends_no_authorization(
    live_server_url, settings, default_user
):
    # given no key (optional for other endpoints than OpenAI's): no Authorization header at all
    body = python_json(
        {
            "model": "tts-1",
            "input": "Keyless.",
            "voice": "shimmer",
            "response_format": "mp3",
            "speed": 1.0,
        }
    )

    refused = replay(live_server_url, HOME_ASSISTANT_URLLIB, body, authorization="")
    settings.AUTH_MODE = "open"
    accepted = replay(live_server_url, HOME_ASSISTANT_URLLIB, body, authorization="")

    assert refused.status == 401
    assert error_code(refused) == "invalid_api_key"
    assert_audio(accepted, "mp3", "audio/mpeg")


def test_home_assistant_streams_mp3_with_its_extra_payload(live_server_url, alice_key, spoken):
    # given a text of 60 characters or more, streamed, with the profile's Extra JSON
    # payload {"temperature": 0.7} merged in
    text = "Good morning. It is seven o'clock, and the weather today is mild with light rain."
    body = python_json(
        {
            "model": "tts-1",
            "input": text,
            "voice": "alloy",
            "response_format": "mp3",
            "speed": 1.0,
            "temperature": 0.7,
        }
    )

    reply = replay(live_server_url, HOME_ASSISTANT_STREAM, body, authorization=bearer(alice_key))

    assert_audio(reply, "mp3", "audio/mpeg")
    assert_streamed_for_proxies(reply)
    [(_, voice, params)] = spoken[-1:]
    assert (voice.standard, params.temperature) == ("alloy", 0.7)


# --- Home Assistant core: openai_conversation through OPENAI_BASE_URL -----------------------------


@pytest.fixture
def home_assistant_sdk(monkeypatch, live_server_url):
    """An AsyncOpenAI client made as Home Assistant makes it: a key and its own httpx client,
    no base URL, so that the SDK reads OPENAI_BASE_URL from the environment."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"{live_server_url}/v1")

    def make(key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=key, http_client=httpx.AsyncClient(timeout=60))

    return make


CORE_TTS_FORMATS = [
    ("mp3", "audio/mpeg", "mp3"),
    ("opus", "audio/opus", "ogg"),
    ("aac", "audio/aac", "aac"),
    ("flac", "audio/flac", "flac"),
    ("wav", "audio/wav", "wav"),
    ("pcm", "audio/pcm", None),
]


@pytest.mark.parametrize(("codec", "content_type", "container"), CORE_TTS_FORMATS)
def test_home_assistant_core_speaks_every_format_its_pipeline_asks_for(
    home_assistant_sdk, alice_key, spoken, codec, content_type, container
):
    async def speak() -> tuple[str, bytes]:
        client = home_assistant_sdk(alice_key)
        async with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts",
            voice="marin",
            input="The washing machine has finished.",
            instructions="",
            speed=1.0,
            response_format=codec,
        ) as response:
            data = bytearray()
            async for chunk in response.iter_bytes():
                data.extend(chunk)
            return response.headers["content-type"], bytes(data)

    received_type, data = asyncio.run(speak())

    assert received_type == content_type
    if container is None:
        # raw 24 kHz 16-bit mono, as OpenAI defines pcm
        samples = np.frombuffer(data, dtype="<i2")
        assert len(data) % 2 == 0 and samples.size > SAMPLE_RATE // 2
        assert np.abs(samples).max() > 1000
    else:
        assert_audio(Reply(200, {"content-type": received_type}, data), container, content_type)
    [(_, voice, _)] = spoken
    assert voice.standard == "marin"


def test_home_assistant_core_key_check_lists_models(home_assistant_sdk, alice_key):
    async def list_models(key: str) -> list[str]:
        return [model.id async for model in home_assistant_sdk(key).models.list()]

    assert "gpt-4o-mini-tts" in asyncio.run(list_models(alice_key))
    with pytest.raises(openai.AuthenticationError):
        asyncio.run(list_models("sk-csm-wrong"))


def assist_wav() -> bytes:
    """What an Assist pipeline records: 16 kHz 16-bit mono, given a WAV header by the entity."""
    speech = resample_poly(espeak_says("What is the temperature outside?"), 2, 3)
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(pcm)
    return out.getvalue()


@needs_transcriptions
def test_home_assistant_core_transcribes_an_assist_recording(
    home_assistant_sdk, alice_key, whisper_model
):
    # given the speech-to-text entry with its default model, which Whisper serves here
    async def transcribe() -> str:
        response = await home_assistant_sdk(alice_key).audio.transcriptions.create(
            model="gpt-4o-mini-transcribe",
            file=("a.wav", assist_wav()),
            response_format="json",
            language="en",
            prompt="The following conversation is a smart home user talking to Home Assistant.",
        )
        return response.text

    assert isinstance(asyncio.run(transcribe()), str)


# --- SillyTavern ----------------------------------------------------------------------------------

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
    # given no key saved in SillyTavern: it still sends "authorization: Bearer "
    reply = replay(live_server_url, SILLYTAVERN, SILLYTAVERN_BODY, key="")

    assert_audio(reply, "mp3", "audio/mpeg")


def test_sillytavern_without_a_key_is_refused_when_keys_are_required(live_server_url):
    reply = replay(live_server_url, SILLYTAVERN, SILLYTAVERN_BODY, key="")

    assert reply.status == 401
    assert error_code(reply) == "invalid_api_key"


# --- LibreChat ------------------------------------------------------------------------------------


def test_librechat_backend_field_is_ignored(live_server_url, alice_key, spoken):
    def speak(**backend: str) -> Reply:
        body = {"input": "LibreChat reads this aloud.", "model": "tts-1", "voice": "echo"}
        return replay(
            live_server_url,
            LIBRECHAT,
            javascript_json(body | backend),
            authorization=bearer(alice_key),
        )

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

    reply = replay(live_server_url, LIBRECHAT, body, authorization=bearer(alice_key))

    # then it is spoken in OpenAI's default voice, alloy
    assert_audio(reply, "mp3", "audio/mpeg")
    [(_, voice, _)] = spoken
    assert (voice.name, voice.standard) == ("alloy", "alloy")


def test_librechat_without_a_key_sends_no_authorization(live_server_url, settings, default_user):
    body = javascript_json({"input": "Keyless.", "model": "tts-1", "voice": "alloy"})

    refused = replay(live_server_url, LIBRECHAT, body, authorization="")
    settings.AUTH_MODE = "open"
    accepted = replay(live_server_url, LIBRECHAT, body, authorization="")

    assert refused.status == 401
    assert error_code(refused) == "invalid_api_key"
    assert_audio(accepted, "mp3", "audio/mpeg")


# --- Streaming behind a reverse proxy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream_format", "content_type"), [("audio", "audio/mpeg"), ("sse", "text/event-stream")]
)
def test_streamed_speech_tells_proxies_not_to_buffer(
    live_server_url, alice_key, stream_format, content_type
):
    body = python_json(
        {"model": "tts-1", "input": "Streaming.", "voice": "alloy", "stream_format": stream_format}
    )

    reply = replay(live_server_url, OPENWEBUI_SPEECH, body, key=alice_key, user_headers="")

    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == content_type
    assert_streamed_for_proxies(reply)
