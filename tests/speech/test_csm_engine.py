"""The CSM engine on the tiny random checkpoint: seeds, voice references, chunks, standard voices,
loading failures and which engine the default model names mean.
"""

import io
import itertools
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.db import OperationalError
from huggingface_hub import errors as hub_errors

from speech import references as references_module
from speech.audio.formats import SAMPLE_RATE
from speech.engines.base import (
    EngineError,
    EngineNotReady,
    EngineState,
    SynthesisParams,
    VoiceSpec,
)
from speech.engines.csm import engine as engine_module
from speech.engines.csm import standard_voices
from speech.engines.csm.batching import CsmBatch
from speech.engines.csm.engine import SAMPLES_PER_FRAME, CsmEngine
from speech.engines.csm.loading import CsmOptions, describe_failure, load_csm
from speech.engines.csm.prompt import Segment
from speech.engines.registry import engine_get, engines_reset
from speech.models_catalog import engine_name_for_model
from speech.references import VoiceReferences
from speech.services import speech_plan
from tests.support.audio import noise, tone
from tests.support.engines import wait_while_loading
from tests.support.processes import free_port
from tests.support.voices import cloned_voice
from voices.models import Voice, VoiceCodes
from voices.standard import STANDARD_VOICES

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "hf_DoNotLeakThisTokenAnywhere123"
LONG_TEXT = (
    "The morning train left the station at seven, carrying commuters toward the city. "
    "Rain had fallen all night, and the fields shone under a pale grey sky. "
    "A conductor walked the aisle, checking tickets and greeting the regulars by name. "
    "Near the window, a child counted cows and wrote the numbers in a small notebook. "
    "By the time the towers appeared, the clouds had broken and the sun was out."
)


def stored_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def spec(voice: Voice) -> VoiceSpec:
    return VoiceSpec(
        name=voice.name,
        reference_audio=voice.reference_audio.name,
        reference_text=voice.reference_text,
        speaker_id=voice.speaker_id,
        voice_id=str(voice.pk),
    )


def speak(engine: CsmEngine, chunks: list[str], voice: VoiceSpec, **params) -> np.ndarray:
    return np.concatenate(list(engine.synthesize(chunks, voice, SynthesisParams(**params))))


@pytest.fixture
def tone_voice(alice, media_root) -> Voice:
    # 2 s of reference audio: 25 frames
    return cloned_voice(alice, "tone", tone(2.0, 220.0), "A steady tone to copy.")


@pytest.fixture
def noise_voice(alice, media_root) -> Voice:
    # 1.2 s of reference audio: 15 frames
    return cloned_voice(alice, "hiss", noise(1.2), "A hiss to copy.", speaker=1)


def record_chunks(engine: CsmEngine, monkeypatch) -> list[dict]:
    """Wrap the engine's per-chunk generation; record each chunk's target, turns and codes."""
    calls: list[dict] = []
    chunk_frames = engine._chunk_frames

    def recording(session, target, turns, limit, generator, sampling, first_audio):
        call = {"target": target, "turns": list(turns), "codes": []}
        calls.append(call)
        for piece in chunk_frames(session, target, turns, limit, generator, sampling, first_audio):
            call["codes"].append(piece.codes)
            yield piece

    monkeypatch.setattr(engine, "_chunk_frames", recording)
    return calls


def record_prompt_lengths(monkeypatch) -> list[int]:
    """Wrap (not replace) the batch's prefill; record the length of each prompt."""
    lengths: list[int] = []
    prefill = CsmBatch.prefill

    def recording(self, job):
        lengths.append(sum(self.builder.length(segment) for segment in job.prompt))
        return prefill(self, job)

    monkeypatch.setattr(CsmBatch, "prefill", recording)
    return lengths


def prompt_length(engine: CsmEngine, call: dict) -> int:
    """Positions of a recorded chunk's prompt: its turns, then its text."""
    builder = engine._builder
    return sum(builder.length(turn) for turn in call["turns"]) + builder.length(call["target"])


# --- seeds and voices -------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_samples_and_another_seed_others(csm_engine, tone_voice):
    # given
    voice, text = spec(tone_voice), ["Seeds make speech repeatable."]
    # when
    first = speak(csm_engine, text, voice, seed=7, max_audio_ms=800)
    again = speak(csm_engine, text, voice, seed=7, max_audio_ms=800)
    other = speak(csm_engine, text, voice, seed=8, max_audio_ms=800)
    # then
    assert first.size == again.size == other.size == 10 * SAMPLES_PER_FRAME
    assert np.array_equal(first, again)
    assert not np.allclose(first, other, atol=1e-3)


