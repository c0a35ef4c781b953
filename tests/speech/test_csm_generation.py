"""CSM's generation pieces on the tiny random checkpoint: frame loop, prompt, codec, joining.

The oracles are transformers' own: greedy `model.generate` for the frame step, the processor and its
chat template for the prompt, `codec_model.decode` of the whole clip for the streaming decoder.
The tiny checkpoint has the real codebook count, codebook size and frame rate, so shapes and
limits are the real model's; its random weights make every id likely, special ids included.
"""

import copy

import numpy as np
import pytest
import torch

from speech.engines.base import SynthesisParams, VoiceSpec
from speech.engines.csm import engine as engine_module
from speech.engines.csm.batching import CsmBatch, PrefixCache
from speech.engines.csm.codec import StreamingDecoder, encode_audio
from speech.engines.csm.engine import (
    DEFAULT_TEMPERATURE,
    DEFAULT_TOPK,
    FRAME_RATE,
    SAMPLES_PER_FRAME,
    frame_bound,
)
from speech.engines.csm.generation import Sampling
from speech.engines.csm.joiner import ChunkJoiner
from speech.engines.csm.prompt import PromptBuilder, Segment, fit_context
from speech.engines.scheduler import FrameJob, FrameScheduler
from tests.support.audio import tone

SENTENCE = "Hello there, how are you today?"


@pytest.fixture
def model(csm_engine):
    return csm_engine._loaded.model


@pytest.fixture
def processor(csm_engine):
    return csm_engine._loaded.processor


@pytest.fixture
def builder(model, processor) -> PromptBuilder:
    return PromptBuilder(model, processor)


@pytest.fixture
def batch(model, builder) -> CsmBatch:
    return CsmBatch(model, builder, None, max_rows=4)


def turn(speaker: int, text: str, audio: np.ndarray) -> dict:
    """A conversation turn with audio, as the processor's chat template takes it."""
    content = [{"type": "text", "text": text}, {"type": "audio", "path": audio}]
    return {"role": str(speaker), "content": content}


def random_codes(count: int, seed: int = 0) -> torch.Tensor:
    """Valid codec codes (count, 32), as a generator could have drawn them."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2048, (count, 32), generator=generator)


def run_frames(
    batch: CsmBatch, segments: list[Segment], sampling: Sampling, count: int, seed: int = 0
) -> torch.Tensor:
    """`count` frames after the prompt `segments`, the request alone in the batch:
    (1, count, codebooks)."""
    return solo_codes(batch, FrameJob(segments, sampling, seed, count), count).unsqueeze(0)


def generate_greedy_codes(model, count: int, **inputs) -> torch.Tensor:
    """transformers' own CSM generation, greedy, with the ids the codec cannot decode banned."""
    special = list(range(int(model.config.codec_config.codebook_size), model.config.vocab_size))
    # generate() stores the depth_decoder_* arguments in the depth decoder's generation config.
    saved = copy.deepcopy(model.depth_decoder.generation_config)
    try:
        return model.generate(
            **inputs,
            max_new_tokens=count,
            do_sample=False,
            suppress_tokens=special,
            depth_decoder_do_sample=False,
            depth_decoder_suppress_tokens=special,
        )
    finally:
        model.depth_decoder.generation_config = saved


GREEDY = Sampling(temperature=1.0, topk=1)


# --- the frame step ---------------------------------------------------------------------------


def test_the_frame_step_computes_what_model_generate_computes(model, builder, batch):
    # given a text prompt and transformers' greedy generation of 12 frames from it (greedy:
    # the arg max of the same logits, so the model's arithmetic is compared, not the noise)
    target = Segment(0, SENTENCE)
    expected = generate_greedy_codes(
        model, count=12, input_ids=torch.tensor([builder.text_ids(target)])
    )
    assert expected.shape == (1, 12, 32)
    # when the frame step takes the same prompt greedily
    codes = run_frames(batch, [target], GREEDY, 12)
    # then every code of every frame is the same
    assert torch.equal(codes, expected)


