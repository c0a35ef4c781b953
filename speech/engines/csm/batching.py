"""CSM's side of the scheduler: prefill one request, then step every running request at once.

Every running request owns a slot of a preallocated cache (`SlotState`, as many slots as the
batch may have rows). Its prompt is prefilled on its own (transformers' backbone, any length)
and copied into a free slot's first columns; from then on its frames are written at its own
next position, which is a tensor like everything else about it. A step runs the smallest
bucket of slots (1, 2, 4, ... up to the batch's maximum) that holds every used slot, and reads
the smallest span of columns that holds every row's position: shapes that never change, so
each (bucket, span) is one compiled graph (`FrameStep`, `speech.engines.csm.capture`). A
leaving request frees its slot at once; when the rows left fit a smaller bucket, the ones in
slots past it move down (`_compact`). Free slots in a bucket are computed and ignored.

Sampling is a pure function of each request's seed, frame number and codebook
(`speech.engines.csm.sampler`): a request draws the same ids alone or in any batch.

Prefix cache: a voice's reference is the first turn of every prompt in that voice. Its keys and
values depend on nothing after it, so they are computed once and reused (LRU, bounded in bytes);
only the rest of the prompt is prefilled per request.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from transformers import CsmForConditionalGeneration, DynamicCache

from speech.engines.csm.capture import CapturePlan, StepCapture
from speech.engines.csm.frame_step import FrameStep, SlotState, StepShape
from speech.engines.csm.generation import Sampling, prefill
from speech.engines.csm.prompt import PromptBuilder, Segment
from speech.engines.scheduler import FrameJob

KeyValues = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Prefilled:
    """One request after its prompt: its own cache and the backbone's last hidden state, and
    how it samples (settings, seed, the frame number its first frame has)."""

    key_values: KeyValues
    last_hidden: torch.Tensor  # (1, hidden)
    length: int
    sampling: Sampling
    seed: int
    first_frame: int


class PrefixCache:
    """Key/value caches of prompt prefixes (voice references), least recently used out first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, KeyValues] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> KeyValues | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: str, key_values: KeyValues) -> None:
        size = _size(key_values)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = key_values
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= _size(evicted)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def _size(key_values: KeyValues) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in key_values)


def _cache_holding(model: CsmForConditionalGeneration, key_values: KeyValues) -> DynamicCache:
    """A backbone cache that starts with `key_values`, sharing them: it appends by
    concatenation, so a cached prefix is never written to."""
    cache = DynamicCache(config=model.backbone_model.config)
    for index, (keys, values) in enumerate(key_values):
        layer = cache.layers[index]
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
    return cache


def _key_values(cache: DynamicCache) -> KeyValues:
    return [(layer.keys, layer.values) for layer in cache.layers]


def bucket_sizes(max_rows: int) -> list[int]:
    """Rows a step is made for: powers of two below `max_rows`, and `max_rows` itself."""
    sizes = [1 << power for power in range(max_rows.bit_length()) if 1 << power < max_rows]
    return [*sizes, max_rows]