def test_the_voice_reference_reaches_the_model(csm_engine, tone_voice, noise_voice, monkeypatch):
    # given the prompts the model is given are measured
    lengths = record_prompt_lengths(monkeypatch)
    builder, text = csm_engine._builder, "Which voice is this?"
    # when the same text is spoken with the same seed in two cloned voices and in none
    with_tone = speak(csm_engine, [text], spec(tone_voice), seed=3, max_audio_ms=800)
    with_noise = speak(csm_engine, [text], spec(noise_voice), seed=3, max_audio_ms=800)
    plain = speak(csm_engine, [text], VoiceSpec(name="plain"), seed=3, max_audio_ms=800)
    # then the speech differs
    assert not np.allclose(with_tone, with_noise, atol=1e-3)
    assert not np.allclose(with_tone, plain, atol=1e-3)
    # and each prompt holds the reference's transcript, its frames and an end-of-audio frame
    # before the text to speak, in the reference's speaker
    tone_text = len(builder.text_ids(Segment(0, tone_voice.reference_text)))
    noise_text = len(builder.text_ids(Segment(1, noise_voice.reference_text)))
    assert lengths == [
        tone_text + 25 + 1 + len(builder.text_ids(Segment(0, text))),
        noise_text + 15 + 1 + len(builder.text_ids(Segment(1, text))),
        len(builder.text_ids(Segment(0, text))),
    ]


def test_long_text_is_spoken_chunk_by_chunk_in_order(csm_engine, alice, tone_voice, monkeypatch):
    # given a plan for five sentences, with three frames per chunk to keep it quick
    plan = async_to_sync(speech_plan)(
        user=alice,
        data={
            "model": "csm-1b",
            "voice": "tone",
            "input": LONG_TEXT,
            "speed": 1.0,
            "response_format": "wav",
            "seed": 5,
        },
    )
    assert len(plan.chunks) >= 3
    monkeypatch.setattr(engine_module, "frame_bound", lambda text: 3)
    calls = record_chunks(csm_engine, monkeypatch)
    prompts = record_prompt_lengths(monkeypatch)
    # when
    audio = np.concatenate(list(csm_engine.synthesize(plan.chunks, plan.voice, plan.params)))
    # then every chunk is spoken, once, in order
    assert [call["target"].text for call in calls] == plan.chunks
    assert " ".join(plan.chunks) == LONG_TEXT
    # and the first is conditioned on the voice reference alone
    reference = calls[0]["turns"]
    assert [(turn.speaker, turn.text) for turn in reference] == [(0, tone_voice.reference_text)]
    assert reference[0].codes.shape == (25, 32)
    # and each later one on the reference and then the previous chunk, as it was generated
    for previous, call in itertools.pairwise(calls):
        turns = call["turns"]
        assert len(turns) == 2
        assert torch.equal(turns[0].codes, reference[0].codes)
        assert turns[1].text == previous["target"].text
        assert torch.equal(turns[1].codes, torch.cat(previous["codes"]))
    # and the model's prompt for each chunk is exactly those turns and the chunk's text
    assert prompts == [prompt_length(csm_engine, call) for call in calls]
    # and the audio is every chunk's frames, less one crossfade per seam
    frames = sum(sum(c.shape[0] for c in call["codes"]) for call in calls)
    assert frames == 3 * len(plan.chunks)
    assert audio.size == frames * SAMPLES_PER_FRAME - 480 * (len(plan.chunks) - 1)