def test_with_context_audio_the_frame_step_still_matches_generate(model, processor, builder, batch):
    # given a conversation with an earlier turn's audio, as the processor prepares it for
    # generate (which encodes the audio itself), and the same turn as codes for the builder
    audio = tone(2.0)
    conversation = [
        turn(1, "The quick brown fox.", audio),
        {"role": "0", "content": [{"type": "text", "text": SENTENCE}]},
    ]
    inputs = processor.apply_chat_template(conversation, tokenize=True, return_dict=True)
    expected = generate_greedy_codes(model, count=12, **inputs)
    codes_of_turn = encode_audio(model.codec_model, torch.from_numpy(audio))
    prompt = [Segment(1, "The quick brown fox.", codes_of_turn), Segment(0, SENTENCE)]
    # when
    codes = run_frames(batch, prompt, GREEDY, 12)
    # then
    assert torch.equal(codes, expected)


def test_no_code_at_or_above_the_codebook_size_is_ever_drawn(model, batch):
    # given a hot sampling with the widest top-k, over a model whose every head favours the ids
    # the codec cannot decode (2048 and up)
    assert batch.frame_step.codebook_limit == 2048 < model.config.vocab_size
    hot = Sampling(temperature=2.0, topk=100)
    heads = [model.lm_head.weight, model.depth_decoder.codebooks_head.weight]
    saved = [head.detach().clone() for head in heads]
    with torch.no_grad():
        model.lm_head.weight[2048:] += 50.0
        model.depth_decoder.codebooks_head.weight[:, :, 2048:] += 50.0
    try:
        # when 40 frames are drawn
        codes = run_frames(batch, [Segment(0, SENTENCE)], hot, 40, seed=5)
    finally:
        with torch.no_grad():
            for head, kept in zip(heads, saved, strict=True):
                head.copy_(kept)
    # then no code is one the codec cannot decode
    assert codes.shape == (1, 40, 32)
    assert int(codes.min()) >= 0
    assert int(codes.max()) < 2048


def test_a_frame_of_end_of_audio_ids_ends_the_request(batch, monkeypatch):
    # given a depth decoder whose every code is the end-of-audio id
    step = batch.frame_step

    def eos_depth(hidden, first, state, noise):
        return torch.full((first.shape[0], step.num_codebooks), step.eos_id)

    monkeypatch.setattr(step, "_depth", eos_depth)
    job = FrameJob([Segment(0, SENTENCE)], Sampling(0.9, 50), 0, 10)
    batch.join(batch.prefill(job))
    # when
    _, ended = batch.step([job])
    # then
    assert ended == [True]


# --- decoding ---------------------------------------------------------------------------------


def test_streaming_decode_of_uneven_pieces_equals_the_whole_clip_decode(model):
    # given 160 frames (past the decoder transformer's 250-position window once upsampled)
    codes = random_codes(160)
    with torch.inference_mode():
        whole = model.codec_model.decode(codes.T.unsqueeze(0)).audio_values[0, 0].float()
    sizes = [1, 3, 7, 12, 1, 25, 12, 40, 2, 57]
    assert sum(sizes) == 160
    # when
    decoder = StreamingDecoder(model.codec_model)
    pieces, start = [], 0
    for size in sizes:
        pieces.append(decoder.decode(codes[start : start + size]))
        start += size
    # then each piece is its frames' samples, and together they are the whole decode
    assert [piece.shape[0] for piece in pieces] == [size * SAMPLES_PER_FRAME for size in sizes]
    streamed = torch.cat(pieces)
    assert streamed.shape == whole.shape
    assert float(whole.abs().max()) > 0.01
    assert float((streamed - whole).abs().max()) < 1e-4


def test_streaming_decode_of_no_frames_is_no_audio(model):
    assert StreamingDecoder(model.codec_model).decode(random_codes(0)).shape == (0,)


def test_the_engine_streams_exactly_the_whole_clip_decode_of_the_codes_it_draws(
    csm_engine, model, batch, monkeypatch
):
    # given the codes the engine decodes are recorded as it streams
    decoded: list[torch.Tensor] = []
    decode = csm_engine._decode

    def recording_decode(decoder, pending):
        piece = decode(decoder, pending)
        decoded.append(piece.codes)
        return piece

    monkeypatch.setattr(csm_engine, "_decode", recording_decode)
    # when a seeded request of one chunk with no voice reference is spoken (2 s: 25 frames)
    audio = list(
        csm_engine.synthesize(
            [SENTENCE], VoiceSpec(name="plain"), SynthesisParams(seed=11, max_audio_ms=2000)
        )
    )
    streamed = np.concatenate(audio)
    # then the same prompt and seed drawn independently give the same 25 frames
    sampling = Sampling(DEFAULT_TEMPERATURE, DEFAULT_TOPK)
    expected = run_frames(batch, [Segment(0, SENTENCE)], sampling, 25, seed=11)
    assert [piece.shape[0] for piece in decoded] == [3, 12, 10]
    assert torch.equal(torch.cat(decoded), expected[0])
    # and the streamed audio is the whole-clip decode of those frames
    with torch.inference_mode():
        whole = model.codec_model.decode(expected[0].T.unsqueeze(0)).audio_values[0, 0]
    assert streamed.dtype == np.float32
    assert streamed.shape == (25 * SAMPLES_PER_FRAME,)
    assert np.abs(streamed - whole.numpy()).max() < 1e-4


