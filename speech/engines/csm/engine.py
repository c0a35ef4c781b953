"""The CSM-1B engine: voice reference as context, chunked text, audio streamed frame by frame."""

import hashlib
import logging
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from django.conf import settings
from transformers import CsmForConditionalGeneration

from speech.audio.decode import AudioDecodeError, decode_audio
from speech.audio.formats import SAMPLE_RATE
from speech.engines.base import (
    Capabilities,
    ContextTurn,
    Engine,
    EngineError,
    SynthesisParams,
    VoiceSpec,
)
from speech.engines.csm.batching import CsmBatch, PrefixCache, bucket_sizes, span_sizes
from speech.engines.csm.capture import capture_plan, shape_label
from speech.engines.csm.codec import (
    StreamingDecoder,
    codec_fingerprint,
    encode_audio,
)
from speech.engines.csm.generation import Sampling, lay_out_codebook_heads
from speech.engines.csm.joiner import ChunkJoiner
from speech.engines.csm.loading import CsmOptions, LoadedCsm, describe_failure, load_csm
from speech.engines.csm.prompt import PromptBuilder, Segment, fit_context
from speech.engines.csm.standard_voices import STANDARD_VOICE_NAMES, standard_voices_prepare
from speech.engines.references import (
    ReferenceProvider,
    ReferencesUnavailable,
    StoredCodes,
    StoredReference,
)
from speech.engines.scheduler import FrameScheduler, Session

logger = logging.getLogger(__name__)

FRAME_RATE = 12.5
SAMPLES_PER_FRAME = int(SAMPLE_RATE / FRAME_RATE)
DEFAULT_TEMPERATURE = 0.9
DEFAULT_TOPK = 50
DEFAULT_VOICE_CONSISTENCY = 1.0
# The first audio leaves after this many frames (240 ms), later audio in pieces of a second.
FIRST_EMIT_FRAMES = 3
EMIT_FRAMES = 12
# CSM has no reliable end of speech: bound each chunk by its text, generously (people speak
# 12-15 characters a second; this allows 4 and a pause before and after).
_SECONDS_PER_CHARACTER = 0.25
_SECONDS_SLACK = 2.0
_CROSSFADE_SECONDS = 0.02
# Longest reference or context audio decoded for a prompt.
MAX_CONTEXT_AUDIO_SECONDS = 120.0
_REFERENCE_CACHE_SIZE = 64


def frame_bound(text: str) -> int:
    """The most frames a chunk of `text` may take."""
    return math.ceil((_SECONDS_SLACK + _SECONDS_PER_CHARACTER * len(text)) * FRAME_RATE)


