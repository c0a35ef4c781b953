"""StreamingEncoder: float32 chunks in, every response format out, decodable and streamed."""

import io
import struct
from dataclasses import dataclass

import av
import numpy as np
import pytest

from speech.audio.encoder import StreamingEncoder
from speech.audio.formats import DEFAULT_FORMAT, FORMATS, SAMPLE_RATE

INPUT_RATE = 22050
TONE_HZ = 220.0
SECONDS = 2.0
PIECE = INPUT_RATE // 10  # 100 ms

# What each format's bytes must decode as: (demuxer, codec names, sample rates).
EXPECTED = {
    "mp3": ("mp3", {"mp3", "mp3float"}, {SAMPLE_RATE}),
    # Opus always decodes at 48 kHz, whatever rate it was encoded from.
    "opus": ("ogg", {"opus"}, {SAMPLE_RATE, 48000}),
    # FFmpeg's ADTS demuxer is named "aac".
    "aac": ("aac", {"aac"}, {SAMPLE_RATE}),
    "flac": ("flac", {"flac"}, {SAMPLE_RATE}),
    "wav": ("wav", {"pcm_s16le"}, {SAMPLE_RATE}),
}
CONTAINER_FORMATS = sorted(EXPECTED)


@dataclass
class Encoded:
    pieces: list[bytes]  # what encode() returned, call by call
    tail: bytes  # what finish() returned

    @property
    def data(self) -> bytes:
        return b"".join(self.pieces) + self.tail


@dataclass
class Decoded:
    container: str
    codec: str
    sample_rate: int
    samples: np.ndarray

    @property
    def seconds(self) -> float:
        return self.samples.size / self.sample_rate


def sine(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode_in_pieces(fmt_name: str, samples: np.ndarray, piece: int = PIECE) -> Encoded:
    encoder = StreamingEncoder(FORMATS[fmt_name], INPUT_RATE)
    pieces = [encoder.encode(samples[i : i + piece]) for i in range(0, samples.size, piece)]
    return Encoded(pieces=pieces, tail=encoder.finish())


def decode(data: bytes) -> Decoded:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return Decoded(
            container=container.format.name,
            codec=stream.codec_context.name,
            sample_rate=stream.codec_context.sample_rate,
            samples=np.concatenate(frames).astype(np.float64),
        )


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def sine_fit(samples: np.ndarray, freq: float, rate: int) -> float:
    """How much of `samples` a sine at `freq` (any phase and amplitude) explains, 0..1."""
    t = np.arange(samples.size) / rate
    basis = np.column_stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)])
    coefficients, *_ = np.linalg.lstsq(basis, samples, rcond=None)
    return float(np.linalg.norm(basis @ coefficients) / np.linalg.norm(samples))


@pytest.fixture(scope="module")
def tone() -> np.ndarray:
    return sine(TONE_HZ, SECONDS, INPUT_RATE)


def test_every_api_format_is_covered():
    assert set(FORMATS) == {*EXPECTED, "pcm"}
    assert DEFAULT_FORMAT in FORMATS