# --- the prompt -------------------------------------------------------------------------------


def test_text_ids_are_the_processors_own_tokens_of_the_turn(builder, processor):
    # given
    conversation = [{"role": "3", "content": [{"type": "text", "text": SENTENCE}]}]
    expected = processor.apply_chat_template(conversation, tokenize=True, return_dict=True)
    # when
    ids = builder.text_ids(Segment(3, SENTENCE))
    # then
    assert ids == expected["input_ids"][0].tolist()
    assert processor.tokenizer.decode(ids) == f"<|begin_of_text|>[3]{SENTENCE}<|end_of_text|>"


def test_a_context_segment_takes_its_text_its_frames_and_an_end_of_audio_frame(model, builder):
    # given a turn with 9 frames of audio and the turn to speak
    codes = random_codes(9)
    context = Segment(1, "The quick brown fox.", codes)
    target = Segment(0, SENTENCE)
    text = len(builder.text_ids(context))
    # when
    embeds = builder.embed([context, target])
    # then
    assert builder.length(context) == text + 9 + 1
    assert builder.length(target) == len(builder.text_ids(target))
    assert embeds.shape == (1, text + 10 + builder.length(target), model.config.hidden_size)
    with torch.inference_mode():
        audio = model.backbone_model.embed_tokens(codes.unsqueeze(0))[0]
        eos = model.backbone_model.embed_tokens(torch.zeros(1, 1, 32, dtype=torch.long))[0]
        target_text = model.embed_text_tokens(torch.tensor(builder.text_ids(target)))
    # the turn's frames follow its text, then the end-of-audio frame, then the next turn
    assert torch.equal(embeds[0, text : text + 9], audio)
    assert torch.equal(embeds[0, text + 9], eos[0])
    assert torch.equal(embeds[0, text + 10 :], target_text)


def test_prompt_embeddings_equal_transformers_merge_of_text_and_audio(model, processor, builder):
    # given the processor's conversation with two audio turns
    first, second = tone(1.2, 180.0), tone(0.8, 440.0)
    conversation = [
        turn(0, "One.", first),
        turn(1, "Two.", second),
        {"role": "0", "content": [{"type": "text", "text": SENTENCE}]},
    ]
    inputs = processor.apply_chat_template(conversation, tokenize=True, return_dict=True)
    with torch.inference_mode():
        expected = model._merge_input_ids_with_input_values(
            input_ids=inputs["input_ids"],
            input_values=inputs["input_values"],
            input_values_cutoffs=inputs["input_values_cutoffs"],
        )["inputs_embeds"]
    codec = model.codec_model
    segments = [
        Segment(0, "One.", encode_audio(codec, torch.from_numpy(first))),
        Segment(1, "Two.", encode_audio(codec, torch.from_numpy(second))),
        Segment(0, SENTENCE),
    ]
    # when
    embeds = builder.embed(segments)
    # then
    assert embeds.shape == expected.shape
    assert torch.allclose(embeds, expected, atol=1e-6)


def test_fit_context_drops_the_oldest_turns_first_and_keeps_the_order(builder):
    # given four turns, each about 410 positions, and a 2048-position window
    turns = [Segment(i % 2, f"Turn number {i}.", random_codes(400, seed=i)) for i in range(4)]
    target = Segment(0, SENTENCE)
    sizes = [builder.length(turn) for turn in turns]
    # when the generated frames need room for all but about two turns
    reserve = builder.max_positions - builder.length(target) - sizes[2] - sizes[3] - 5
    kept = fit_context(builder, turns, target, reserve=reserve)
    # then the two newest turns are kept, oldest of them first
    assert kept == turns[2:]
    # and with room for everything, everything is kept in order
    assert fit_context(builder, turns, target, reserve=10) == turns


