"""Benchmark CSM-1B frame generation: plain `model.generate` against the server's own path.

Run from the repository root: `.venv/bin/python benchmarks/bench_csm.py` (`make bench`).
Options: `--size tiny|full` (default full: the CSM-1B architecture), `--frames N` (default 24),
`--dtype float32|bfloat16` (default bfloat16), `--device` (default cuda if available, else cpu),
`--reference-seconds S` (default 5: the context segment of the third row), `--threads N`
(default: every core this process may use) and `--repeats R` (default 1: rounds of all paths,
the median shown). A quick check: `--size tiny --frames 8`.

The model is built in memory with random weights: the cost of a frame does not depend on the
values of the weights, and the real ones are gated. Every path makes the same number of frames
from the same prompt and sampling settings, after one unmeasured warm-up run of its own:

- generate: `model.generate(..., output_audio=True)`: all frames, then one decode of the clip.
- server: what the engine does per chunk: embed the prompt, prefill, one `FrameGenerator.step`
  per frame, and a `StreamingDecoder` decode after the engine's first few frames and then
  every engine emission; its first audio leaves long before the clip is done.
- server+context: the same with a context segment (random codes) before the text, as a voice
  reference is: the extra cost is the longer prefill and the longer attention per frame.

RTF is generation seconds per audio second (under 1 is faster than real time); "vs generate"
is a row's seconds per frame over generate's, in this run. Only the table and a line of machine
facts go to stdout; progress goes to stderr.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transformers import (  # noqa: E402
    CsmForConditionalGeneration,
    CsmProcessor,
    EncodecFeatureExtractor,
)

from speech.engines.csm.codec import SAMPLE_RATE, StreamingDecoder  # noqa: E402
from speech.engines.csm.generation import FrameGenerator, Sampling  # noqa: E402
from speech.engines.csm.prompt import CHAT_TEMPLATE, PromptBuilder, Segment  # noqa: E402
from speech.engines.csm.random_checkpoint import (  # noqa: E402
    FULL_SIZE,
    TINY,
    build_random_config,
)

# About 100 characters, one sentence: a typical engine chunk.
SENTENCE = (
    "The quick brown fox jumps over the lazy dog, "
    "then naps in the warm afternoon sun beside the old red barn."
)
REFERENCE_TEXT = "Hello, world! How are you today? I'm fine, thanks."
SPEAKER = 0
WARMUP_FRAMES = 2
SEED = 0
SIZES = {"tiny": TINY, "full": FULL_SIZE}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Schedule:
    """The engine's emission schedule and default sampling, read from the engine itself."""

    first_emit: int
    emit: int
    frame_rate: float
    temperature: float
    topk: int


def engine_schedule() -> Schedule:
    """Import the engine's constants, so the benchmark follows any change to them.

    The engine module needs Django settings; they get a throwaway VAR_DIR and no external
    services, so nothing under `var/` or a configured database is touched.
    """
    # Settings write to VAR_DIR only while they load; nothing here reads it afterwards.
    with tempfile.TemporaryDirectory(prefix="bench-csm-") as var_dir:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="csmsite.settings",
            VAR_DIR=var_dir,
            # Empty, not absent: an absent variable would be filled in from a .env file.
            DATABASE_URL="",
            REDIS_URL="",
        )
        import django

        django.setup()
        from speech.engines.csm import engine

    return Schedule(
        first_emit=engine.FIRST_EMIT_FRAMES,
        emit=engine.EMIT_FRAMES,
        frame_rate=engine.FRAME_RATE,
        temperature=engine.DEFAULT_TEMPERATURE,
        topk=engine.DEFAULT_TOPK,
    )


# --- Model ------------------------------------------------------------------------------------


def build_model(
    size: dict, dtype: torch.dtype, device: torch.device
) -> tuple[CsmForConditionalGeneration, CsmProcessor]:
    """A random CSM model of `size` and its processor, in memory (nothing written to disk)."""
    config, tokenizer = build_random_config(size)
    torch.manual_seed(SEED)
    model = CsmForConditionalGeneration(config).to(device=device, dtype=dtype).eval()
    processor = CsmProcessor(
        feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    return model, processor


def random_codes(
    model: CsmForConditionalGeneration, seconds: float, frame_rate: float
) -> torch.Tensor:
    """Codes (frames, codebooks) of `seconds` of made-up audio: only their count matters."""
    frames = round(seconds * frame_rate)
    limit = int(model.config.codec_config.codebook_size)
    generator = torch.Generator().manual_seed(SEED)
    return torch.randint(0, limit, (frames, int(model.config.num_codebooks)), generator=generator)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it measures the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- Paths ------------------------------------------------------------------------------------


@dataclass
class Run:
    path: str
    frames: int
    prompt_positions: int
    total: float
    first_audio: float
    # Measured on the server path only: generate does both inside one call.
    prefill: float | None = None
    decode: float | None = None


def run_generate(
    model: CsmForConditionalGeneration, input_ids: torch.Tensor, frames: int, schedule: Schedule
) -> Run:
    """`model.generate` to the whole clip; its first audio is the whole clip."""
    device = input_ids.device
    vocabulary = int(model.config.vocab_size)
    # Ids the codec cannot decode (padding, end) are never drawn, as in `Sampling`.
    suppressed = list(range(int(model.config.codec_config.codebook_size), vocabulary))
    sampling = {"do_sample": True, "temperature": schedule.temperature, "top_k": schedule.topk}
    kwargs = {**sampling, "suppress_tokens": suppressed}
    kwargs |= {f"depth_decoder_{name}": value for name, value in kwargs.items()}
    torch.manual_seed(SEED)
    sync(device)
    started = time.perf_counter()
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=frames,
        output_audio=True,
        return_dict_in_generate=True,
        **kwargs,
    )
    sync(device)
    total = time.perf_counter() - started
    # Random weights almost never draw the all-zero end frame; if they do, count what was made.
    made = int(out.sequences.shape[1])
    samples = int(out.audio[0].shape[-1])
    log(f"  generate: {made} frames, {samples} samples")
    return Run("generate", made, int(input_ids.shape[1]), total, total)