@pytest.mark.parametrize("fmt_name", CONTAINER_FORMATS)
def test_it_encodes_a_tone_that_decodes_to_the_right_codec_rate_and_length(fmt_name, tone):
    # given 2 s of a 220 Hz tone at 22050 Hz, fed in 100 ms pieces
    encoded = encode_in_pieces(fmt_name, tone)

    # when the whole response is decoded
    decoded = decode(encoded.data)

    # then it is the format's container and codec, at the API's rate, and 2 s long
    container, codecs, rates = EXPECTED[fmt_name]
    assert decoded.container == container
    assert decoded.codec in codecs
    assert decoded.sample_rate in rates
    assert abs(decoded.seconds - SECONDS) <= 0.1
    # and it still sounds like the tone
    middle = decoded.samples[decoded.sample_rate // 4 : -decoded.sample_rate // 4]
    assert abs(dominant_frequency(middle, decoded.sample_rate) - TONE_HZ) <= 2.0
    assert sine_fit(middle, TONE_HZ, decoded.sample_rate) > 0.95


def test_opus_is_in_an_ogg_container(tone):
    data = encode_in_pieces("opus", tone).data

    assert data[:4] == b"OggS"
    assert b"OpusHead" in data[:200]


def test_aac_is_in_adts_frames(tone):
    data = encode_in_pieces("aac", tone).data

    # every ADTS frame header starts with the 12-bit sync word 0xFFF
    assert data[0] == 0xFF
    assert data[1] & 0xF0 == 0xF0
    frame_length = ((data[3] & 0x03) << 11) | (data[4] << 3) | (data[5] >> 5)
    assert data[frame_length] == 0xFF
    assert data[frame_length + 1] & 0xF0 == 0xF0


def test_flac_starts_with_its_stream_marker(tone):
    data = encode_in_pieces("flac", tone).data

    assert data[:4] == b"fLaC"


def test_pcm_is_raw_s16le_at_24khz(tone):
    encoded = encode_in_pieces("pcm", tone)
    data = encoded.data

    # 2 s at 24000 Hz, two bytes a sample, no header
    assert len(data) % 2 == 0
    assert abs(len(data) - 2 * SAMPLE_RATE * SECONDS) <= 2 * 240
    assert not data.startswith((b"RIFF", b"fLaC", b"OggS", b"ID3"))
    samples = np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
    # the level is the tone's (0.5 peak), not noise or silence
    assert 0.45 <= np.abs(samples).max() <= 0.55
    middle = samples[SAMPLE_RATE // 4 : -SAMPLE_RATE // 4]
    assert abs(dominant_frequency(middle, SAMPLE_RATE) - TONE_HZ) <= 1.0
    # and it is the 220 Hz sine resampled to 24 kHz: a sine fit explains nearly all of it
    assert sine_fit(middle, TONE_HZ, SAMPLE_RATE) > 0.999


def test_pcm_bytes_are_the_input_resampled():
    # given a slow ramp: resampling keeps its values, so every byte can be checked
    ramp = np.linspace(-0.5, 0.5, INPUT_RATE, dtype=np.float32)

    data = encode_in_pieces("pcm", ramp).data

    samples = np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
    expected = np.linspace(-0.5, 0.5, samples.size)
    middle = slice(samples.size // 10, -samples.size // 10)
    assert np.abs(samples[middle] - expected[middle]).max() < 0.01


@pytest.mark.parametrize("fmt_name", sorted(FORMATS))
def test_it_streams_bytes_out_as_audio_comes_in(fmt_name, tone):
    encoded = encode_in_pieces(fmt_name, tone)

    # then most of the twenty 100 ms pieces already produced bytes, before finish()
    non_empty = [piece for piece in encoded.pieces if piece]
    assert len(encoded.pieces) == 20
    assert len(non_empty) >= 10
    assert encoded.pieces[0] or encoded.pieces[1] or encoded.pieces[2]
    # and the bytes before finish() are most of the file
    assert sum(map(len, non_empty)) > len(encoded.tail)


@pytest.mark.parametrize("fmt_name", CONTAINER_FORMATS)
def test_the_bytes_before_finish_are_a_decodable_prefix(fmt_name, tone):
    # a client playing the stream as it arrives can decode the first second
    encoded = encode_in_pieces(fmt_name, tone)
    prefix = b"".join(encoded.pieces[:10])

    decoded = decode(prefix)

    assert decoded.seconds > 0.5
    assert decoded.codec in EXPECTED[fmt_name][1]


def test_wav_has_a_streaming_header(tone):
    data = encode_in_pieces("wav", tone).data

    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    # the RIFF size cannot be patched on a non-seekable sink: it is the streaming 0xFFFFFFFF
    assert struct.unpack("<I", data[4:8])[0] == 0xFFFFFFFF
    data_chunk = data.find(b"data")
    assert data_chunk > 0
    assert struct.unpack("<I", data[data_chunk + 4 : data_chunk + 8])[0] == 0xFFFFFFFF
    # fmt chunk: PCM, mono, 24000 Hz, 16 bits
    fmt_chunk = data.find(b"fmt ")
    audio_format, channels, rate = struct.unpack("<HHI", data[fmt_chunk + 8 : fmt_chunk + 16])
    bits = struct.unpack("<H", data[fmt_chunk + 22 : fmt_chunk + 24])[0]
    assert (audio_format, channels, rate, bits) == (1, 1, SAMPLE_RATE, 16)


def test_wav_header_arrives_with_the_first_audio(tone):
    encoder = StreamingEncoder(FORMATS["wav"], INPUT_RATE)

    first = encoder.encode(tone[:PIECE])
    encoder.close()

    assert first.startswith(b"RIFF")
    assert len(first) > 44


@pytest.mark.parametrize("fmt_name", sorted(FORMATS))
def test_empty_input_returns_no_bytes(fmt_name):
    encoder = StreamingEncoder(FORMATS[fmt_name], INPUT_RATE)

    assert encoder.encode(np.zeros(0, dtype=np.float32)) == b""
    encoder.close()


@pytest.mark.parametrize("fmt_name", sorted(FORMATS))
def test_empty_pieces_between_audio_change_nothing(fmt_name, tone):
    # given the same audio, once with empty pieces in between
    plain = encode_in_pieces(fmt_name, tone[: INPUT_RATE // 2]).data
    encoder = StreamingEncoder(FORMATS[fmt_name], INPUT_RATE)
    out = []
    for i in range(0, INPUT_RATE // 2, PIECE):
        out.append(encoder.encode(np.zeros(0, dtype=np.float32)))
        out.append(encoder.encode(tone[i : min(i + PIECE, INPUT_RATE // 2)]))
    out.append(encoder.finish())

    # then the decoded audio is the same length
    if fmt_name == "pcm":
        assert b"".join(out) == plain
    else:
        assert decode(b"".join(out)).samples.size == decode(plain).samples.size


@pytest.mark.parametrize("fmt_name", sorted(FORMATS))
def test_close_without_finish_does_not_raise(fmt_name, tone):
    encoder = StreamingEncoder(FORMATS[fmt_name], INPUT_RATE)
    encoder.encode(tone[: 3 * PIECE])

    # when the client goes away mid-stream
    encoder.close()
    encoder.close()

    # a finished-or-closed encoder has nothing more to give
    assert encoder.finish() == b""


@pytest.mark.parametrize("fmt_name", sorted(FORMATS))
def test_close_before_any_audio_does_not_raise(fmt_name):
    encoder = StreamingEncoder(FORMATS[fmt_name], INPUT_RATE)

    encoder.close()

    assert encoder.finish() == b""


@pytest.mark.parametrize("fmt_name", sorted(FORMATS))
def test_finish_twice_returns_nothing_the_second_time(fmt_name, tone):
    encoder = StreamingEncoder(FORMATS[fmt_name], INPUT_RATE)
    encoder.encode(tone[:PIECE])
    encoder.finish()

    assert encoder.finish() == b""
    encoder.close()


@pytest.mark.parametrize("input_rate", [16000, 22050, 24000, 44100, 48000])
def test_any_input_rate_comes_out_at_24khz(input_rate):
    samples = sine(TONE_HZ, 1.0, input_rate)
    encoder = StreamingEncoder(FORMATS["pcm"], input_rate)

    data = encoder.encode(samples) + encoder.finish()

    out = np.frombuffer(data, dtype="<i2").astype(np.float64)
    assert abs(out.size - SAMPLE_RATE) <= 240
    middle = out[SAMPLE_RATE // 4 : -SAMPLE_RATE // 4]
    assert abs(dominant_frequency(middle, SAMPLE_RATE) - TONE_HZ) <= 2.0


def test_odd_piece_sizes_encode_the_same_audio_length(tone):
    # given pieces smaller and larger than every codec's frame size, not aligned to it
    encoded = encode_in_pieces("flac", tone, piece=997)

    decoded = decode(encoded.data)

    assert abs(decoded.seconds - SECONDS) <= 0.01