def test_fit_context_never_leaves_a_gap_in_the_conversation(builder):
    # given an old short turn, a turn too long for the window, and a new short turn
    old = Segment(1, "Old.", random_codes(20, seed=1))
    huge = Segment(0, "Long.", random_codes(3000, seed=2))
    new = Segment(1, "New.", random_codes(20, seed=3))
    # when
    kept = fit_context(builder, [old, huge, new], Segment(0, SENTENCE), reserve=100)
    # then only the turns after the one that does not fit remain
    assert kept == [new]


def test_fit_context_keeps_the_voice_reference_before_newer_turns(builder):
    # given a long pinned voice reference, then a previous chunk that would crowd it out
    reference = Segment(0, "The voice.", random_codes(900, seed=4), pinned=True)
    previous = Segment(0, "The previous chunk.", random_codes(700, seed=5))
    target = Segment(0, SENTENCE)
    reserve = builder.max_positions - builder.length(target) - builder.length(reference) - 5
    # when only the reference fits beside the frames to generate
    kept = fit_context(builder, [reference, previous], target, reserve=reserve)
    # then the reference stays and the newer turn goes
    assert kept == [reference]
    # and a reference that cannot fit at all makes room for what can
    small = Segment(0, "Short.", random_codes(10, seed=6))
    huge = Segment(0, "Huge.", random_codes(3000, seed=7), pinned=True)
    assert fit_context(builder, [huge, small], target, reserve=100) == [small]


def test_fit_context_respects_the_window(builder):
    turns = [Segment(0, f"Turn {i}.", random_codes(300 + 37 * i, seed=i)) for i in range(8)]
    target = Segment(1, SENTENCE)
    for reserve in (0, 13, 125, 700, 2000):
        kept = fit_context(builder, turns, target, reserve=reserve)
        used = sum(builder.length(turn) for turn in kept) + builder.length(target) + reserve
        assert used <= builder.max_positions
        dropped = turns[: len(turns) - len(kept)]
        assert kept == turns[len(dropped) :]
        if dropped:
            # the next older turn would not have fitted
            assert used + builder.length(dropped[-1]) > builder.max_positions


# --- joining chunks ---------------------------------------------------------------------------


def joined(joiner: ChunkJoiner, chunks: list[list[np.ndarray]]) -> np.ndarray:
    out = []
    for pieces in chunks:
        for piece in pieces:
            out.append(joiner.feed(piece))
        joiner.end_chunk()
    out.append(joiner.finish())
    return np.concatenate(out)


def test_chunks_join_with_one_overlap_per_seam_and_nothing_else_changed():
    # given three chunks of distinct values, fed in uneven pieces
    overlap = 480
    rng = np.random.default_rng(0)
    chunks = [rng.uniform(-1, 1, size).astype(np.float32) for size in (5000, 3700, 2600)]
    pieces = [
        [chunks[0][:7], chunks[0][7:1900], chunks[0][1900:]],
        [chunks[1][:2000], chunks[1][2000:]],
        [chunks[2]],
    ]
    # when
    out = joined(ChunkJoiner(overlap), pieces)
    # then the length is the sum less one overlap per seam
    assert out.size == sum(chunk.size for chunk in chunks) - overlap * 2
    # and outside the seams every sample passes through, in order
    a, b, c = chunks
    seam1 = a.size - overlap
    seam2 = seam1 + b.size - overlap
    assert np.array_equal(out[:seam1], a[:-overlap])
    assert np.array_equal(out[seam1 + overlap : seam2], b[overlap:-overlap])
    assert np.array_equal(out[seam2 + overlap :], c[overlap:])
    # and each seam mixes the end of one chunk into the start of the next
    ramp = np.linspace(0.0, 1.0, overlap, dtype=np.float32)
    np.testing.assert_allclose(
        out[seam1 : seam1 + overlap], a[-overlap:] * (1 - ramp) + b[:overlap] * ramp, atol=1e-6
    )
    np.testing.assert_allclose(
        out[seam2 : seam2 + overlap], b[-overlap:] * (1 - ramp) + c[:overlap] * ramp, atol=1e-6
    )


