"""The response formats of OpenAI's speech API and how each is muxed and encoded."""

from dataclasses import dataclass

# The one sample rate of the project: OpenAI's speech output rate (pcm is defined by it), CSM's
# codec rate, and the rate cloned voices are stored at.
SAMPLE_RATE = 24000


@dataclass(frozen=True)
class AudioFormat:
    name: str
    container: str  # FFmpeg muxer
    codec: str  # FFmpeg encoder
    content_type: str
    bit_rate: int | None = None
    muxer_options: tuple[tuple[str, str], ...] = ()


FORMATS: dict[str, AudioFormat] = {
    fmt.name: fmt
    for fmt in (
        AudioFormat("mp3", "mp3", "libmp3lame", "audio/mpeg", bit_rate=64_000),
        AudioFormat(
            "opus",
            "ogg",
            "libopus",
            "audio/opus",
            bit_rate=32_000,
            # Ogg buffers a page per second by default; short pages let audio stream out.
            muxer_options=(("page_duration", "20000"),),
        ),
        AudioFormat("aac", "adts", "aac", "audio/aac", bit_rate=64_000),
        AudioFormat("flac", "flac", "flac", "audio/flac"),
        AudioFormat("wav", "wav", "pcm_s16le", "audio/wav"),
        # Raw 24 kHz signed 16-bit little-endian mono, no header.
        AudioFormat("pcm", "s16le", "pcm_s16le", "audio/pcm"),
    )
}
DEFAULT_FORMAT = "mp3"