def run_server(
    model: CsmForConditionalGeneration,
    builder: PromptBuilder,
    segments: list[Segment],
    frames: int,
    schedule: Schedule,
    name: str,
) -> Run:
    """The engine's per-chunk path: embed, prefill, step per frame, decode on its schedule."""
    device = model.embed_text_tokens.weight.device
    generator = FrameGenerator(model)
    sampling = Sampling(schedule.temperature, schedule.topk, generator.codebook_limit)
    rng = torch.Generator(device=device).manual_seed(SEED)
    decoder = StreamingDecoder(model.codec_model)
    sync(device)
    started = time.perf_counter()
    state = generator.prefill(builder.embed(segments))
    sync(device)
    prefill = time.perf_counter() - started
    first_audio: float | None = None
    decode = 0.0
    samples = 0
    pending: list[torch.Tensor] = []
    emit_after = schedule.first_emit
    while state.frames < frames and not state.finished:
        pending.append(generator.step(state, sampling, rng)[0])
        if len(pending) >= emit_after or state.frames == frames:
            # `decode` returns CPU audio, so the clock is read after the GPU work is done.
            sync(device)
            decode_started = time.perf_counter()
            samples += int(decoder.decode(torch.stack(pending)).shape[0])
            now = time.perf_counter()
            decode += now - decode_started
            if first_audio is None:
                first_audio = now - started
            pending, emit_after = [], schedule.emit
    total = time.perf_counter() - started
    log(f"  {name}: {state.frames} frames, {samples} samples")
    positions = state.positions - state.frames
    first = total if first_audio is None else first_audio
    return Run(name, state.frames, positions, total, first, prefill, decode)


def measure(paths: dict[str, Callable[[int], Run]], frames: int, repeats: int) -> list[Run]:
    """Each path's median run by total time, over `repeats` rounds of every path in turn.

    One unmeasured short run of each path first: kernels, allocator pools and caches warm up.
    Rounds interleave the paths, so load from other processes falls on all of them alike.
    """
    for name, path in paths.items():
        log(f"{name}: warm-up")
        path(WARMUP_FRAMES)
    results: dict[str, list[Run]] = {name: [] for name in paths}
    for round_ in range(repeats):
        for name, path in paths.items():
            log(f"{name}: measuring, round {round_ + 1} of {repeats}")
            results[name].append(path(frames))
    return [sorted(runs, key=lambda run: run.total)[len(runs) // 2] for runs in results.values()]


# --- Report -----------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def rows(runs: list[Run], frame_seconds: float) -> list[list[str]]:
    header = ["path", "frames", "prompt pos", "prefill s", "decode s", "s/frame", "RTF"]
    table = [[*header, "first audio s", "total s", "vs generate"]]
    base = runs[0].total / runs[0].frames
    for run in runs:
        per_frame = run.total / run.frames
        cells = [str(run.frames), str(run.prompt_positions), seconds(run.prefill)]
        cells += [seconds(run.decode), f"{per_frame:.3f}", f"{per_frame / frame_seconds:.2f}"]
        cells += [f"{run.first_audio:.2f}", f"{run.total:.2f}", f"{per_frame / base:.2f}x"]
        table.append([run.path, *cells])
    return table


def render(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--reference-seconds", type=float, default=5.0)
    # Default: every core this process may use (torch's own default can be lower).
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=1, help="rounds; the median is shown")
    args = parser.parse_args()
    if args.frames < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--frames, --repeats and --threads must be at least 1")
    return args


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def main() -> None:
    args = parse_args()
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    torch.set_num_threads(args.threads)
    schedule = engine_schedule()
    log(f"building the {args.size} model ({args.dtype}, {device})")
    model, processor = build_model(SIZES[args.size], dtype, device)
    parameters = sum(p.numel() for p in model.parameters())
    builder = PromptBuilder(model, processor)
    target = Segment(SPEAKER, SENTENCE)
    reference = Segment(
        SPEAKER, REFERENCE_TEXT, random_codes(model, args.reference_seconds, schedule.frame_rate)
    )
    # generate reads the same text tokens the server path embeds, so both prefill alike.
    input_ids = torch.tensor([builder.text_ids(target)], device=device)
    paths: dict[str, Callable[[int], Run]] = {
        "generate": lambda frames: run_generate(model, input_ids, frames, schedule),
        "server": lambda frames: run_server(model, builder, [target], frames, schedule, "server"),
        "server+context": lambda frames: run_server(
            model, builder, [reference, target], frames, schedule, "server+context"
        ),
    }
    with torch.inference_mode():
        runs = measure(paths, args.frames, args.repeats)
    print(
        f"bench_csm: {args.size} ({parameters / 1e6:.0f}M parameters), random weights, "
        f"{device} ({machine(device)}), {args.dtype}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; median of {args.repeats} rounds; emission "
        f"{schedule.first_emit} then {schedule.emit} frames; context "
        f"{reference.codes.shape[0]} frames"
    )
    print(render(rows(runs, 1.0 / schedule.frame_rate)))


if __name__ == "__main__":
    main()