@pytest.mark.parametrize(
    ("consistency", "kept_frames", "kept_text"),
    [(1.0, 25, "A steady tone to copy."), (0.5, 12, "A steady"), (0.0, 0, None)],
)
def test_voice_consistency_sets_how_much_reference_later_chunks_keep(
    csm_engine, tone_voice, monkeypatch, consistency, kept_frames, kept_text
):
    # given two chunks, three frames each
    monkeypatch.setattr(engine_module, "frame_bound", lambda text: 3)
    calls = record_chunks(csm_engine, monkeypatch)
    prompts = record_prompt_lengths(monkeypatch)
    chunks = ["The first chunk.", "The second chunk."]
    # when
    speak(csm_engine, chunks, spec(tone_voice), seed=1, voice_consistency=consistency)
    # then the first chunk always has the whole reference
    first, second = calls[0]["turns"], calls[1]["turns"]
    assert [turn.text for turn in first] == ["A steady tone to copy."]
    assert first[0].codes.shape[0] == 25
    # and the second keeps its share of it before the previous chunk
    assert second[-1].text == "The first chunk."
    if kept_text is None:
        assert len(second) == 1
    else:
        assert len(second) == 2
        assert second[0].text == kept_text
        assert torch.equal(second[0].codes, first[0].codes[:kept_frames])
    # and the model is given exactly that
    assert prompts == [prompt_length(csm_engine, call) for call in calls]


# --- standard voices --------------------------------------------------------------------------


@pytest.fixture
def quick_references(monkeypatch) -> None:
    """A short recipe sentence and bound, so a reference takes 15 frames instead of 125.

    What is tested is where a reference is stored and when it is made, not how long it is.
    """
    monkeypatch.setitem(standard_voices._SENTENCES, "alloy", "Hi.")
    monkeypatch.setattr(engine_module, "_SECONDS_SLACK", 0.4)


