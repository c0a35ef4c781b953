"""Benchmark CSM-1B generation: `model.generate` and the server's eager and captured steps.

Run from the repository root: `.venv/bin/python benchmarks/bench_csm.py` (`make bench`).
Options: `--size tiny|overhead|full` (default full: the CSM-1B architecture; overhead is its
real depth at a tiny width, so a frame costs what the framework spends on it rather than
arithmetic), `--frames N` (default 24: frames per request in the throughput rows), `--dtype
float32|bfloat16` (default: what the engine picks, bfloat16 on CUDA and on CPUs with native
bfloat16, AVX512-BF16 or AMX, else float32; a CPU without bfloat16 matrix units, as AVX2-only
ones, multiplies bfloat16 batches no faster than one row at a time), `--device` (default cuda
if available, else cpu), `--batches`
(default 1,16,64 on CUDA, 1,2,4,8,16 on a CPU), `--captured-batches` (default: every one of
`--batches` on CUDA; on a CPU 1 and the largest, as each costs minutes of compiling there),
`--no-captured` (eager rows only: no compiling), `--clip-seconds S` (default 10: the
streaming row), `--reference-seconds S` (default 20: the prefix-cache rows), `--threads N`
(default: every core this process may use). A quick check: `--size tiny --frames 8
--clip-seconds 2 --reference-seconds 4 --batches 1,4` (add `--no-captured` to skip the
minutes of compiling).

The model is built in memory with random weights: the cost of a frame does not depend on the
values of the weights, and the real ones are gated. Every row makes its frames from the same
kind of prompt (one sentence) with the engine's default sampling, after an unmeasured warm-up;
the scheduler rows run what the engine runs per request: a session, a submitted prompt (with
an integer seed), and frames as the batch makes them; rows marked "+ audio" and the first-audio
rows also decode them as the engine does (a streaming decode after the engine's first few
frames, then every emission, on the model thread).

Two servers run in turn over the same model: the eager one (its batch steps without compiling,
as with `CSM_CAPTURE` off) and the captured one (the same step compiled per (rows, span) shape
by `speech.engines.csm.capture`: mode reduce-overhead, CUDA graphs, on CUDA and default on a
CPU), for the buckets that hold `--captured-batches` at the smallest span. Its shapes are
compiled before anything is measured; a line after the machine facts gives the seconds per
shape, and how many of the captured rows' steps ran captured and how many eagerly (a step
whose shape no compiled one covers runs eagerly; a count of eager steps means a row did not
measure the captured step alone). A batch between two captured buckets runs on the larger.

Rows, all in this run (ratios compare rows of the same run):
- generate: `model.generate` for one request, codes only (as the scheduler rows without audio).
- scheduler xN: N requests submitted at once on the eager server; frames/s counts every
  request's frames over the wall time, against scheduler x1 (x1 against generate).
- scheduler xN staggered: request i arrives i batch-1 frame times after the first.
- + audio: the same with the codec decode of every request on the model thread. On a CPU the
  Mimi decoder costs about as much per second of audio as a batch step does.
- stream: one request for a clip of `--clip-seconds`, with audio: first audio against the whole.
- reference, no cache / cached: a prompt that starts with a `--reference-seconds` voice
  reference; time to first audio without and with the prefix cache (its second use).
- first audio x1: one request for the engine's first emission, with audio, on the eager server.
- captured xN: as scheduler xN on the captured server; x1 against scheduler x1, the others
  against captured x1.
- captured first audio xN: N requests for the first emission at once, with audio, on the
  captured server (their median first audio); x1 against first audio x1 (eager), the others
  against captured first audio x1.

ms/frame is the wall time per frame of one stream (a step of the batch; the prefill included);
RTF is generation seconds per audio second (under 1 is faster than real time). Only the table
and lines of machine and compile facts go to stdout; progress goes to stderr.
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
from speech.engines.csm.batching import (  # noqa: E402
    CsmBatch,
    PrefixCache,
    bucket_sizes,
    span_sizes,
)
from speech.engines.csm.capture import CapturePlan, StepCapture, capture_plan  # noqa: E402
from speech.engines.csm.codec import StreamingDecoder  # noqa: E402
from speech.engines.csm.generation import Sampling, lay_out_codebook_heads  # noqa: E402
from speech.engines.csm.loading import resolve_dtype  # noqa: E402
from speech.engines.csm.prompt import CHAT_TEMPLATE, PromptBuilder, Segment  # noqa: E402
from speech.engines.csm.random_checkpoint import (  # noqa: E402
    FULL_SIZE,
    OVERHEAD,
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
# On CUDA, reduce-overhead records a graph on a shape's first calls and replays it after: a
# few frames of each captured shape before measuring keep the recording out of the rows.
CAPTURED_WARMUP_FRAMES = 4
SEED = 0
SIZES = {"tiny": TINY, "overhead": OVERHEAD, "full": FULL_SIZE}
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

    @property
    def frame_ms(self) -> float:
        """Wall milliseconds per frame of one stream: one step of the batch."""
        return 1000 * self.wall / (self.frames / self.requests)


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
        max_rows: int,
        capture: CapturePlan | None = None,
    ) -> None:
        self.model, self.builder, self.schedule = model, builder, schedule
        self.batch = CsmBatch(model, builder, prefixes, max_rows=max_rows, capture=capture)
        # No more rows than the batch has slots; the rest wait.
        self.scheduler = FrameScheduler(self.batch, max_batch=max_rows, max_queue=64)
        self.sampling = Sampling(schedule.temperature, schedule.topk)

    def request(
        self, prompt: list[Segment], frames: int, seed: int, started: float, audio: bool
    ) -> Served:
        served = Served()
        decoder = StreamingDecoder(self.model.codec_model)
        pending: list[torch.Tensor] = []
        emit_after = self.schedule.first_emit
        with self.scheduler.session(f"caller-{seed}") as session:
            for frame in session.submit(prompt, self.sampling, seed, frames):
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
    header = ["row", "requests", "frames", "wall s", "frames/s", "ms/frame", "RTF/stream"]
    lines = [[*header, "first audio s", "compared with", "ratio"]]
    for row in rows:
        per_stream = row.frame_ms / 1000 / frame_seconds
        cells = [str(row.requests), str(row.frames), cell(row.wall)]
        cells += [cell(row.frames_per_second), cell(row.frame_ms, 1), cell(per_stream)]
        cells.append(cell(row.first_audio))
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
    # Default: 1,16,64 on CUDA, 1,2,4,8,16 on a CPU (see the module docstring).
    parser.add_argument("--batches")
    parser.add_argument("--captured-batches")
    parser.add_argument("--no-captured", action="store_true")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--reference-seconds", type=float, default=20.0)
    # Default: every core this process may use (torch's own default can be lower).
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.batches = sizes(args.batches or ("1,16,64" if cuda else "1,2,4,8,16"))
    if args.captured_batches:
        args.captured_batches = sizes(args.captured_batches)
    else:
        # Every compiled shape costs minutes of a CPU's cores: there, the two ends only.
        args.captured_batches = args.batches if cuda else sorted({1, max(args.batches)})
    if args.dtype is None:
        # As the engine picks (CSM_DTYPE=auto).
        resolved = resolve_dtype("auto", torch.device(args.device))
        args.dtype = {dtype: name for name, dtype in DTYPES.items()}[resolved]
    if args.frames < 1 or args.threads < 1 or min(args.batches + args.captured_batches) < 1:
        parser.error("--frames, --threads, --batches and --captured-batches must be at least 1")
    if args.batches[0] != 1 or args.captured_batches[0] != 1:
        # The x1 rows are what the others are compared with.
        parser.error("--batches and --captured-batches must include 1")
    return args


def sizes(text: str) -> list[int]:
    """Batch sizes from "1,4,16", in increasing order, each once."""
    return sorted({int(n) for n in text.split(",")})


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


@dataclass
class Compiled:
    """What the captured server's shapes cost to compile, and which step its measured rows ran."""

    mode: str
    # Seconds per shape, labelled rows x span as in /readyz.
    seconds: dict[str, float]
    warm_up: float
    steps_captured: int = 0
    steps_eager: int = 0

    def line(self) -> str:
        shapes = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in self.seconds.items())
        return (
            f"captured step ({self.mode}), compile seconds per shape (rows x span): {shapes}; "
            f"warm-up {self.warm_up:.1f} s; steps of the captured rows: "
            f"{self.steps_captured} captured, {self.steps_eager} eager"
        )


