"""Speech generation: the engines, CSM-1B and how it runs, admission, and the watermark."""

import hashlib
import hmac
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from csmsite.env import env_bool, env_choice, env_float, env_int, env_list, env_secret, env_str
from csmsite.settings.security import SECRET_KEY

# Which engine OpenAI's model names (tts-1, tts-1-hd, gpt-4o-mini-tts) mean. "auto": CSM once
# its weights have loaded, eSpeak NG when they cannot be had (the model name "csm-1b" always
# means CSM, and answers 503 with the reason when it is unavailable).
DEFAULT_ENGINE = env_choice("DEFAULT_ENGINE", "auto", ["auto", "csm", "espeak"])
# Concurrent generations one server process accepts; beyond it requests get 503 + Retry-After.
SPEECH_MAX_INFLIGHT = env_int("SPEECH_MAX_INFLIGHT", 32, minimum=1, maximum=4096)
# Fair admission to those slots (speech/admission.py): a user who holds h of them gets another
# only while more than min(h, SPEECH_INFLIGHT_RESERVE) stay free, so the last free slots go to
# users who hold fewer, and one user can never take them all. 0: first come, first served.
SPEECH_INFLIGHT_RESERVE = env_int(
    "SPEECH_INFLIGHT_RESERVE",
    max(1, SPEECH_MAX_INFLIGHT // 8),
    minimum=0,
    maximum=SPEECH_MAX_INFLIGHT,
)
# Upper bound on the audio of one request, whatever max_audio_length_ms asks for.
SPEECH_MAX_AUDIO_SECONDS = env_float(
    "SPEECH_MAX_AUDIO_SECONDS", 1200.0, minimum=1.0, maximum=3600.0
)
SPEECH_RETRY_AFTER_SECONDS = env_int("SPEECH_RETRY_AFTER_SECONDS", 1, minimum=1, maximum=600)
# Audio of a conversation's context turns decoded at most, newest turn first (older turns past
# it are never decoded). CSM's window of 2048 positions at 12.5 frames a second holds 163.84 s,
# shared with the text and the speech being made, so context past 160 s would never be heard.
CONVERSATION_CONTEXT_MAX_SECONDS = env_float(
    "CONVERSATION_CONTEXT_MAX_SECONDS", 160.0, minimum=1.0, maximum=3600.0
)

# CSM-1B: a Hub id or a local directory in transformers format; a token for the gated Hub repo;
# an accelerate device map to spread the model over several GPUs.
CSM_MODEL = env_str("CSM_MODEL", "sesame/csm-1b")
HF_TOKEN = env_secret("HF_TOKEN")
CSM_DEVICE_MAP = env_str("CSM_DEVICE_MAP")
if CSM_DEVICE_MAP and CSM_DEVICE_MAP not in {"auto", "balanced", "sequential"}:
    raise ImproperlyConfigured(
        f"CSM_DEVICE_MAP={CSM_DEVICE_MAP!r} must be one of: auto, balanced, sequential"
    )
# Where and in which precision CSM runs: default CUDA in bfloat16 when present, else the CPU
# in float32.
CSM_DEVICE = env_str("CSM_DEVICE")
CSM_DTYPE = env_choice("CSM_DTYPE", "auto", ["auto", "bfloat16", "float16", "float32"])
# Generate the standard voices' reference segments right after CSM loads (else on first use).
CSM_PREPARE_VOICES = env_bool("CSM_PREPARE_VOICES", True)
# The batching scheduler: requests stepped together at most, and requests admitted beyond
# those to wait for a place; past both, 503 with Retry-After at once.
CSM_MAX_BATCH = env_int("CSM_MAX_BATCH", 16, minimum=1, maximum=512)
CSM_MAX_QUEUE = env_int("CSM_MAX_QUEUE", 32, minimum=0, maximum=4096)
# Memory for the prefilled voice references reused across requests (least recently used out).
CSM_PREFIX_CACHE_MB = env_int("CSM_PREFIX_CACHE_MB", 512, minimum=0)
# The captured frame step (speech/engines/csm/capture.py): each batch-size bucket's whole frame
# compiled as one graph (a CUDA graph on a GPU), in the background while the eager step serves.
# Off: the same step, eager. Buckets compiled: every one on CUDA; on a CPU one row and the
# largest (each costs minutes of CPU at start-up), or the ones listed here (e.g. "1,4,16").
CSM_CAPTURE = env_bool("CSM_CAPTURE", True)
CSM_CAPTURE_BUCKETS = env_list("CSM_CAPTURE_BUCKETS", [])
if not all(size.isdigit() and int(size) > 0 for size in CSM_CAPTURE_BUCKETS):
    raise ImproperlyConfigured(
        f"CSM_CAPTURE_BUCKETS={','.join(CSM_CAPTURE_BUCKETS)!r} must list row counts, e.g. 1,4,16"
    )
CSM_CAPTURE_BUCKETS = [int(size) for size in CSM_CAPTURE_BUCKETS]
# Inductor's cache of compiled code, kept with the model cache so a restart reuses it (an
# explicit TORCHINDUCTOR_CACHE_DIR is the default where set).
CSM_COMPILE_CACHE_DIR = env_str(
    "CSM_COMPILE_CACHE_DIR",
    os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    or str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "csm-compile"),
)

# --- Watermark ------------------------------------------------------------------------------
# Generated speech (CSM) carries Meta's AudioSeal watermark, as Sesame asks; speech/watermark/.
# On by default: while its weights cannot be loaded, speech still goes out unmarked and /readyz
# says why. The generator must be a streaming (causal) one, which marks audio as it is made;
# either model is a card shipped in the audioseal package (weights downloaded once), a
# facebook/audioseal/<file>.pth Hub file, or a local checkpoint.
WATERMARK = env_bool("WATERMARK", True)
WATERMARK_MODEL = env_str("WATERMARK_MODEL", "audioseal_wm_streaming")
WATERMARK_DETECTOR_MODEL = env_str("WATERMARK_DETECTOR_MODEL", "audioseal_detector_streaming")


def _default_watermark_message() -> int:
    """16 bits that identify this installation: stable, different for every SECRET_KEY, and
    saying nothing useful about the key itself."""
    digest = hmac.new(SECRET_KEY.encode(), b"audioseal watermark message", hashlib.sha256)
    return int.from_bytes(digest.digest()[:2], "big")


# The 16-bit message in the watermark (0..65535), read back by the detection endpoint.
WATERMARK_MESSAGE = env_int(
    "WATERMARK_MESSAGE", _default_watermark_message(), minimum=0, maximum=0xFFFF
)
