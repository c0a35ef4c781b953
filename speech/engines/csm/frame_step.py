"""One CSM frame for a bucket of rows, with shapes that never change: the step that is captured.

A frame is the backbone's head (codebook 0), 31 steps of the depth decoder (codebooks 1..31)
and one backbone step that takes the frame in. Written over the model's own modules (their
weights, norms and projections) rather than through `forward` with cache objects, so that
nothing in it depends on a Python value that changes from frame to frame:

- every row owns a slot of a preallocated backbone cache (`SlotState`: rows, heads, the
  model's 2,048-position window, head size); its next position, sampling settings, seed and
  frame number are tensors too, so a row joins or leaves without a new shape;
- the new key and value of each row are written at that row's own position, and attention
  reads a fixed span of the window (masked past each row's position);
- the depth decoder's 32-position cache is a fixed tensor that starts afresh every frame;
- sampling is `speech.engines.csm.sampler`: no generator objects, no per-row loop.

So for a given bucket (rows) and span the step is one graph: `torch.compile(fullgraph=True)`
compiles it once and, on a GPU, replays it as a CUDA graph (`speech.engines.csm.capture`). Run
without compiling it is the eager path, the same code.
"""

from dataclasses import dataclass

import torch
from torch.nn import functional
from transformers import CsmForConditionalGeneration

from speech.engines.csm.sampler import frame_keys, sample


@dataclass(frozen=True)
class StepShape:
    """Sizes that fix a compiled step's shapes: the rows it steps and the columns it reads."""

    rows: int
    span: int


class SlotState:
    """Per-slot tensors of the running batch, preallocated for `rows` slots.

    `keys[layer]` and `values[layer]` are (rows, key/value heads, window, head size); row r's
    columns 0..positions[r]-1 hold its prompt and frames so far. `views(n)` are the first n
    slots, made once per bucket so a compiled step always gets the very same tensors (CUDA
    graphs replay from fixed addresses).
    """

    def __init__(self, model: CsmForConditionalGeneration, rows: int, window: int) -> None:
        config = model.backbone_model.config
        layers = model.backbone_model.layers
        head_dim = layers[0].self_attn.head_dim
        heads = int(config.num_key_value_heads)
        self.rows, self.window = rows, window
        dtype = model.backbone_model.norm.weight.dtype
        self.keys, self.values = [], []
        for layer in layers:
            # Under a device map each layer's cache sits with the layer.
            device = layer.self_attn.k_proj.weight.device
            shape = (rows, heads, window, head_dim)
            self.keys.append(torch.zeros(shape, dtype=dtype, device=device))
            self.values.append(torch.zeros(shape, dtype=dtype, device=device))
        device = model.lm_head.weight.device
        self.last_hidden = torch.zeros(rows, int(config.hidden_size), dtype=dtype, device=device)
        self.positions = torch.zeros(rows, dtype=torch.int64, device=device)
        self.frames = torch.zeros(rows, dtype=torch.int64, device=device)
        self.seeds = torch.zeros(rows, dtype=torch.int64, device=device)
        self.temperatures = torch.ones(rows, dtype=torch.float32, device=device)
        self.topks = torch.ones(rows, dtype=torch.int64, device=device)
        self.active = torch.zeros(rows, dtype=torch.int64, device=device)
        self.full = SlotViews(
            keys=self.keys,
            values=self.values,
            last_hidden=self.last_hidden,
            positions=self.positions,
            frames=self.frames,
            seeds=self.seeds,
            temperatures=self.temperatures,
            topks=self.topks,
            active=self.active,
        )
        self._views: dict[int, SlotViews] = {}

    def views(self, rows: int) -> "SlotViews":
        if rows not in self._views:
            self._views[rows] = self.full.first(rows)
        return self._views[rows]