def count_calls(monkeypatch, target, name: str) -> list[tuple]:
    calls: list[tuple] = []
    original = getattr(target, name)

    def counting(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(target, name, counting)
    return calls


def builtin(name: str) -> Voice:
    (voice,) = Voice.objects.filter(owner__isnull=True, name=name)
    return voice


def test_a_standard_voice_is_made_once_and_requests_never_rewrite_it(
    csm_engine, media_root, quick_references, monkeypatch
):
    # given no stored alloy yet
    generated = count_calls(monkeypatch, csm_engine, "generate_reference")
    alloy = VoiceSpec(name="alloy", standard="alloy")
    # when alloy is first asked for, its reference is generated and stored
    speak(csm_engine, ["Hello."], alloy, seed=1, max_audio_ms=400)
    assert len(generated) == 1
    stored = builtin("alloy")
    assert (stored.kind, stored.source) == (Voice.Kind.BUILTIN, Voice.Source.GENERATED)
    assert (stored.reference_text, stored.speaker_id) == ("Hi.", 0)
    audio = stored.reference_audio.read()
    assert stored_files(media_root) == {stored.reference_audio.name}
    # when it is asked for again, by this process and by a restarted one
    speak(csm_engine, ["Hello again."], alloy, seed=2, max_audio_ms=400)
    engines_reset()
    restarted = engine_get("csm")
    wait_while_loading(restarted)
    restarted_generated = count_calls(monkeypatch, restarted, "generate_reference")
    speak(restarted, ["Hello once more."], alloy, seed=3, max_audio_ms=400)
    # then it is never generated or written again
    assert len(generated) == 1
    assert restarted_generated == []
    again = builtin("alloy")
    assert (again.id, again.reference_audio.name, again.updated) == (
        stored.id,
        stored.reference_audio.name,
        stored.updated,
    )
    assert again.reference_audio.read() == audio
    assert stored_files(media_root) == {stored.reference_audio.name}


def test_standard_voices_are_generated_deterministically_and_rebuilt_on_command(
    csm_engine, media_root, quick_references
):
    # given alloy prepared once
    (prepared,) = standard_voices.standard_voices_prepare(
        csm_engine.generate_reference, VoiceReferences(), names=["alloy"]
    )
    first = builtin("alloy")
    assert prepared.voice_id == str(first.id)
    first_audio = first.reference_audio.read()
    assert first.duration_seconds == pytest.approx(15 * SAMPLES_PER_FRAME / SAMPLE_RATE)
    # when it is prepared again, it is kept
    (kept,) = standard_voices.standard_voices_prepare(
        csm_engine.generate_reference, VoiceReferences(), names=["alloy"]
    )
    assert kept.voice_id == str(first.id)
    # when the command rebuilds it
    out = io.StringIO()
    call_command("csm_voices", "alloy", "--rebuild", stdout=out)
    # then a new row replaces the old one, with the same audio (same weights, same seed), and
    # the old file is gone with its row
    rebuilt = builtin("alloy")
    assert rebuilt.id != first.id
    assert f"alloy: regenerated (1.2 s, id {rebuilt.id})" in out.getvalue()
    assert rebuilt.reference_audio.read() == first_audio
    assert stored_files(media_root) == {rebuilt.reference_audio.name}


def test_every_standard_voice_has_a_recipe_with_its_place_as_speaker():
    assert standard_voices.STANDARD_VOICE_NAMES == STANDARD_VOICES
    for speaker, name in enumerate(STANDARD_VOICES):
        assert standard_voices.standard_voice_recipe(name)[0] == speaker


def test_a_database_that_cannot_be_reached_is_worth_a_retry(csm_engine, media_root, monkeypatch):
    # given looking up the standard voice's stored reference fails
    def unreachable(name):
        raise OperationalError("connection refused")

    monkeypatch.setattr(references_module, "builtin_voice", unreachable)
    # when alloy is asked for
    with pytest.raises(EngineError) as caught:
        speak(csm_engine, ["Hello."], VoiceSpec(name="alloy", standard="alloy"), seed=1)
    # then the caller is told to retry, and nothing was generated or stored
    assert caught.value.retryable
    assert caught.value.message == "the database is unavailable; retry shortly."
    assert not Voice.objects.exists()
    assert stored_files(media_root) == set()


def test_the_command_refuses_names_that_are_not_standard_voices(media_root):
    with pytest.raises(CommandError, match="nonesuch"):
        call_command("csm_voices", "alloy", "nonesuch")
    assert not Voice.objects.exists()


def fake_reference(speaker: int, text: str, seed: int) -> np.ndarray:
    return tone(1.0, 200.0 + 10 * speaker)


def test_a_voice_that_cannot_be_saved_leaves_no_file_behind(media_root, monkeypatch):
    # given the database refuses the row
    def refuse(self, *args, **kwargs):
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(Voice, "save", refuse)
    # when
    with pytest.raises(RuntimeError, match="database is gone"):
        standard_voices.standard_voices_prepare(fake_reference, VoiceReferences(), names=["echo"])
    # then
    assert stored_files(media_root) == set()
    assert not Voice.objects.exists()


def test_a_failed_rebuild_keeps_the_voice_it_was_replacing(media_root, monkeypatch):
    # given echo exists
    standard_voices.standard_voices_prepare(fake_reference, VoiceReferences(), names=["echo"])
    echo = builtin("echo")

    # when its rebuild cannot save the new row
    def refuse(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Voice, "save", refuse)
    with pytest.raises(OSError, match="disk full"):
        standard_voices.standard_voices_prepare(
            fake_reference, VoiceReferences(), names=["echo"], rebuild=True
        )
    # then the old row and its file are still there, and nothing else
    assert builtin("echo").id == echo.id
    assert stored_files(media_root) == {echo.reference_audio.name}


# --- loading failures -------------------------------------------------------------------------


def test_the_registry_builds_csm_with_the_speech_apps_reference_provider(csm_engine):
    assert isinstance(csm_engine.references, VoiceReferences)


def test_csm_is_not_built_without_a_reference_provider():
    with pytest.raises(RuntimeError, match="reference provider"):
        CsmEngine()


def test_an_empty_checkpoint_directory_leaves_csm_unavailable_with_advice(settings):
    # given CSM_MODEL is an empty directory (the tests' default)
    assert Path(settings.CSM_MODEL).is_dir()
    # when
    engine = engine_get("csm")
    wait_while_loading(engine)
    # then
    assert engine.state is EngineState.UNAVAILABLE
    assert "CSM_MODEL" in engine.reason
    assert "transformers format" in engine.reason
    assert settings.CSM_MODEL not in engine.reason
    assert "/" not in engine.reason
    with pytest.raises(EngineNotReady) as caught:
        engine.ensure_ready()
    assert engine.reason in caught.value.message


def test_a_hub_model_that_is_not_cached_fails_fast_when_the_hub_is_unreachable(
    settings, monkeypatch, tmp_path
):
    # given a Hub id whose weights are not in an empty cache, offline mode off, and a Hub
    # endpoint that nothing listens on
    from huggingface_hub import HfApi, constants

    settings.CSM_MODEL = "sesame/csm-1b"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    asked = []
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo_id, **kwargs: asked.append(repo_id))
    # when
    engine = engine_get("csm")
    wait_while_loading(engine)
    # then: the Hub's silence is enough, no question about the model follows, and the reason
    # says what to do
    assert asked == []
    assert engine.state is EngineState.UNAVAILABLE
    assert "not in the local cache" in engine.reason
    assert "cannot be reached" in engine.reason
    assert "CSM_MODEL" in engine.reason


