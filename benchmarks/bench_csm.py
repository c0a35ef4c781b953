"""Benchmark CSM-1B generation: plain `model.generate` against the server's batching scheduler.

Run from the repository root: `.venv/bin/python benchmarks/bench_csm.py` (`make bench`).
Options: `--size tiny|full` (default full: the CSM-1B architecture), `--frames N` (default 24:
frames per request in the throughput rows), `--dtype float32|bfloat16` (default: what the
engine picks, bfloat16 on CUDA and float32 on a CPU; a CPU without bfloat16 matrix units, as
AVX2-only ones, multiplies bfloat16 batches no faster than one row at a time),
`--device` (default cuda if available, else cpu), `--batches 1,2,4,8,16`, `--clip-seconds S`
(default 10: the streaming row), `--reference-seconds S` (default 20: the prefix-cache rows),
`--threads N` (default: every core this process may use). A quick check:
`--size tiny --frames 8 --clip-seconds 2 --reference-seconds 4`.

The model is built in memory with random weights: the cost of a frame does not depend on the
values of the weights, and the real ones are gated. Every row makes its frames from the same
kind of prompt (one sentence) with the engine's default sampling, after an unmeasured warm-up;
the scheduler rows run what the engine runs per request: a session, a submitted prompt, and
frames as the batch makes them; rows marked "+ audio" also decode them as the engine does (a
streaming decode after the engine's first few frames, then every emission, on the model thread).

Rows, all in this run (ratios compare rows of the same run):
- generate: `model.generate` for one request, codes only (as the scheduler rows without audio).
- scheduler xN: N requests submitted at once; frames/s counts every request's frames over
  the wall time, against scheduler x1 (x1 against generate).
- scheduler xN staggered: request i arrives i batch-1 frame times after the first.
- + audio: the same with the codec decode of every request on the model thread. On a CPU the
  Mimi decoder costs about as much per second of audio as a batch step does.
- stream: one request for a clip of `--clip-seconds`, with audio: first audio against the whole.
- reference, no cache / cached: a prompt that starts with a `--reference-seconds` voice
  reference; time to first audio without and with the prefix cache (its second use).

RTF is generation seconds per audio second (under 1 is faster than real time). Only the table
and a line of machine facts go to stdout; progress goes to stderr.
"""

import argparse
import os
import platform
import sys
import threading
import time
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

from speech.audio.formats import SAMPLE_RATE  # noqa: E402
from speech.engines.csm import engine as csm_engine  # noqa: E402
from speech.engines.csm.batching import CsmBatch, PrefixCache  # noqa: E402
from speech.engines.csm.codec import StreamingDecoder  # noqa: E402
from speech.engines.csm.generation import Sampling, lay_out_codebook_heads  # noqa: E402
from speech.engines.csm.prompt import CHAT_TEMPLATE, PromptBuilder, Segment  # noqa: E402
from speech.engines.csm.random_checkpoint import (  # noqa: E402
    FULL_SIZE,
    TINY,
    build_random_config,
)
from speech.engines.scheduler import FrameScheduler  # noqa: E402

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
    """The engine's own constants, so the benchmark follows any change to them (the engine
    layer needs no database, so importing it sets nothing up)."""
    return Schedule(
        first_emit=csm_engine.FIRST_EMIT_FRAMES,
        emit=csm_engine.EMIT_FRAMES,
        frame_rate=csm_engine.FRAME_RATE,
        temperature=csm_engine.DEFAULT_TEMPERATURE,
        topk=csm_engine.DEFAULT_TOPK,
    )


# --- Model ------------------------------------------------------------------------------------


def build_model(
    size: dict, dtype: torch.dtype, device: torch.device
) -> tuple[CsmForConditionalGeneration, CsmProcessor]:
    """A random CSM model of `size` and its processor, in memory (nothing written to disk)."""
    config, tokenizer = build_random_config(size)
    torch.manual_seed(SEED)
    model = CsmForConditionalGeneration(config).to(device=device, dtype=dtype).eval()
    # As the engine does after loading (generate uses the same parameter).
    lay_out_codebook_heads(model)
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
class Row:
    name: str
    requests: int
    frames: int
    wall: float
    first_audio: float | None
    # The row this one's frames/s (or first audio) is compared with, and how.
    base: str = ""

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.wall