class CsmEngine(Engine):
    name = "csm"
    capabilities = Capabilities(
        sample_rate=SAMPLE_RATE,
        cloning=True,
        context=True,
        streaming=True,
        batching=True,
        native_speed_range=None,
        # A chunk, its voice reference and the previous chunk fit the 2048-position window.
        max_chunk_chars=200,
        watermarked=True,
    )
    loads_in_background = True

    def __init__(self, references: ReferenceProvider | None = None) -> None:
        if references is None:
            # Every voice CSM speaks is a stored reference: without a provider it cannot speak.
            raise RuntimeError(
                "the CSM engine needs a reference provider; register one with "
                "speech.engines.registry.engines_use_references"
            )
        super().__init__(references)
        self._provider: ReferenceProvider = references
        self._loaded: LoadedCsm | None = None
        self._builder: PromptBuilder | None = None
        self._batch: CsmBatch | None = None
        self.prefixes: PrefixCache | None = None
        self._codec_fingerprint = ""
        self._decodes_together = False
        # Owns the model: concurrent requests are stepped together, one frame at a time.
        self._scheduler: FrameScheduler | None = None
        self._references: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._references_lock = threading.Lock()

    # --- loading --------------------------------------------------------------------------

    @staticmethod
    def options() -> CsmOptions:
        return CsmOptions(
            model=settings.CSM_MODEL,
            token=settings.HF_TOKEN,
            device=settings.CSM_DEVICE,
            dtype=settings.CSM_DTYPE,
            device_map=settings.CSM_DEVICE_MAP or "",
        )

    def _load(self) -> None:
        loaded = load_csm(self.options())
        lay_out_codebook_heads(loaded.model)
        self._loaded = loaded
        self._builder = PromptBuilder(loaded.model, loaded.processor)
        self._codec_fingerprint = codec_fingerprint(loaded.model.codec_model)
        self.prefixes = PrefixCache(settings.CSM_PREFIX_CACHE_MB * 2**20)
        self._batch = self._make_batch(loaded)
        self._decodes_together = loaded.device.type == "cuda"
        self._scheduler = FrameScheduler(
            self._batch,
            max_batch=settings.CSM_MAX_BATCH,
            max_queue=settings.CSM_MAX_QUEUE,
            name="csm-scheduler",
        )
        self._warm_up()
        if self._batch.capture is not None:
            self._batch.capture.start()
        if settings.CSM_PREPARE_VOICES:
            # In the background: the engine serves cloned voices (and standard voices, each
            # prepared on first use if the preparation has not reached it) meanwhile.
            threading.Thread(
                target=self._prepare_standard_voices, name="csm-voices", daemon=True
            ).start()

    def _make_batch(self, loaded: LoadedCsm) -> CsmBatch:
        """The running batch, with its frame step captured where it can be (one log line says
        which path runs)."""
        assert self._builder is not None
        where = f"{loaded.device} in {_dtype_name(loaded.model)}"
        plan = None
        if not settings.CSM_CAPTURE or settings.CSM_DEVICE_MAP:
            why = "CSM_CAPTURE is off" if not settings.CSM_CAPTURE else "a device map spreads it"
            logger.info("CSM frame step: eager on %s (%s)", where, why)
        else:
            plan = capture_plan(
                loaded.device,
                bucket_sizes(settings.CSM_MAX_BATCH),
                span_sizes(self._builder.max_positions),
                requested=settings.CSM_CAPTURE_BUCKETS,
                cache_dir=settings.CSM_COMPILE_CACHE_DIR,
            )
            logger.info(
                "CSM frame step: captured on %s (%s; compiling %s in the background, "
                "the eager step serves meanwhile)",
                where,
                plan.mode,
                ", ".join(shape_label(shape) for shape in plan.shapes),
            )
        return CsmBatch(
            loaded.model,
            self._builder,
            self.prefixes,
            max_rows=settings.CSM_MAX_BATCH,
            capture=plan,
        )

    def runtime_details(self) -> dict[str, Any]:
        """For /readyz and /metrics: device, dtype, whether the step is captured (and which
        shapes are), and how many steps ran each way."""
        if self._loaded is None or self._batch is None:
            return {}
        batch = self._batch
        report: dict[str, Any] = {
            "device": str(self._loaded.device),
            "dtype": _dtype_name(self._loaded.model),
            "captured": batch.capture is not None,
            "steps": {"captured": batch.steps_captured, "eager": batch.steps_eager},
        }
        if batch.capture is not None:
            report["capture"] = batch.capture.report()
        return report

    def _warm_up(self) -> None:
        """A few frames, alone and then two at once, before the engine says it is ready:
        kernels and memory pools for both bucket sizes are made now rather than on the first
        callers' time (the captured step compiles afterwards, in the background)."""
        params = SynthesisParams(seed=0, max_audio_ms=int(FIRST_EMIT_FRAMES * 1000 / FRAME_RATE))

        def speak() -> None:
            for _ in self._speak(["Warming up."], 0, None, [], params):
                pass

        speak()
        with ThreadPoolExecutor(2, thread_name_prefix="csm-warm-up") as pool:
            for done in [pool.submit(speak) for _ in range(2)]:
                done.result()  # a failure here is a failure to load

    def _prepare_standard_voices(self) -> None:
        try:
            self.standard_voices_prepare()
        except Exception:
            logger.exception("preparing the standard voices failed; they are made on first use")

    def standard_voices_prepare(
        self, names: Iterable[str] = STANDARD_VOICE_NAMES, *, rebuild: bool = False
    ) -> list[StoredReference]:
        """Make sure the standard voices in `names` are stored; regenerate them when `rebuild`."""
        return standard_voices_prepare(
            self.generate_reference, self._provider, names=names, rebuild=rebuild
        )

    def describe_load_failure(self, exc: Exception) -> str:
        return describe_failure(exc, self.options())

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()

    def count_input_tokens(self, text: str) -> int:
        if self._loaded is None:
            return len(text)
        return len(self._loaded.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    # --- speaking -------------------------------------------------------------------------

    def synthesize(
        self, chunks: Sequence[str], voice: VoiceSpec, params: SynthesisParams
    ) -> Iterator[np.ndarray]:
        self.ensure_ready()
        return self._guarded(self._voice_and_speak(chunks, voice, params))

    def _voice_and_speak(
        self, chunks: Sequence[str], voice: VoiceSpec, params: SynthesisParams
    ) -> Iterator[np.ndarray]:
        try:
            reference = self._reference(voice)
        except (OSError, AudioDecodeError) as exc:
            logger.exception("reference audio of voice %s cannot be read", voice.name)
            raise EngineError(
                f"the reference audio of voice '{voice.name}' cannot be read.", retryable=False
            ) from exc
        assert self._builder is not None
        turns = _newest_that_may_fit(voice.context, self._builder.max_positions)
        context = [self._encode_turn(turn) for turn in turns]
        speaker = reference.speaker if reference is not None else voice.speaker_id
        yield from self._speak(chunks, speaker, reference, context, params)

    @staticmethod
    def _guarded(audio: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Model failures as EngineErrors: out of memory is worth a retry, the rest is not."""
        try:
            yield from audio
        except torch.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise EngineError("the GPU ran out of memory; retry shortly.", retryable=True) from exc
        except ReferencesUnavailable as exc:
            # Looking up or storing a voice's reference needs the provider's store.
            raise EngineError(str(exc), retryable=True) from exc
        except RuntimeError as exc:
            logger.exception("CSM generation failed")
            raise EngineError("the model failed to generate audio.", retryable=False) from exc

    def generate_reference(self, speaker: int, text: str, seed: int) -> np.ndarray:
        """Audio of `text` with no context: how a standard voice's reference is made."""
        params = SynthesisParams(
            temperature=DEFAULT_TEMPERATURE, topk=DEFAULT_TOPK, seed=seed, max_audio_ms=10_000
        )
        audio = self._speak([text], speaker, None, [], params)
        return np.concatenate(list(audio))

    def _speak(
        self,
        chunks: Sequence[str],
        speaker: int,
        reference: Segment | None,
        context: list[Segment],
        params: SynthesisParams,
    ) -> Iterator[np.ndarray]:
        """Each chunk conditioned on the context, the voice reference and the previous chunk."""
        assert self._loaded is not None and self._batch is not None
        assert self._scheduler is not None
        with self._scheduler.session(params.owner) as session:
            seed = params.seed if params.seed is not None else secrets.randbits(63)
            sampling = Sampling(
                temperature=params.temperature or DEFAULT_TEMPERATURE,
                topk=params.topk or DEFAULT_TOPK,
            )
            frames_left = math.ceil((params.max_audio_ms or 90_000) / 1000 * FRAME_RATE)
            frames_made = 0
            consistency = (
                DEFAULT_VOICE_CONSISTENCY
                if params.voice_consistency is None
                else params.voice_consistency
            )
            joiner = ChunkJoiner(int(_CROSSFADE_SECONDS * SAMPLE_RATE))
            previous: Segment | None = None
            first_audio = True
            for index, text in enumerate(chunks):
                if frames_left <= 0:
                    break
                voice_turn = (
                    reference if index == 0 or reference is None else _keep(reference, consistency)
                )
                turns = [t for t in (voice_turn, *context, previous) if t is not None]
                codes: list[torch.Tensor] = []
                for piece in self._chunk_frames(
                    session,
                    Segment(speaker, text),
                    turns,
                    min(frames_left, frame_bound(text)),
                    (seed, frames_made),
                    sampling,
                    first_audio,
                ):
                    codes.append(piece.codes)
                    first_audio = False
                    yield joiner.feed(piece.audio)
                made = sum(c.shape[0] for c in codes)
                frames_left -= made
                frames_made += made + 1  # and the end-of-audio frame, if it came
                previous = Segment(speaker, text, torch.cat(codes)) if codes else previous
                joiner.end_chunk()
            yield joiner.finish()

    def _chunk_frames(
        self,
        session: Session,
        target: Segment,
        turns: list[Segment],
        limit: int,
        noise: tuple[int, int],
        sampling: Sampling,
        first_audio: bool,
    ) -> Iterator["_Piece"]:
        """Generate one chunk; yield its codes and audio every few frames. `noise` is the
        request's seed and the number of the chunk's first frame in the request."""
        assert self._loaded is not None and self._builder is not None
        builder = self._builder
        kept = fit_context(builder, turns, target, reserve=limit)
        prompt_length = sum(builder.length(t) for t in kept) + builder.length(target)
        limit = min(limit, builder.max_positions - prompt_length)
        if limit <= 0:
            return
        decoder = StreamingDecoder(self._loaded.model.codec_model)
        seed, first_frame = noise
        stream = session.submit([*kept, target], sampling, seed, limit, first_frame=first_frame)
        try:
            pending: list[torch.Tensor] = []
            emit_after = FIRST_EMIT_FRAMES if first_audio else EMIT_FRAMES
            for frame in stream:
                pending.append(frame)
                if len(pending) >= emit_after:
                    yield self._decode(decoder, pending)
                    pending, emit_after = [], EMIT_FRAMES
            if pending:
                yield self._decode(decoder, pending)
        finally:
            # A caller that stops reading (client gone) frees its batch row at the next step.
            stream.cancel()

    def _decode(self, decoder: StreamingDecoder, pending: list[torch.Tensor]) -> "_Piece":
        assert self._scheduler is not None
        codes = torch.stack(pending)
        if self._decodes_together:
            # On a GPU, streams that emit at the same step decode together (one convolution
            # stack for all), so decoding does not serialise behind the frames. Their audio
            # equals each decoded alone within float rounding; the codes are the same.
            audio = self._scheduler.call_batched(StreamingDecoder.decode_items, (decoder, codes))
        else:
            # On a CPU each alone: the same audio to the bit, alone or among others.
            audio = self._scheduler.call(decoder.decode, codes)
        return _Piece(codes=codes, audio=audio.numpy())

    # --- voices and context ---------------------------------------------------------------

    def _reference(self, voice: VoiceSpec) -> Segment | None:
        """The voice's reference segment: a cloned voice's, or a standard voice's stored one."""
        stored = self._stored_reference(voice)
        if stored is None:
            return None
        codes = self._reference_codes(stored)
        return Segment(
            stored.speaker,
            stored.text,
            codes,
            pinned=True,
            prefix_key=f"{stored.audio}|{stored.speaker}|{stored.text}",
        )

    def _stored_reference(self, voice: VoiceSpec) -> StoredReference | None:
        cloned = voice.stored_reference
        if cloned is not None or voice.standard is None:
            return cloned
        return (
            self._provider.builtin_get(voice.standard)
            or self.standard_voices_prepare([voice.standard])[0]
        )

    def _reference_codes(self, stored: StoredReference) -> torch.Tensor:
        """Codec codes of a stored reference: from this process's LRU, else as stored with the
        voice, else encoded now (and stored with the voice for every later request)."""
        key = (stored.audio, stored.text)
        with self._references_lock:
            if key in self._references:
                self._references.move_to_end(key)
                return self._references[key]
        tag = self._codes_tag(stored.audio)
        voice_id = stored.voice_id
        kept = self._provider.codes_get(voice_id=voice_id, tag=tag) if voice_id else None
        if kept is None:
            samples = decode_audio(
                self._provider.reference_audio(stored.audio),
                sample_rate=SAMPLE_RATE,
                max_seconds=MAX_CONTEXT_AUDIO_SECONDS,
            )
            codes = self._encode(samples)
            if voice_id:
                self._provider.codes_store(voice_id=voice_id, tag=tag, codes=_to_stored(codes))
        else:
            codes = _from_stored(kept)
        with self._references_lock:
            self._references[key] = codes
            while len(self._references) > _REFERENCE_CACHE_SIZE:
                self._references.popitem(last=False)
        return codes

    def _codes_tag(self, audio: str) -> str:
        return hashlib.sha256(f"{self._codec_fingerprint}|{audio}".encode()).hexdigest()

    def reference_created(self, reference: StoredReference) -> None:
        if settings.CSM_PREPARE_VOICES:
            threading.Thread(
                target=self.reference_prepare,
                args=(reference,),
                name="csm-voice-codes",
                daemon=True,
            ).start()

    def reference_prepare(self, reference: StoredReference) -> None:
        """Compute a just-created voice's reference codes now, so its first request need not."""
        try:
            self._reference_codes(reference)
        except Exception:
            logger.exception(
                "preparing the codes of voice %s failed; made on first use", reference.voice_id
            )

    def _encode_turn(self, turn: ContextTurn) -> Segment:
        return Segment(turn.speaker, turn.text, self._encode(turn.samples))

    def _encode(self, samples: np.ndarray) -> torch.Tensor:
        assert self._loaded is not None and self._scheduler is not None
        codec = self._loaded.model.codec_model
        return self._scheduler.call(encode_audio, codec, torch.from_numpy(samples)).cpu()


def _dtype_name(model: CsmForConditionalGeneration) -> str:
    """The frame step's precision as /readyz and the log name it ("bfloat16", "float32")."""
    return str(model.lm_head.weight.dtype).removeprefix("torch.")


def _to_stored(codes: torch.Tensor) -> StoredCodes:
    data = codes.to(torch.int16).numpy().astype("<i2").tobytes()
    return StoredCodes(data=data, codebooks=codes.shape[1])


def _from_stored(kept: StoredCodes) -> torch.Tensor:
    array = np.frombuffer(kept.data, dtype="<i2").astype(np.int64).reshape(-1, kept.codebooks)
    return torch.from_numpy(array)


class _Piece:
    __slots__ = ("audio", "codes")

    def __init__(self, codes: torch.Tensor, audio: np.ndarray) -> None:
        self.codes = codes
        self.audio = audio


def _newest_that_may_fit(turns: Sequence[ContextTurn], positions: int) -> list[ContextTurn]:
    """The newest turns whose audio alone fits the window: older ones would be dropped after
    encoding anyway (`fit_context` trims exactly), so they are not encoded at all."""
    kept: list[ContextTurn] = []
    for turn in reversed(turns):
        positions -= math.ceil(turn.samples.size / SAMPLES_PER_FRAME) + 1
        if positions < 0:
            break
        kept.append(turn)
    kept.reverse()
    return kept


def _keep(reference: Segment, fraction: float) -> Segment | None:
    """The first `fraction` of a reference (frames and words alike) for later chunks."""
    assert reference.codes is not None
    if fraction >= 1.0:
        return reference
    frames = round(reference.codes.shape[0] * fraction)
    words = reference.text.split()
    if frames == 0:
        return None
    return Segment(
        reference.speaker,
        " ".join(words[: max(1, round(len(words) * fraction))]),
        reference.codes[:frames],
        pinned=True,
        prefix_key=None if reference.prefix_key is None else f"{reference.prefix_key}|{frames}",
    )