def test_a_failure_to_prepare_the_standard_voices_leaves_csm_ready(
    settings, tiny_csm_dir, monkeypatch
):
    # given the weights load but the standard voices cannot be stored
    failed = threading.Event()

    def disk_full(*args, **kwargs):
        failed.set()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine_module, "standard_voices_prepare", disk_full)
    settings.CSM_MODEL = str(tiny_csm_dir)
    settings.CSM_PREPARE_VOICES = True
    engines_reset()
    # when
    engine = engine_get("csm")
    assert failed.wait(timeout=60)
    wait_while_loading(engine)
    # then CSM serves anyway (each standard voice is made on first use), and the checkpoint is
    # not blamed
    assert engine.state is EngineState.READY
    assert engine.reason == ""


def hub_response(status: int):
    """An HTTP response of the client library huggingface_hub's errors are built on."""
    client = sys.modules[hub_errors.Response.__module__.split(".")[0]]
    url = f"https://huggingface.co/sesame/csm-1b/resolve/main/config.json?token={TOKEN}"
    return client.Response(status, request=client.Request("GET", url))


def loading_failure(cause: BaseException) -> OSError:
    """The OSError transformers raises from a Hub error (`raise OSError(...) from cause`)."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise OSError(f"We couldn't load sesame/csm-1b with token {TOKEN}.") from exc
    except OSError as error:
        return error


def options(token: str = TOKEN, model: str = "sesame/csm-1b") -> CsmOptions:
    return CsmOptions(model=model, token=token, device="", dtype="auto", device_map="")


@pytest.mark.parametrize(
    ("cause", "token", "advice"),
    [
        (
            lambda: hub_errors.GatedRepoError("Access is restricted.", response=hub_response(403)),
            TOKEN,
            ["gated", "accept its licence", "HF_TOKEN"],
        ),
        (
            lambda: hub_errors.GatedRepoError("Access is restricted.", response=hub_response(401)),
            "",
            ["gated", "accept its licence", "set HF_TOKEN"],
        ),
        (
            lambda: hub_errors.RepositoryNotFoundError("Not found.", response=hub_response(401)),
            "",
            ["not found or needs a login", "set HF_TOKEN", "CSM_MODEL"],
        ),
        (
            lambda: hub_errors.RepositoryNotFoundError("Not found.", response=hub_response(404)),
            TOKEN,
            ["HF_TOKEN has no access", "check CSM_MODEL and the token"],
        ),
        (
            lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            TOKEN,
            ["not enough memory", "CSM_DTYPE=bfloat16", "CSM_DEVICE_MAP=auto"],
        ),
        (
            lambda: hub_errors.LocalEntryNotFoundError("Cannot find the requested files."),
            TOKEN,
            ["not in the local cache", "cannot be reached", "CSM_MODEL"],
        ),
    ],
    ids=["gated", "gated-no-token", "not-found-no-token", "not-found", "oom", "offline"],
)
def test_loading_failures_are_explained_without_the_token(cause, token, advice):
    # when
    message = describe_failure(loading_failure(cause()), options(token=token))
    # then
    for words in advice:
        assert words in message
    assert TOKEN not in message
    assert "hf_" not in message


def test_an_unexplained_failure_names_its_type_and_points_to_the_log():
    message = describe_failure(loading_failure(KeyError("weights")), options())
    assert "(OSError)" in message
    assert "server log" in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    "where", ["absolute", "relative", "home", "file"], ids=lambda where: f"{where}-path"
)
def test_a_checkpoint_path_that_does_not_exist_is_not_shown(tmp_path, monkeypatch, where):
    # given CSM_MODEL names a checkpoint directory that is not there
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.safetensors").write_bytes(b"not a checkpoint directory")
    missing = {
        "absolute": str(tmp_path / "models" / "csm-1b"),
        "relative": "./models/csm-1b",
        "home": "~/models/csm-1b",
        "file": str(tmp_path / "weights.safetensors"),
    }[where]
    # when loading fails as transformers fails on it
    with pytest.raises(Exception) as caught:
        load_csm(options(token="", model=missing))
    message = describe_failure(caught.value, options(token="", model=missing))
    # then the reason says what to set, but not the path
    assert "CSM_MODEL is a path to a directory that does not exist" in message
    assert "models/csm-1b" not in message
    assert str(tmp_path) not in message


# --- which engine the model names mean --------------------------------------------------------


def test_auto_means_espeak_while_csm_cannot_load(settings):
    # given CSM cannot load (the tests' empty CSM_MODEL)
    settings.DEFAULT_ENGINE = "auto"
    csm = engine_get("csm")
    wait_while_loading(csm)
    assert csm.state is EngineState.UNAVAILABLE
    # then OpenAI's model names mean eSpeak, and csm-1b still means CSM (never a stand-in)
    assert engine_name_for_model("tts-1") == "espeak"
    assert engine_name_for_model("gpt-4o-mini-tts") == "espeak"
    assert engine_name_for_model("csm-1b") == "csm"


def test_auto_means_csm_once_it_is_ready(settings, csm_engine):
    settings.DEFAULT_ENGINE = "auto"
    assert engine_name_for_model("tts-1") == "csm"
    assert engine_name_for_model("tts-1-hd") == "csm"
    assert engine_name_for_model("csm-1b") == "csm"
    # and a fixed default stays fixed
    settings.DEFAULT_ENGINE = "espeak"
    assert engine_name_for_model("tts-1") == "espeak"
    assert engine_name_for_model("csm-1b") == "csm"


# --- reference codes kept with the voice ----------------------------------------------------------


def count_encodes(engine: CsmEngine, monkeypatch) -> list[int]:
    """Wrap (not replace) the engine's codec encode; record each encoded sample count."""
    sizes: list[int] = []
    encode = engine._encode

    def counting(samples):
        sizes.append(samples.size)
        return encode(samples)

    monkeypatch.setattr(engine, "_encode", counting)
    return sizes