def run_generate(
    model: CsmForConditionalGeneration, input_ids: torch.Tensor, frames: int, schedule: Schedule
) -> Row:
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
        output_audio=False,
        return_dict_in_generate=True,
        **kwargs,
    )
    sync(device)
    total = time.perf_counter() - started
    # Random weights almost never draw the all-zero end frame; if they do, count what was made.
    made = int(out.sequences.shape[1])
    log(f"  generate: {made} frames in {total:.2f} s")
    return Row("generate", 1, made, total, total)


@dataclass
class Served:
    """One request through the scheduler, timed as the engine would see it."""

    frames: int = 0
    first_audio: float | None = None
    done: float = 0.0


class Server:
    """The engine's per-request path over a `FrameScheduler`, without Django."""

    def __init__(
        self,
        model: CsmForConditionalGeneration,
        builder: PromptBuilder,
        schedule: Schedule,
        prefixes: PrefixCache | None,
    ) -> None:
        self.model, self.builder, self.schedule = model, builder, schedule
        self.batch = CsmBatch(model, builder, prefixes)
        self.scheduler = FrameScheduler(self.batch, max_batch=64, max_queue=64)
        self.sampling = Sampling(schedule.temperature, schedule.topk, self.batch.codebook_limit)
        self.device = model.embed_text_tokens.weight.device

    def request(
        self, prompt: list[Segment], frames: int, seed: int, started: float, audio: bool
    ) -> Served:
        served = Served()
        rng = torch.Generator(device=self.device).manual_seed(seed)
        decoder = StreamingDecoder(self.model.codec_model)
        pending: list[torch.Tensor] = []
        emit_after = self.schedule.first_emit
        with self.scheduler.session(f"caller-{seed}") as session:
            for frame in session.submit(prompt, self.sampling, rng, frames):
                served.frames += 1
                pending.append(frame)
                if len(pending) >= emit_after or served.frames == frames:
                    if audio:
                        self.scheduler.call(decoder.decode, torch.stack(pending))
                    if served.first_audio is None:
                        served.first_audio = time.perf_counter() - started
                    pending, emit_after = [], self.schedule.emit
        served.done = time.perf_counter() - started
        return served

    def run(
        self,
        name: str,
        prompts: list[list[Segment]],
        frames: int,
        gap: float = 0.0,
        audio: bool = False,
    ) -> Row:
        """All `prompts` as concurrent requests, request i arriving `i * gap` s after the first."""
        started = time.perf_counter()
        results: list[Served] = [Served() for _ in prompts]

        def one(index: int) -> None:
            delay = started + index * gap - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            results[index] = self.request(prompts[index], frames, SEED + index, started, audio)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = max(result.done for result in results)
        made = sum(result.frames for result in results)
        firsts = sorted(r.first_audio for r in results if r.first_audio is not None)
        first = firsts[len(firsts) // 2] if firsts else None
        log(f"  {name}: {made} frames in {wall:.2f} s")
        return Row(name, len(prompts), made, wall, first)


# --- Report -----------------------------------------------------------------------------------


def cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row], frame_seconds: float) -> list[list[str]]:
    """One line per row; the last column compares it with the row it names."""
    by_name = {row.name: row for row in rows}
    header = ["row", "requests", "frames", "wall s", "frames/s", "RTF/stream"]
    lines = [[*header, "first audio s", "compared with", "ratio"]]
    for row in rows:
        per_stream = row.wall / (row.frames / row.requests) / frame_seconds
        cells = [str(row.requests), str(row.frames), cell(row.wall)]
        cells += [cell(row.frames_per_second), cell(per_stream), cell(row.first_audio)]
        ratio = "-"
        if row.base.startswith("first audio / wall"):
            ratio = f"{row.first_audio / row.wall:.1%}" if row.first_audio else "-"
        elif row.base.startswith("first audio"):
            base = by_name[row.base.split(": ", 1)[1]]
            ratio = f"{row.first_audio / base.first_audio:.2f}x" if row.first_audio else "-"
        elif row.base:
            base = by_name[row.base]
            ratio = f"{row.frames_per_second / base.frames_per_second:.2f}x"
        lines.append([row.name, *cells, row.base or "-", ratio])
    return lines