def measure(
    args: argparse.Namespace, device: torch.device, schedule: Schedule
) -> tuple[list[Row], Compiled | None, int]:
    """Every row of the table, what compiling cost (None without captured rows), and the
    model's parameter count."""
    log(f"building the {args.size} model ({args.dtype}, {device})")
    model, processor = build_model(SIZES[args.size], DTYPES[args.dtype], device)
    builder = PromptBuilder(model, processor)
    target = [Segment(SPEAKER, SENTENCE)]
    rows = measure_eager(args, model, builder, schedule, target)
    compiled = None
    if not args.no_captured:
        captured, compiled = measure_captured(args, model, builder, schedule, target)
        rows += captured
    return rows, compiled, sum(parameter.numel() for parameter in model.parameters())


def measure_eager(
    args: argparse.Namespace,
    model: CsmForConditionalGeneration,
    builder: PromptBuilder,
    schedule: Schedule,
    target: list[Segment],
) -> list[Row]:
    """`model.generate` and the eager server's rows (its batch compiles nothing)."""
    device = model.lm_head.weight.device
    input_ids = torch.tensor([builder.text_ids(target[0])], device=device)
    server = Server(model, builder, schedule, PrefixCache(4 * 2**30), max(args.batches))
    log("warm-up")
    run_generate(model, input_ids, WARMUP_FRAMES, schedule)
    server.run("warm-up", [target, target], WARMUP_FRAMES, audio=True)
    rows = [run_generate(model, input_ids, args.frames, schedule)]
    for n in args.batches:
        row = server.run(f"scheduler x{n}", [target] * n, args.frames)
        row.base = "generate" if n == 1 else "scheduler x1"
        rows.append(row)
    frame_time = rows[1].wall / rows[1].frames
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
    rows.append(server.run("first audio x1", [target], first, audio=True))
    server.scheduler.close()
    return rows


