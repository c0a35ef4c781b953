"""Compiling the frame step per (bucket, span), in the background, while the eager step serves.

`torch.compile(fullgraph=True, dynamic=False)` makes one graph of the whole frame for each
shape; on CUDA, mode `reduce-overhead` replays it as a CUDA graph (the slot tensors are marked
static, so the graph reads and writes them where they are). Compiling takes minutes, so it
happens on a thread of its own against a scratch copy of the slot tensors of the same shapes
(the live ones are in use); a shape switches over as soon as its graph is ready, and until
then the model thread runs the same step eagerly. Inductor's cache is kept on the model-cache
volume (`CSM_COMPILE_CACHE_DIR`), so a restart reuses the compiled code.

On a CPU only the buckets named (default: one row and the largest) are compiled: each costs
minutes of the server's few cores at start-up; a batch between them runs on the next captured
bucket up, its free rows computed and ignored.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from speech.engines.csm.frame_step import FrameStep, SlotState, SlotViews, StepShape

logger = logging.getLogger(__name__)

StepFunction = Callable[[SlotViews, int], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class CapturePlan:
    """What to compile, in this order, and how."""

    shapes: tuple[StepShape, ...]
    # "reduce-overhead" (CUDA graphs) on CUDA, "default" elsewhere.
    mode: str
    # Inductor's cache directory ("" leaves torch's default).
    cache_dir: str = ""


def capture_plan(
    device: torch.device,
    buckets: list[int],
    spans: list[int],
    *,
    requested: list[int] | None = None,
    cache_dir: str = "",
) -> CapturePlan:
    """The `requested` buckets, else every bucket on CUDA and one row and the largest on a CPU.
    Small spans first, and small buckets before large ones, so the common case is ready first."""
    if requested:
        # Each size asked for names the bucket that holds it (3 rows run in the 4-row bucket).
        holding = ([b for b in buckets if b >= size] or buckets[-1:] for size in requested)
        chosen = sorted({min(fits) for fits in holding})
    elif device.type == "cuda":
        chosen = list(buckets)
    else:
        chosen = sorted({buckets[0], buckets[-1]})
    shapes = tuple(StepShape(rows, span) for span in spans for rows in chosen)
    mode = "reduce-overhead" if device.type == "cuda" else "default"
    return CapturePlan(shapes=shapes, mode=mode, cache_dir=cache_dir)


@dataclass
class CaptureStatus:
    """What /readyz and /metrics say about the captured step."""

    mode: str
    planned: list[str]
    captured: list[str] = field(default_factory=list)
    compiling: str = ""
    failed: str = ""
    compile_seconds: dict[str, float] = field(default_factory=dict)


def shape_label(shape: StepShape) -> str:
    return f"{shape.rows}x{shape.span}"


class StepCapture:
    """The compiled steps of one `FrameStep` over one `SlotState` (see the module docstring)."""

    def __init__(self, step: FrameStep, state: SlotState, plan: CapturePlan) -> None:
        self._step = step
        self._state = state
        self.plan = plan
        self._compiled: StepFunction = torch.compile(
            step.__call__, fullgraph=True, dynamic=False, mode=plan.mode
        )
        self._ready: dict[StepShape, StepFunction] = {}
        self._lock = threading.Lock()
        self.status = CaptureStatus(mode=plan.mode, planned=[shape_label(s) for s in plan.shapes])
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        _allow_recompiles(len(plan.shapes))
        if plan.mode == "reduce-overhead":
            # The very tensors each compiled step is called with: CUDA graphs read and write
            # them in place instead of copying them in and out at every replay.
            for shape in plan.shapes:
                for tensor in state.views(shape.rows).tensors():
                    torch._dynamo.mark_static_address(tensor)

    def start(self) -> None:
        """Compile every planned shape on a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._compile_all, name="csm-capture", daemon=True
            )
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every planned shape is compiled or compiling stopped; whether it did."""
        return self._done.wait(timeout)

    def covering(self, needed: StepShape) -> tuple[StepShape, StepFunction] | None:
        """The smallest captured shape that holds `needed`, with its compiled step."""
        with self._lock:
            fits = [s for s in self._ready if s.rows >= needed.rows and s.span >= needed.span]
            if not fits:
                return None
            shape = min(fits, key=lambda s: (s.rows, s.span))
            return shape, self._ready[shape]

    def report(self) -> dict[str, object]:
        """A copy of the status, taken while the compiling thread cannot change it."""
        with self._lock:
            return asdict(self.status)

    def _compile_all(self) -> None:
        try:
            if self.plan.cache_dir:
                _use_cache_dir(self.plan.cache_dir)
            for shape in self.plan.shapes:
                label = shape_label(shape)
                with self._lock:
                    self.status.compiling = label
                started = time.monotonic()
                try:
                    self._compile(shape)
                except Exception as exc:
                    # Whatever stops one shape (no C compiler, an unsupported operator) stops
                    # them all: the eager step keeps serving, and /readyz says why.
                    logger.exception("compiling the CSM frame step failed; the eager step serves")
                    with self._lock:
                        self.status.failed = f"{type(exc).__name__}: {exc}"[:500]
                    return
                seconds = time.monotonic() - started
                with self._lock:
                    self._ready[shape] = self._compiled
                    self.status.compile_seconds[label] = round(seconds, 1)
                    self.status.captured.append(label)
                logger.info("CSM frame step captured for %s in %.0f s", label, seconds)
        finally:
            with self._lock:
                self.status.compiling = ""
            self._done.set()

    @torch.inference_mode()
    def _compile(self, shape: StepShape) -> None:
        """Compile (and run once) the step of `shape` on scratch slots of the same shapes."""
        scratch = SlotState(self._step.model, shape.rows, self._state.window)
        views = scratch.views(shape.rows)
        views.active.fill_(1)
        if self.plan.mode == "reduce-overhead":
            for tensor in views.tensors():
                torch._dynamo.mark_static_address(tensor)
        self._compiled(views, shape.span)
        if self._state.keys[0].device.type == "cuda":
            torch.cuda.synchronize(self._state.keys[0].device)


def _use_cache_dir(directory: str) -> None:
    """Inductor's and Triton's caches under `directory`. Inductor reads its directory from the
    environment at each compile (and writes its default there on first use, so this one is
    set, not defaulted); Triton's is left alone where set by hand."""
    os.makedirs(directory, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = directory
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(directory, "triton"))


def _allow_recompiles(shapes: int) -> None:
    """Each shape is one compile of the same function: allow as many, with room to spare."""
    config = torch._dynamo.config
    wanted = 2 * shapes + 8
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name) and getattr(config, name) < wanted:
            setattr(config, name, wanted)
    if config.accumulated_recompile_limit < wanted:
        config.accumulated_recompile_limit = wanted