def test_the_crossfade_goes_from_the_old_chunk_to_the_new_one():
    # given a chunk of ones and a chunk of minus ones
    out = joined(ChunkJoiner(100), [[np.ones(1000, np.float32)], [-np.ones(1000, np.float32)]])
    seam = out[900:1000]
    # then the seam falls steadily from one to minus one, through silence halfway
    assert seam[0] == pytest.approx(1.0)
    assert seam[-1] == pytest.approx(-1.0)
    assert np.all(np.diff(seam) < 0)
    assert abs(float(seam[50])) < 0.02
    assert np.all(out[:900] == 1.0)
    assert np.all(out[1000:] == -1.0)


def test_a_single_chunk_passes_through_whole():
    audio = np.random.default_rng(1).uniform(-1, 1, 4321).astype(np.float32)
    out = joined(ChunkJoiner(480), [[audio[:100], audio[100:3000], audio[3000:]]])
    assert np.array_equal(out, audio)


# --- how long a chunk may be ------------------------------------------------------------------


def test_frame_bound_grows_with_the_text_and_allows_four_characters_a_second():
    texts = ["", "Hi.", SENTENCE, SENTENCE * 3, "x" * 200]
    bounds = [frame_bound(text) for text in texts]
    assert bounds == sorted(bounds)
    assert len(set(bounds)) == len(bounds)
    for text, bound in zip(texts, bounds, strict=True):
        assert bound / FRAME_RATE >= len(text) / 4
    # even nothing may take a pause of two seconds
    assert frame_bound("") == 2 * FRAME_RATE


def record_chunks(engine, monkeypatch) -> list[dict]:
    """Wrap the engine's per-chunk generation; record each chunk's target, turns and codes."""
    calls: list[dict] = []
    chunk_frames = engine._chunk_frames

    def recording(session, target, turns, limit, noise, sampling, first_audio):
        call = {"target": target, "turns": list(turns), "limit": limit, "codes": []}
        calls.append(call)
        for piece in chunk_frames(session, target, turns, limit, noise, sampling, first_audio):
            call["codes"].append(piece.codes)
            yield piece

    monkeypatch.setattr(engine, "_chunk_frames", recording)
    return calls


def test_a_chunk_stops_at_its_frame_bound(csm_engine, monkeypatch):
    # given a bound of about a second for a short text (the random model never ends speech)
    monkeypatch.setattr(engine_module, "_SECONDS_SLACK", 0.4)
    calls = record_chunks(csm_engine, monkeypatch)
    # when no cap on the audio applies
    audio = np.concatenate(
        list(csm_engine.synthesize(["Hi."], VoiceSpec(name="plain"), SynthesisParams(seed=3)))
    )
    # then
    frames = sum(codes.shape[0] for codes in calls[0]["codes"])
    assert frames == frame_bound("Hi.") == 15
    assert audio.size == 15 * SAMPLES_PER_FRAME


def test_max_audio_ms_caps_the_frames_of_the_whole_request(csm_engine, monkeypatch):
    # given two chunks and a cap of 400 ms (5 frames)
    calls = record_chunks(csm_engine, monkeypatch)
    chunks = ["The first sentence is here.", "The second sentence follows it."]
    # when
    audio = np.concatenate(
        list(
            csm_engine.synthesize(
                chunks, VoiceSpec(name="plain"), SynthesisParams(seed=3, max_audio_ms=400)
            )
        )
    )
    # then the first chunk takes the 5 frames and the second never starts
    assert [call["target"].text for call in calls] == chunks[:1]
    assert calls[0]["limit"] == 5
    assert audio.size == 5 * SAMPLES_PER_FRAME


# --- the batch under the scheduler --------------------------------------------------------------


def solo_codes(batch: CsmBatch, job: FrameJob, count: int) -> torch.Tensor:
    """`count` frames of `job` with nothing else in the batch: (count, codebooks)."""
    batch.join(batch.prefill(job))
    codes = [batch.step([job])[0][0] for _ in range(count)]
    batch.keep([])
    return torch.stack(codes)


def seeded(prompt: list[Segment], seed: int, sampling: Sampling, limit: int = 100) -> FrameJob:
    return FrameJob(prompt, sampling, seed, limit)


