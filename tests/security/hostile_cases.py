"""The hostile inputs the security tests try, as named tables.

Each table is a list of cases with a name; the tests under tests/security/ parametrize over
them, and a runner (`make reliability`) can count what was tried with `hostile_input_counts()`
or by running this file: `python tests/security/hostile_cases.py` prints one line per table
and the total. Audio cases are built on demand (`build()`), so importing this costs nothing.
"""

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

MAX_INPUT_CHARS = 4096


@dataclass(frozen=True)
class Case:
    name: str
    value: str


# --- Text: the `input` of a speech request (and `text` of the other speaking routes) --------
HOSTILE_TEXTS: list[Case] = [
    # One character that NFKC expands to 18 (an Arabic ligature): 73,728 characters to speak.
    Case("arabic-ligature-4096", "\ufdfa" * MAX_INPUT_CHARS),
    Case("ffi-ligature-4096", "\ufb03" * MAX_INPUT_CHARS),
    Case("combining-flood", "a" + "\u0301" * (MAX_INPUT_CHARS - 1)),
    Case("zalgo-words", ("Zalgo" + "\u0336\u0337\u0338\u0489" * 20 + " ") * 48),
    Case("nul-inside", "Hello\x00 world\x00."),
    Case("nul-only", "\x00" * 64),
    Case("lone-high-surrogate", "Hello \ud800 world."),
    Case("lone-low-surrogate", "\udfff"),
    Case("bidi-overrides", "\u202eHello\u202c \u2066world\u2069 \u200fagain\u200e."),
    Case("bidi-only", "\u202e\u202d\u202a\u202b\u2066\u2067\u2068\u2069" * 16),
    Case("zero-width-flood", "\u200b\u200c\u200d\ufeff" * (MAX_INPUT_CHARS // 4)),
    Case("private-use-flood", "\ue000" * MAX_INPUT_CHARS),
    Case("noncharacters", "\ufffe\uffff" * (MAX_INPUT_CHARS // 2)),
    Case("replacement-chars", "\ufffd" * MAX_INPUT_CHARS),
    Case("newline-flood", "\n\r" * (MAX_INPUT_CHARS // 2)),
    Case("one-long-word", "a" * MAX_INPUT_CHARS),
    Case("one-long-number", "9" * MAX_INPUT_CHARS),
    Case("digits-and-dots", "1." * (MAX_INPUT_CHARS // 2)),
    Case("period-wall", "." * MAX_INPUT_CHARS),
    Case("emoji-zwj-sequences", "\U0001f469\u200d\U0001f469\u200d\U0001f467" * 800),
    Case("astral-plane", "\U0001d54f" * (MAX_INPUT_CHARS // 2)),
    Case("markdown-bomb", "[" * 2000 + "x" + "](" * 1000),
    Case("url-wall", "https://a.b/" * 340),
    Case("ssml-injection", '<speak><break time="3600s"/><audio src="http://127.0.0.1/"/></speak>'),
    Case("espeak-phoneme-markup", "[[a:::::::::::::::::::::::::::::::]] " * 100),
]

# --- Whole request bodies that are hostile as bytes, not as text --------------------------------
BODY_BYTES = 10 * 1024 * 1024
_SPEECH = b'{"model": "tts-1", "input": '


@dataclass(frozen=True)
class Body:
    name: str
    build: Callable[[], bytes]
    content_type: str = "application/json"


HOSTILE_BODIES: list[Body] = [
    Body("ten-megabytes-of-json", lambda: _SPEECH + b'"' + b"a" * BODY_BYTES + b'"}'),
    Body(
        "deeply-nested-json", lambda: _SPEECH + b'"x", "e": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    ),
    Body("invalid-utf8", lambda: _SPEECH + b'"\xff\xfe\xed\xa0\x80"}'),
    Body("cesu-surrogates", lambda: _SPEECH + b'"\xed\xa0\x80\xed\xb0\x80"}'),
    Body("escaped-lone-surrogate", lambda: _SPEECH + b'"Hello \\ud800 world"}'),
    Body("escaped-nul", lambda: _SPEECH + b'"Hello \\u0000 world"}'),
    Body("nan-and-infinity", lambda: _SPEECH + b'"x", "speed": NaN, "temperature": Infinity}'),
    Body("huge-number", lambda: _SPEECH + b'"x", "seed": 1' + b"0" * 5000 + b"}"),
    Body("duplicate-keys", lambda: _SPEECH + b'"x", "input": "' + b"y" * 5000 + b'"}'),
    Body("array-not-object", lambda: b'["tts-1", "x"]'),
    Body("form-as-json", lambda: b"model=tts-1&input=x"),
    Body("json-as-text", lambda: _SPEECH + b'"x"}', "text/plain"),
]

# --- Names and ids a client chooses: voice names, voice ids in paths, consent ids -----------------
HOSTILE_NAMES: list[Case] = [
    Case("dot-dot-slash", "../../../../etc/passwd"),
    Case("dot-dot-backslash", "..\\..\\..\\windows\\win.ini"),
    Case("encoded-traversal", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
    Case("absolute-path", "/etc/passwd"),
    Case("nul-inside", "voice\x00.wav"),
    Case("lone-surrogate", "voice\ud800"),
    Case("very-long", "v" * 10_000),
    Case("markup", "<img src=x onerror=alert(1)>"),
    Case("sql-quote", "' OR '1'='1' --"),
    Case("bidi-override", "\u202egnp.exe"),
    Case("windows-device", "CON"),
    Case("only-dots", ".."),
]

# --- Uploads: what arrives as a recording ------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    name: str
    filename: str
    build: Callable[[], bytes]
    # What the cloning routes answer: refused at once ("unsupported_format", "empty_file") or
    # accepted as a file and refused by its job when decoded ("invalid_audio").
    code: str


def _wav_header(*, rate: int, data_bytes: int, channels: int = 1) -> bytes:
    byte_rate = rate * channels * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, byte_rate, channels * 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def wav_forged_rate() -> bytes:
    """Two seconds of samples whose header claims 1 Hz: resampled to 24 kHz, each of its
    samples would become 24,000."""
    return _wav_header(rate=1, data_bytes=96_000) + b"\x01\x00" * 48_000


def wav_no_samples() -> bytes:
    """A header that claims 4 GB of samples, and none follow."""
    return _wav_header(rate=24_000, data_bytes=0xFFFFFF00)


def flac_forged_rate(rate: int = 1) -> bytes:
    """Two seconds of FLAC silence whose STREAMINFO claims `rate` Hz. Encoded at a rate no
    frame header can name, so every frame takes its rate from STREAMINFO: at 1 Hz its 8 kB
    would decode to hundreds of millions of samples at 24 kHz."""
    import av
    import numpy as np

    source_rate = 100_003
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=source_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, source_rate * 2), dtype=np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = source_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = bytearray(buffer.getvalue())
    # "fLaC", a 4-byte block header, then STREAMINFO: the rate is the top 20 bits at byte 10.
    offset = 8 + 10
    packed = int.from_bytes(data[offset : offset + 3], "big")
    data[offset : offset + 3] = ((rate << 4) | (packed & 0xF)).to_bytes(3, "big")
    return bytes(data)


def opus_hours(hours: float = 3.0) -> bytes:
    """Hours of Ogg Opus at a few bytes a packet: one encoded 60 ms packet, muxed again and
    again. A few megabytes that decode to hours of audio."""
    import av
    import numpy as np

    rate = 48_000
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate, layout="mono")
        stream.bit_rate = 6000
        stream.codec_context.options = {"frame_duration": "60"}
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 2880), dtype=np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = rate
        packets = list(stream.encode(frame)) + list(stream.encode(None))
        template = packets[0]
        payload = bytes(template)
        duration = template.duration or 2880
        for index in range(int(hours * 3600 * rate / duration)):
            packet = av.Packet(payload)
            packet.stream = stream
            packet.pts = packet.dts = index * duration
            packet.duration = duration
            packet.time_base = template.time_base
            container.mux(packet)
    return buffer.getvalue()


_M3U8 = (
    b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
    b"#EXTINF:10.0,\nhttp://169.254.169.254/latest/meta-data/\n#EXT-X-ENDLIST\n"
)
_FFCONCAT = b"ffconcat version 1.0\nfile '/etc/passwd'\nfile 'http://127.0.0.1:9/x.wav'\n"
_SDP = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 9 RTP/AVP 0\r\n"
_HTML = b"<!doctype html><script>alert(1)</script>"
_RIFF = b"RIFF\x00\x00\x00\x00WAVE"
_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00"
_FTYP = b"\x00\x00\x00\x18ftypM4A "

HOSTILE_UPLOADS: list[Upload] = [
    Upload("empty", "sample.wav", lambda: b"", "empty_file"),
    Upload("one-byte", "sample.wav", lambda: b"R", "unsupported_format"),
    Upload("m3u8-playlist", "clip.m3u8", lambda: _M3U8, "unsupported_format"),
    Upload("ffconcat-script", "clip.wav", lambda: _FFCONCAT, "unsupported_format"),
    Upload("sdp-description", "clip.sdp", lambda: _SDP, "unsupported_format"),
    Upload("html-page", "clip.mp3", lambda: _HTML, "unsupported_format"),
    # Audio signatures in front of a playlist or script: only the signed demuxer ever reads it.
    Upload("riff-then-ffconcat", "clip.wav", lambda: _RIFF + _FFCONCAT, "invalid_audio"),
    Upload("id3-then-m3u8", "clip.mp3", lambda: _ID3 + _M3U8, "invalid_audio"),
    Upload("ftyp-then-m3u8", "clip.m4a", lambda: _FTYP + _M3U8, "invalid_audio"),
    Upload("ogg-then-ffconcat", "clip.ogg", lambda: b"OggS" + _FFCONCAT, "invalid_audio"),
    # Decode bombs: small files that claim, or decode to, far more audio than allowed.
    Upload("wav-forged-rate", "clip.wav", wav_forged_rate, "invalid_audio"),
    Upload("flac-forged-rate", "clip.flac", flac_forged_rate, "invalid_audio"),
    Upload("wav-no-samples", "clip.wav", wav_no_samples, "invalid_audio"),
    Upload("opus-hours", "clip.opus", opus_hours, "invalid_audio"),
]


# --- Cloning links, beyond the refusal matrix of tests/ingest/test_download.py -------------
_VIDEO = "dQw4w9WgXcQ"
HOSTILE_URLS: list[Case] = [
    Case("nul-then-host", f"https://www.youtube.com/watch?v={_VIDEO}\x00.evil.com"),
    Case("encoded-slash-userinfo", f"https://youtube.com%2f@evil.com/watch?v={_VIDEO}"),
    Case("encoded-nul-host", f"https://youtube.com%00.evil.com/watch?v={_VIDEO}"),
    Case("fragment-userinfo", f"https://evil.com#@www.youtube.com/watch?v={_VIDEO}"),
    Case("query-userinfo", f"https://evil.com?@www.youtube.com/watch?v={_VIDEO}"),
    Case("host-in-query", f"https://evil.com/watch?v={_VIDEO}&host=www.youtube.com"),
    Case("port-then-userinfo", f"https://www.youtube.com:443@evil.com/watch?v={_VIDEO}"),
    Case("data-url", "data:audio/wav;base64,UklGRg=="),
    Case("slash-backslash", f"https:/\\evil.com/watch?v={_VIDEO}"),
    Case("tab-in-host", f"https://www.youtube.com\t.evil.com/watch?v={_VIDEO}"),
    Case("header-injection", f"https://www.youtube.com/watch?v={_VIDEO}\r\nX-Evil: 1"),
    Case("youtube-redirector", "https://www.youtube.com/redirect?q=http://127.0.0.1/"),
    Case("attribution-link", f"https://www.youtube.com/attribution_link?u=/watch?v={_VIDEO}"),
    Case("channel-feed", "https://www.youtube.com/feeds/videos.xml?channel_id=UC123"),
    Case("lone-surrogate-id", "https://www.youtube.com/watch?v=\ud800"),
    Case("mapped-metadata-ip", "https://[::ffff:169.254.169.254]/latest"),
    Case("wildcard-dns-metadata", "http://169.254.169.254.nip.io/latest"),
    Case("long-subdomain-chain", "https://" + "a." * 100 + f"youtube.com/watch?v={_VIDEO}"),
]


def hostile_input_counts() -> dict[str, int]:
    """How many hostile inputs each table holds (for a runner's report)."""
    return {
        "texts": len(HOSTILE_TEXTS),
        "bodies": len(HOSTILE_BODIES),
        "names": len(HOSTILE_NAMES),
        "uploads": len(HOSTILE_UPLOADS),
        "urls": len(HOSTILE_URLS),
    }


if __name__ == "__main__":
    counts = hostile_input_counts()
    for table, count in counts.items():
        print(f"{table}: {count}")
    print(f"total: {sum(counts.values())}")