@dataclass
class SlotViews:
    """Slot tensors as the step reads and updates them: all of a `SlotState`, or its first
    rows."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    last_hidden: torch.Tensor
    positions: torch.Tensor
    frames: torch.Tensor
    seeds: torch.Tensor
    temperatures: torch.Tensor
    topks: torch.Tensor
    active: torch.Tensor

    def per_row(self) -> list[torch.Tensor]:
        """Everything of a row but its cache: hidden state, position, noise and sampling."""
        return [
            self.last_hidden,
            self.positions,
            self.frames,
            self.seeds,
            self.temperatures,
            self.topks,
            self.active,
        ]

    def tensors(self) -> list[torch.Tensor]:
        return [*self.keys, *self.values, *self.per_row()]

    def first(self, rows: int) -> "SlotViews":
        return SlotViews(
            [keys[:rows] for keys in self.keys],
            [values[:rows] for values in self.values],
            *(tensor[:rows] for tensor in self.per_row()),
        )


def _rotate(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE as transformers applies it (rotate-half), `cos`/`sin` broadcast over the heads."""
    half = states.shape[-1] // 2
    rotated = torch.cat([-states[..., half:], states[..., :half]], dim=-1)
    return states * cos + rotated * sin


def _attend(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Grouped-query attention. `query` (rows, heads, L, d); `keys`/`values` (rows, kv, S, d);
    `mask` True where a query may look, broadcast to (rows, 1, 1, L, S). → (rows, L, heads*d)."""
    rows, heads, length, dim = query.shape
    groups = heads // keys.shape[1]
    grouped = query.reshape(rows, keys.shape[1], groups * length, dim)
    scores = torch.matmul(grouped, keys.transpose(2, 3)) * dim**-0.5
    scores = scores.view(rows, keys.shape[1], groups, length, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights.view(rows, keys.shape[1], groups * length, -1), values)
    return out.view(rows, heads, length, dim).transpose(1, 2).reshape(rows, length, heads * dim)


class FrameStep:
    """The frame step of one model (see the module docstring); `__call__` runs it eagerly."""

    def __init__(self, model: CsmForConditionalGeneration) -> None:
        self.model = model
        config = model.config
        self.num_codebooks = int(config.num_codebooks)
        self.vocabulary = int(config.vocab_size)
        self.codebook_limit = int(config.codec_config.codebook_size)
        eos = config.codebook_eos_token_id
        self.eos_id = int(eos if isinstance(eos, int) else eos[0])
        depth = model.depth_decoder.model
        self._depth_layers = depth.config.num_hidden_layers
        self._depth_heads = int(depth.config.num_key_value_heads)
        self._depth_head_dim = depth.layers[0].self_attn.head_dim

    def __call__(self, state: SlotViews, span: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame for every row of `state`, reading `span` columns of the backbone cache;
        updates `state` in place. → codes (rows, codebooks) and whether each ends the speech."""
        model = self.model
        hidden = state.last_hidden
        # The noise keys of every codebook at once: (rows, codebooks).
        keys = frame_keys(state.seeds, state.frames, self.num_codebooks)
        first = self._draw(model.lm_head(hidden), state, keys[:, 0])
        codes = self._depth(hidden, first, state, keys)
        self._backbone(codes, state, span)
        ended = (codes[:, :-1] == self.eos_id).all(dim=1)
        return codes, ended

    def _draw(self, logits: torch.Tensor, state: SlotViews, keys: torch.Tensor) -> torch.Tensor:
        return sample(logits, state.temperatures, state.topks, self.codebook_limit, keys)

    # --- the depth decoder ------------------------------------------------------------------

    def _depth(
        self, hidden: torch.Tensor, first: torch.Tensor, state: SlotViews, keys: torch.Tensor
    ) -> torch.Tensor:
        """Codebooks 1..K-1 one after the other, from the backbone's hidden state and codebook 0.

        Position 0 is the backbone's hidden state, position p the embedding of codebook p-1
        (offset into the shared table by p-1 vocabularies); position p predicts codebook p
        with the p-th codebook head.
        """
        decoder = self.model.depth_decoder
        depth = decoder.model
        rows = hidden.shape[0]
        cache_shape = (rows, self._depth_heads, self.num_codebooks, self._depth_head_dim)
        caches = [
            (hidden.new_zeros(cache_shape), hidden.new_zeros(cache_shape))
            for _ in range(self._depth_layers)
        ]
        start = torch.stack([hidden, depth.embed_tokens(first)], dim=1)
        out = self._depth_positions(depth.inputs_embeds_projector(start), 0, caches)
        codes = [first]
        heads = decoder.codebooks_head.weight
        for codebook in range(1, self.num_codebooks):
            logits = functional.linear(depth.norm(out[:, -1]), heads[codebook - 1].T)
            code = self._draw(logits, state, keys[:, codebook])
            codes.append(code)
            if codebook == self.num_codebooks - 1:
                break
            embedded = depth.embed_tokens(code + codebook * self.vocabulary).unsqueeze(1)
            out = self._depth_positions(
                depth.inputs_embeds_projector(embedded), codebook + 1, caches
            )
        return torch.stack(codes, dim=1)

    def _depth_positions(
        self,
        states: torch.Tensor,
        start: int,
        caches: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        """Depth-decoder positions start.. (the same for every row) through its layers."""
        depth = self.model.depth_decoder.model
        length = states.shape[1]
        end = start + length
        positions = torch.arange(start, end, device=states.device).unsqueeze(0)
        cos, sin = depth.rotary_emb(states, position_ids=positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        mask = None
        if length > 1:
            mask = torch.ones(length, end, dtype=torch.bool, device=states.device).tril(start)
        for layer, (keys, values) in zip(depth.layers, caches, strict=True):
            attention = layer.self_attn
            normed = layer.input_layernorm(states)
            shape = (states.shape[0], length, -1, attention.head_dim)
            query = attention.q_proj(normed).view(shape).transpose(1, 2)
            key = attention.k_proj(normed).view(shape).transpose(1, 2)
            value = attention.v_proj(normed).view(shape).transpose(1, 2)
            keys[:, :, start:end] = _rotate(key, cos, sin)
            values[:, :, start:end] = value
            attended = _attend(_rotate(query, cos, sin), keys[:, :, :end], values[:, :, :end], mask)
            states = states + attention.o_proj(attended)
            states = states + layer.mlp(layer.post_attention_layernorm(states))
        return states

    # --- the backbone -----------------------------------------------------------------------

    def _backbone(self, codes: torch.Tensor, state: SlotViews, span: int) -> None:
        """Take the frame in: one position per row, at the row's own position."""
        backbone = self.model.backbone_model
        states = backbone.embed_tokens(codes.unsqueeze(1))  # (rows, 1, hidden)
        positions = state.positions
        # (rows, 1, head size): broadcast over the heads of one position.
        cos, sin = backbone.rotary_emb(states, position_ids=positions.unsqueeze(1))
        columns = torch.arange(span, device=positions.device)
        mask = (columns.unsqueeze(0) <= positions.unsqueeze(1))[:, None, None, None, :]
        rows = torch.arange(states.shape[0], device=positions.device)
        for layer, keys, values in zip(backbone.layers, state.keys, state.values, strict=True):
            attention = layer.self_attn
            device = keys.device
            states = states.to(device)
            normed = layer.input_layernorm(states)
            shape = (states.shape[0], -1, attention.head_dim)
            query = attention.q_proj(normed).view(shape)
            key = _rotate(attention.k_proj(normed).view(shape), cos.to(device), sin.to(device))
            # Indexed writes stay in place when compiled (a scatter copies the whole cache).
            at = (rows.to(device), slice(None), positions.to(device))
            keys[at] = key
            values[at] = attention.v_proj(normed).view(shape)
            query = _rotate(query, cos.to(device), sin.to(device)).unsqueeze(2)
            attended = _attend(query, keys[:, :, :span], values[:, :, :span], mask.to(device))
            states = states + attention.o_proj(attended)
            states = states + layer.mlp(layer.post_attention_layernorm(states))
        hidden = backbone.norm(states)[:, -1].to(state.last_hidden.device)
        state.last_hidden.copy_(hidden)
        # Only rows in use move on: a free slot's position stays inside the window.
        state.positions.add_(state.active)
        state.frames.add_(state.active)