def render(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for line in lines:
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:-2], widths[1:-2], strict=True)]
        cells += [line[-2].ljust(widths[-2]), line[-1].rjust(widths[-1])]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--frames", type=int, default=24)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--dtype", choices=sorted(DTYPES))
    parser.add_argument("--batches", default="1,2,4,8,16")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--reference-seconds", type=float, default=20.0)
    # Default: every core this process may use (torch's own default can be lower).
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    args.batches = [int(n) for n in args.batches.split(",")]
    if args.dtype is None:
        args.dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    if args.frames < 1 or args.threads < 1 or min(args.batches) < 1:
        parser.error("--frames, --threads and --batches must be at least 1")
    return args


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def measure(
    args: argparse.Namespace, device: torch.device, schedule: Schedule
) -> tuple[list[Row], int]:
    """Every row of the table, and the model's parameter count."""
    log(f"building the {args.size} model ({args.dtype}, {device})")
    model, processor = build_model(SIZES[args.size], DTYPES[args.dtype], device)
    builder = PromptBuilder(model, processor)
    target = [Segment(SPEAKER, SENTENCE)]
    input_ids = torch.tensor([builder.text_ids(target[0])], device=device)
    server = Server(model, builder, schedule, PrefixCache(4 * 2**30))
    log("warm-up")
    run_generate(model, input_ids, WARMUP_FRAMES, schedule)
    server.run("warm-up", [target, target], WARMUP_FRAMES, audio=True)
    rows = [run_generate(model, input_ids, args.frames, schedule)]
    for n in args.batches:
        row = server.run(f"scheduler x{n}", [target] * n, args.frames)
        row.base = "generate" if n == 1 else "scheduler x1"
        rows.append(row)
    frame_time = rows[1].wall / rows[1].frames if args.batches[0] == 1 else 0.0
    for n in (n for n in args.batches if n >= 8):
        row = server.run(f"scheduler x{n} staggered", [target] * n, args.frames, frame_time)
        row.base = "scheduler x1"
        rows.append(row)
    alone = server.run("scheduler x1 + audio", [target], args.frames, audio=True)
    alone.base = "scheduler x1"
    rows.append(alone)
    n = max(args.batches)
    row = server.run(
        f"scheduler x{n} staggered + audio", [target] * n, args.frames, frame_time, audio=True
    )
    row.base = "scheduler x1 + audio"
    rows.append(row)
    clip = round(args.clip_seconds * schedule.frame_rate)
    row = server.run(f"stream {args.clip_seconds:g} s clip", [target], clip, audio=True)
    row.base = "first audio / wall"
    rows.append(row)
    codes = random_codes(model, args.reference_seconds, schedule.frame_rate)
    reference = Segment(SPEAKER, REFERENCE_TEXT, codes, pinned=True, prefix_key="reference")
    unkeyed = Segment(SPEAKER, REFERENCE_TEXT, codes, pinned=True)
    first = schedule.first_emit
    cold = server.run("reference, no cache", [[unkeyed, *target]], first, audio=True)
    server.run("reference, caching", [[reference, *target]], first, audio=True)
    cached = server.run("reference, cached", [[reference, *target]], first, audio=True)
    cached.base = "first audio: reference, no cache"
    rows += [cold, cached]
    server.scheduler.close()
    return rows, sum(parameter.numel() for parameter in model.parameters())


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    schedule = engine_schedule()
    with torch.inference_mode():
        rows, parameters = measure(args, device, schedule)
    print(
        f"bench_csm: {args.size} CSM ({parameters / 1e6:.0f}M parameters), random "
        f"weights, {device} ({machine(device)}), {args.dtype}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.frames} frames per request; emission "
        f"{schedule.first_emit} then {schedule.emit} frames; reference "
        f"{args.reference_seconds:g} s"
    )
    print(render(table(rows, 1.0 / schedule.frame_rate)))


if __name__ == "__main__":
    main()