def span_sizes(window: int) -> list[int]:
    """Columns a step reads: a quarter of the window (most prompts with their speech fit), or
    all of it. Reading fewer columns saves memory traffic that grows with every row."""
    return sorted({max(1, window // 4), window})


class CsmBatch:
    """The running batch of CSM requests (see the module docstring)."""

    def __init__(
        self,
        model: CsmForConditionalGeneration,
        builder: PromptBuilder,
        prefixes: PrefixCache | None,
        *,
        max_rows: int,
        capture: CapturePlan | None = None,
    ) -> None:
        self.model = model
        self.builder = builder
        self.prefixes = prefixes
        self.frame_step = FrameStep(model)
        self.window = builder.max_positions
        self.buckets = bucket_sizes(max_rows)
        self.spans = span_sizes(self.window)
        with torch.inference_mode():
            self.state = SlotState(model, max_rows, self.window)
        self.capture = (
            None if capture is None else StepCapture(self.frame_step, self.state, capture)
        )
        # The slot of each row, in the scheduler's order, and each used slot's next position
        # (kept on the host, so choosing a step's shape never waits for the device).
        self._slots: list[int] = []
        self._lengths: dict[int, int] = {}
        self.steps_captured = 0
        self.steps_eager = 0

    @property
    def rows(self) -> int:
        return len(self._slots)

    # --- prefill ----------------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, job: FrameJob) -> Prefilled:
        segments: list[Segment] = job.prompt
        head = segments[0]
        if self.prefixes is None or head.prefix_key is None or len(segments) < 2:
            state = prefill(self.model, self.builder.embed(segments))
            key_values, last_hidden, length = (
                _key_values(state.cache),
                state.last_hidden,
                state.positions,
            )
        else:
            prefix = self.prefixes.get(head.prefix_key)
            if prefix is None:
                prefix = _key_values(prefill(self.model, self.builder.embed([head])).cache)
                self.prefixes.put(head.prefix_key, prefix)
            cache = _cache_holding(self.model, prefix)
            rest = self.builder.embed(segments[1:])
            out = self.model.backbone_model(inputs_embeds=rest, cache=cache, use_cache=True)
            key_values, last_hidden = _key_values(cache), out.last_hidden_state[:, -1]
            length = cache.get_seq_length()
        return Prefilled(key_values, last_hidden, length, job.sampling, job.seed, job.first_frame)

    # --- the batch --------------------------------------------------------------------------

    @torch.inference_mode()
    def join(self, row: Prefilled) -> None:
        slot = min(set(range(self.state.rows)) - set(self._slots))
        state = self.state
        for keys, values, (row_keys, row_values) in zip(
            state.keys, state.values, row.key_values, strict=True
        ):
            keys[slot, :, : row.length].copy_(row_keys[0])
            values[slot, :, : row.length].copy_(row_values[0])
        state.last_hidden[slot].copy_(row.last_hidden[0])
        for tensor, value in (
            (state.positions, row.length),
            (state.frames, row.first_frame),
            (state.seeds, row.seed),
            (state.temperatures, row.sampling.temperature),
            (state.topks, row.sampling.topk),
            (state.active, 1),
        ):
            tensor[slot] = value
        self._slots.append(slot)
        self._lengths[slot] = row.length

    @torch.inference_mode()
    def keep(self, rows: list[int]) -> None:
        kept = [self._slots[index] for index in rows]
        for slot in set(self._slots) - set(kept):
            self.state.active[slot] = 0
            del self._lengths[slot]
        self._slots = kept
        self._compact()

    def _compact(self) -> None:
        """Move rows from slots past the smallest bucket that holds them all into free slots
        below it, so a step never computes more rows than that bucket."""
        if not self._slots:
            return
        bound = min(size for size in self.buckets if size >= len(self._slots))
        free = sorted(set(range(bound)) - set(self._slots))
        for index, slot in enumerate(self._slots):
            if slot >= bound:
                target = free.pop(0)
                self._move(slot, target)
                self._slots[index] = target

    def _move(self, source: int, target: int) -> None:
        state = self.state
        length = self._lengths.pop(source)
        for keys, values in zip(state.keys, state.values, strict=True):
            keys[target, :, :length].copy_(keys[source, :, :length])
            values[target, :, :length].copy_(values[source, :, :length])
        for tensor in state.full.per_row():
            tensor[target] = tensor[source]
        state.active[source] = 0
        self._lengths[target] = length

    def shape_needed(self) -> StepShape:
        """The smallest bucket and span that hold every row's slot and next position."""
        rows = max(self._slots) + 1
        columns = max(self._lengths.values()) + 1
        return StepShape(
            rows=min(size for size in self.buckets if size >= rows),
            span=min(size for size in self.spans if size >= columns),
        )

    @torch.inference_mode()
    def step(self, jobs: list[FrameJob]) -> tuple[torch.Tensor, list[bool]]:
        assert len(jobs) == len(self._slots)
        needed = self.shape_needed()
        captured = None if self.capture is None else self.capture.covering(needed)
        if captured is not None:
            shape, run = captured
            self.steps_captured += 1
        else:
            shape, run = needed, self.frame_step
            self.steps_eager += 1
        codes, ended = run(self.state.views(shape.rows), shape.span)
        # The one host synchronisation per step: the frames (and whether each ends the speech)
        # go to their requests' threads.
        on_host = torch.cat([codes, ended.unsqueeze(1).to(codes.dtype)], dim=1).cpu()
        on_host = on_host[self._slots]
        for slot in self._slots:
            self._lengths[slot] += 1
        return on_host[:, :-1], on_host[:, -1].bool().tolist()