def measure_captured(
    args: argparse.Namespace,
    model: CsmForConditionalGeneration,
    builder: PromptBuilder,
    schedule: Schedule,
    target: list[Segment],
) -> tuple[list[Row], Compiled]:
    """The captured server's rows, its shapes compiled first (see the module docstring)."""
    device = model.lm_head.weight.device
    max_rows = max(args.captured_batches)
    # The bucket each captured batch runs in (the plan rounds each size up to one), at the
    # smallest span: every row here holds a sentence and its frames, far fewer columns.
    spans = span_sizes(builder.max_positions)[:1]
    plan = capture_plan(device, bucket_sizes(max_rows), spans, requested=args.captured_batches)
    server = Server(model, builder, schedule, None, max_rows, plan)
    assert server.batch.capture is not None
    seconds = compile_steps(server.batch.capture)
    log("captured warm-up")
    started = time.perf_counter()
    for n in args.captured_batches:
        server.run(f"captured warm-up x{n}", [target] * n, CAPTURED_WARMUP_FRAMES, audio=True)
    compiled = Compiled(plan.mode, seconds, time.perf_counter() - started)
    batch = server.batch
    captured_before, eager_before = batch.steps_captured, batch.steps_eager
    rows = []
    for n in args.captured_batches:
        row = server.run(f"captured x{n}", [target] * n, args.frames)
        row.base = "scheduler x1" if n == 1 else "captured x1"
        rows.append(row)
    for n in args.captured_batches:
        name = f"captured first audio x{n}"
        row = server.run(name, [target] * n, schedule.first_emit, audio=True)
        row.base = "first audio: " + ("first audio x1" if n == 1 else "captured first audio x1")
        rows.append(row)
    compiled.steps_captured = batch.steps_captured - captured_before
    compiled.steps_eager = batch.steps_eager - eager_before
    server.scheduler.close()
    return rows, compiled


def compile_steps(capture: StepCapture) -> dict[str, float]:
    """Compile every planned shape now, as the engine does in the background after start-up;
    the seconds each took. A shape that fails to compile stops the benchmark: its rows would
    measure the eager step under the captured name."""
    log(f"compiling the frame step for {', '.join(capture.status.planned)} ({capture.plan.mode})")
    capture.start()
    capture.wait()
    status = capture.status
    if status.failed or status.captured != status.planned:
        raise RuntimeError(f"compiling the CSM frame step failed: {status.failed or status}")
    log(f"  compiled: {status.compile_seconds}")
    return dict(status.compile_seconds)


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    schedule = engine_schedule()
    with torch.inference_mode():
        rows, compiled, parameters = measure(args, device, schedule)
    print(
        f"bench_csm: {args.size} CSM ({parameters / 1e6:.0f}M parameters), random "
        f"weights, {device} ({machine(device)}), {args.dtype}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.frames} frames per request; emission "
        f"{schedule.first_emit} then {schedule.emit} frames; reference "
        f"{args.reference_seconds:g} s"
    )
    if compiled is not None:
        print(compiled.line())
    print(render(table(rows, 1.0 / schedule.frame_rate)))


if __name__ == "__main__":
    main()