def test_a_voices_reference_is_encoded_once_and_kept_with_the_voice(
    csm_engine, tone_voice, monkeypatch
):
    # given a voice spoken once, in a process that then forgets what it had in memory
    encodes = count_encodes(csm_engine, monkeypatch)
    first = speak(csm_engine, ["Once."], spec(tone_voice), seed=5, max_audio_ms=400)
    assert encodes == [2 * SAMPLE_RATE]
    stored = VoiceCodes.objects.get(voice=tone_voice)
    assert stored.codebooks == 32 and len(stored.codes) == 25 * 32 * 2
    csm_engine._references.clear()
    # when it is spoken again
    again = speak(csm_engine, ["Once."], spec(tone_voice), seed=5, max_audio_ms=400)
    # then the stored codes were used, not the audio, and the speech is the same
    assert encodes == [2 * SAMPLE_RATE]
    assert np.array_equal(first, again)


def test_codes_stored_by_another_codec_or_for_another_file_are_made_again(
    csm_engine, tone_voice, monkeypatch
):
    # given codes stored under another codec's tag
    speak(csm_engine, ["Once."], spec(tone_voice), seed=5, max_audio_ms=160)
    VoiceCodes.objects.filter(voice=tone_voice).update(tag="another codec")
    csm_engine._references.clear()
    encodes = count_encodes(csm_engine, monkeypatch)
    # when the voice speaks
    speak(csm_engine, ["Twice."], spec(tone_voice), seed=5, max_audio_ms=160)
    # then its reference was encoded again, and the codes replaced
    assert encodes == [2 * SAMPLE_RATE]
    assert VoiceCodes.objects.get(voice=tone_voice).tag != "another codec"


def test_a_new_voices_codes_are_made_when_it_is_created(csm_engine, alice, media_root, settings):
    # given an engine that prepares voices as they come
    settings.CSM_PREPARE_VOICES = True
    # when a voice is created
    voice = cloned_voice(alice, "fresh", tone(1.0, 330.0), "Fresh from the upload.")
    # then its codes are kept with it before any request
    deadline = time.monotonic() + 30
    while not VoiceCodes.objects.filter(voice=voice).exists():
        assert time.monotonic() < deadline, "the codes were never made"
        time.sleep(0.02)
    # and go when it goes
    voice.delete()
    assert not VoiceCodes.objects.exists()