def test_the_scheduler_alone_draws_what_the_batch_alone_draws(model, builder, batch):
    # given 12 frames of a prompt drawn by the batch directly
    target = Segment(0, SENTENCE)
    expected = run_frames(batch, [target], Sampling(0.8, 40), 12, seed=1234)
    scheduler = FrameScheduler(CsmBatch(model, builder, None, max_rows=4), max_batch=4, max_queue=0)
    # when the scheduler runs the same prompt alone, with the same seed and settings
    with scheduler.session("alice") as session:
        stream = session.submit([target], Sampling(0.8, 40), 1234, 12)
        codes = torch.stack(list(stream)).unsqueeze(0)
    scheduler.close()
    # then every code of every frame is the same
    assert torch.equal(codes, expected)


def test_sixteen_requests_joining_and_leaving_draw_what_each_draws_alone(model, builder):
    # given 16 prompts of different lengths (some with context frames), each with its own
    # sampling settings and seed, and what each draws alone
    batch = CsmBatch(model, builder, None, max_rows=16)
    prompts = [
        [Segment(n % 2, SENTENCE[: 8 + 3 * n])]
        if n % 3
        else [Segment(1, "Before.", random_codes(5 + n)), Segment(0, "And after, this.")]
        for n in range(16)
    ]
    samplings = [Sampling(0.6 + 0.05 * n, 1 + 6 * n) for n in range(16)]
    jobs = [seeded(prompt, 100 + n, samplings[n], limit=10) for n, prompt in enumerate(prompts)]
    alone = [solo_codes(batch, job, 10) for job in jobs]
    assert len({tuple(codes[0].tolist()) for codes in alone}) == 16  # they do differ
    drawn: list[list[torch.Tensor]] = [[] for _ in jobs]
    running: list[int] = []
    # when they join two at a time, one frame apart, and each leaves after its 10 frames (the
    # rows left are compacted into smaller buckets as the batch drains)
    waiting = list(range(16))
    buckets_seen = set()
    while waiting or running:
        for n in waiting[:2]:
            batch.join(batch.prefill(jobs[n]))
            running.append(n)
        waiting = waiting[2:]
        buckets_seen.add(batch.shape_needed().rows)
        codes, _ = batch.step([jobs[n] for n in running])
        for row, n in enumerate(running):
            drawn[n].append(codes[row])
        kept = [row for row, n in enumerate(running) if len(drawn[n]) < 10]
        batch.keep(kept)
        running = [running[row] for row in kept]
    # then each drew exactly what it draws alone
    for n in range(16):
        assert torch.equal(torch.stack(drawn[n]), alone[n]), f"request {n}"
    assert {2, 4, 8, 16} <= buckets_seen


def test_a_cached_voice_prefix_gives_what_a_full_prefill_gives(model, builder):
    # given a prompt that starts with a voice reference of 40 frames
    reference = Segment(1, "The voice to copy.", random_codes(40), pinned=True, prefix_key="v")
    prompt = [reference, Segment(1, SENTENCE)]
    greedy = Sampling(1.0, 1)
    plain = CsmBatch(model, builder, None, max_rows=1)
    expected = plain.prefill(seeded(prompt, 0, greedy))
    cached = CsmBatch(model, builder, PrefixCache(64 * 2**20), max_rows=1)
    # when the prompt is prefilled twice through the prefix cache
    first = cached.prefill(seeded(prompt, 0, greedy))
    second = cached.prefill(seeded(prompt, 0, greedy))
    # then the reference was computed once, used twice, and kept in memory
    assert (cached.prefixes.misses, cached.prefixes.hits) == (1, 1)
    assert cached.prefixes.size_bytes > 0
    # and the state after the prompt is the full prefill's
    for state in (first, second):
        assert state.length == expected.length
        torch.testing.assert_close(state.last_hidden, expected.last_hidden, atol=1e-4, rtol=1e-4)
    # and so are the frames drawn from it
    assert torch.equal(
        solo_codes(cached, seeded(prompt, 0, greedy), 10),
        solo_codes(plain, seeded(prompt, 0, greedy), 10),
    )


def test_the_prefix_cache_keeps_within_its_bytes_dropping_the_least_recently_used():
    # given entries of 1 KiB each (keys and values of 128 float32 each) in 2.5 KiB
    def entry() -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.zeros(128), torch.zeros(128))]

    cache = PrefixCache(2560)
    cache.put("a", entry())
    cache.put("b", entry())
    # when a is used, then c comes
    assert cache.get("a") is not None
    cache.put("c", entry())
    # then b, the least recently used, is gone, and the cache holds what fits
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert cache.size_bytes == 2048
