"""CSM's side of the scheduler: prefill one request, then step every running request at once.

The backbone's key/value cache is one tensor per layer for the whole batch, (rows, heads,
columns, dim). Requests join at different moments with prompts of different lengths, so a
row's columns are its prompt, possibly a gap, then its frames; `valid` marks which columns
each row attends to, and each row's RoPE position is its own (`positions`). Attention does
not care where a key sits in the cache, only whether it is masked, so a joining row is padded
to the batch's width (or the batch to its) and every later frame is appended for all rows at
once, in place, into room kept after the content (`GrowingLayer`; the room doubles when
it runs out), so a step does not copy the whole cache. Columns no remaining row needs are
dropped when rows leave; a request alone in the
batch therefore runs exactly the single-request path (no mask, no gap), which reproduces
`model.generate` frame for frame.

The depth decoder starts afresh every frame at the same depth for every row, so it batches
as is. Each row samples with its own temperature, top-k and generator (`draw_rows`).

Prefix cache: a voice's reference is the first turn of every prompt in that voice. Its keys and
values depend on nothing after it, so they are computed once and reused (LRU, bounded in bytes);
only the rest of the prompt is prefilled per request.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from transformers import CsmForConditionalGeneration, DynamicCache
from transformers.cache_utils import DynamicLayer

from speech.engines.csm.generation import (
    FrameGenerator,
    Sampling,
    depth_codes,
    draw_rows,
    is_end_of_audio,
)
from speech.engines.csm.prompt import PromptBuilder, Segment
from speech.engines.scheduler import FrameJob

KeyValues = list[tuple[torch.Tensor, torch.Tensor]]
# Columns of room a batch cache starts with beyond its content (at least its content's own).
_MIN_ROOM = 64


@dataclass
class Prefilled:
    """One request after its prompt: its own cache and the backbone's last hidden state."""

    key_values: KeyValues
    last_hidden: torch.Tensor  # (1, hidden)
    length: int


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


class GrowingLayer(DynamicLayer):
    """A cache layer that appends in place into room kept after its content, doubling the room
    when it runs out, where a plain layer copies its whole content at every step."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.device = keys.device
        self.is_initialized = True
        self._length = keys.shape[-2]
        self._room_keys = _pad_right(keys, max(_MIN_ROOM, self._length))
        self._room_values = _pad_right(values, max(_MIN_ROOM, self._length))
        self._expose()

    def _expose(self) -> None:
        self.keys = self._room_keys[:, :, : self._length]
        self.values = self._room_values[:, :, : self._length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._length + key_states.shape[-2]
        if end > self._room_keys.shape[-2]:
            self._room_keys = _pad_right(self.keys, max(self._length, key_states.shape[-2]))
            self._room_values = _pad_right(self.values, max(self._length, key_states.shape[-2]))
        self._room_keys[:, :, self._length : end] = key_states
        self._room_values[:, :, self._length : end] = value_states
        self._length = end
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._length


def _cache_holding(
    model: CsmForConditionalGeneration, key_values: KeyValues, *, growing: bool = False
) -> DynamicCache:
    """A backbone cache that starts with `key_values`. A plain one shares them (it appends by
    concatenation, never writing in place); a growing one copies them into room to grow."""
    cache = DynamicCache(config=model.backbone_model.config)
    for index, (keys, values) in enumerate(key_values):
        if growing:
            cache.layers[index] = GrowingLayer(keys, values)
        else:
            layer = cache.layers[index]
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values
    return cache


def _key_values(cache: DynamicCache) -> KeyValues:
    return [(layer.keys, layer.values) for layer in cache.layers]


class CsmBatch:
    """The running batch of CSM requests (see the module docstring)."""

    def __init__(
        self,
        model: CsmForConditionalGeneration,
        builder: PromptBuilder,
        prefixes: PrefixCache | None,
    ) -> None:
        self.model = model
        self.builder = builder
        self.prefixes = prefixes
        self._frames = FrameGenerator(model)
        self.eos_id = self._frames.eos_id
        self.codebook_limit = self._frames.codebook_limit
        self._reset()

    def _reset(self) -> None:
        self._cache: DynamicCache | None = None
        self._valid: torch.Tensor | None = None  # (rows, columns) bool
        self._last_hidden: torch.Tensor | None = None  # (rows, hidden)
        self._positions: torch.Tensor | None = None  # (rows,) the next frame's position
        # Kept on the host, so no step has to ask the device whether the cache has gaps.
        self._gapless = True

    @property
    def rows(self) -> int:
        return 0 if self._last_hidden is None else self._last_hidden.shape[0]

    @property
    def columns(self) -> int:
        return 0 if self._valid is None else self._valid.shape[1]

    # --- prefill ----------------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, job: FrameJob) -> Prefilled:
        segments: list[Segment] = job.prompt
        head = segments[0]
        if self.prefixes is None or head.prefix_key is None or len(segments) < 2:
            state = self._frames.prefill(self.builder.embed(segments))
            return Prefilled(_key_values(state.cache), state.last_hidden, state.positions)
        prefix = self.prefixes.get(head.prefix_key)
        if prefix is None:
            prefix = _key_values(self._frames.prefill(self.builder.embed([head])).cache)
            self.prefixes.put(head.prefix_key, prefix)
        cache = _cache_holding(self.model, prefix)
        rest = self.builder.embed(segments[1:])
        out = self.model.backbone_model(inputs_embeds=rest, cache=cache, use_cache=True)
        return Prefilled(_key_values(cache), out.last_hidden_state[:, -1], cache.get_seq_length())

    # --- the batch --------------------------------------------------------------------------

    @torch.inference_mode()
    def join(self, row: Prefilled) -> None:
        device = row.last_hidden.device
        row_valid = torch.ones(1, row.length, dtype=torch.bool, device=device)
        position = torch.tensor([row.length], device=device)
        if self._cache is None:
            self._cache = _cache_holding(self.model, row.key_values, growing=True)
            self._valid, self._last_hidden, self._positions = row_valid, row.last_hidden, position
            self._gapless = True
            return
        assert self._valid is not None and self._last_hidden is not None
        assert self._positions is not None
        width = max(self.columns, row.length)
        # The batch grows gaps on the left, the row on the right: masked either way.
        grow = width - self.columns
        merged = []
        for (keys, values), (row_keys, row_values) in zip(
            _key_values(self._cache), row.key_values, strict=True
        ):
            keys, values = _pad_left(keys, grow), _pad_left(values, grow)
            row_keys = _pad_right(row_keys, width - row.length)
            row_values = _pad_right(row_values, width - row.length)
            merged.append((torch.cat([keys, row_keys]), torch.cat([values, row_values])))
        self._cache = _cache_holding(self.model, merged, growing=True)
        valid = torch.cat([self._valid.new_zeros(self.rows, grow), self._valid], dim=1)
        row_valid = torch.cat([row_valid, row_valid.new_zeros(1, width - row.length)], dim=1)
        self._valid = torch.cat([valid, row_valid])
        self._last_hidden = torch.cat([self._last_hidden, row.last_hidden])
        self._positions = torch.cat([self._positions, position])
        self._gapless = False

    @torch.inference_mode()
    def keep(self, rows: list[int]) -> None:
        if not rows:
            self._reset()
            return
        if rows == list(range(self.rows)):
            return
        assert self._cache is not None and self._valid is not None
        assert self._last_hidden is not None and self._positions is not None
        index = torch.tensor(rows, device=self._valid.device)
        valid = self._valid.index_select(0, index)
        # Columns only the leavers needed go too (a lone row is then gap-free).
        columns = valid.any(dim=0).nonzero().squeeze(1)
        all_columns = columns.numel() == valid.shape[1]
        kept = []
        for keys, values in _key_values(self._cache):
            keys, values = keys.index_select(0, index), values.index_select(0, index)
            if not all_columns:
                keys, values = keys.index_select(2, columns), values.index_select(2, columns)
            kept.append((keys, values))
        self._cache = _cache_holding(self.model, kept, growing=True)
        self._valid = valid if all_columns else valid.index_select(1, columns)
        self._last_hidden = self._last_hidden.index_select(0, index)
        self._positions = self._positions.index_select(0, index)
        # A lone row keeps only the columns it attends to: no gap is left.
        self._gapless = len(rows) == 1

    @torch.inference_mode()
    def step(self, jobs: list[FrameJob]) -> tuple[torch.Tensor, list[bool]]:
        assert self._cache is not None and self._valid is not None
        assert self._last_hidden is not None and self._positions is not None
        model = self.model
        samplings: list[Sampling] = [job.sampling for job in jobs]
        generators = [job.generator for job in jobs]
        last_hidden = self._last_hidden
        first = draw_rows(model.lm_head(last_hidden), samplings, generators)
        codes = depth_codes(
            model, last_hidden, first, lambda logits: draw_rows(logits, samplings, generators)
        )
        embeds = model.backbone_model.embed_tokens(codes.unsqueeze(1))
        valid = torch.cat([self._valid, self._valid.new_ones(self.rows, 1)], dim=1)
        if self._gapless:
            # Alone and gap-free: the single-request path, exactly as `generate` runs it.
            out = model.backbone_model(inputs_embeds=embeds, cache=self._cache, use_cache=True)
        else:
            mask = torch.zeros(valid.shape, dtype=embeds.dtype, device=embeds.device)
            mask = mask.masked_fill(~valid, torch.finfo(embeds.dtype).min)
            out = model.backbone_model(
                inputs_embeds=embeds,
                attention_mask=mask[:, None, None, :],
                position_ids=self._positions.unsqueeze(1),
                cache=self._cache,
                use_cache=True,
            )
        self._valid = valid
        self._positions = self._positions + 1
        self._last_hidden = out.last_hidden_state[:, -1]
        # The one host synchronisation per step: the frames (and whether each ends the speech)
        # go to their requests' threads.
        ended = is_end_of_audio(codes, self.eos_id).to(codes.dtype)
        on_host = torch.cat([codes, ended.unsqueeze(1)], dim=1).cpu()
        return on_host[:, :-1], on_host[:, -1].bool().tolist()


def _pad_left(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    shape = (*tensor.shape[:2], columns, tensor.shape[3])
    return torch.cat([tensor.new_zeros(shape), tensor], dim=2)


def _pad_right(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    shape = (*tensor.shape[:2], columns, tensor.shape[3])
    return torch.cat([tensor, tensor.new_zeros(shape)], dim=2)
