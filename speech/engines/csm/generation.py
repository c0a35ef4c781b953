"""CSM's frame loop, driven over the model's own modules.

One frame = the backbone predicts codebook 0 from everything so far, then the depth decoder
predicts codebooks 1..K-1 one after the other from the backbone's last hidden state. Keeping
the pieces apart (prefill, one frame step) rather than calling `generate` lets a scheduler run
many requests frame by frame; `model.generate` stays the reference this loop reproduces.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import CsmForConditionalGeneration, DynamicCache


@dataclass(frozen=True)
class Sampling:
    temperature: float
    topk: int
    # Ids from this one up cannot be decoded by the codec (padding and special ids): never drawn.
    codebook_limit: int

    def draw(self, logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Sample one id per row of `logits` (batch, vocabulary) → (batch,)."""
        scores = logits.float()
        scores[..., self.codebook_limit :] = -float("inf")
        scores = scores / self.temperature
        k = min(self.topk, self.codebook_limit)
        threshold = torch.topk(scores, k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < threshold, -float("inf"))
        probs = torch.softmax(scores, dim=-1)
        if generator is not None and probs.device != generator.device:
            # Under a device map the heads may sit on another GPU than the request's generator.
            probs = probs.to(generator.device)
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def lay_out_codebook_heads(model: CsmForConditionalGeneration) -> None:
    """Store the depth decoder's codebook heads so each one is a contiguous (vocabulary,
    hidden) matrix, the layout a linear layer multiplies fastest.

    transformers keeps them as (codebooks, hidden, vocabulary) and multiplies by a transposed
    view; on a CPU that makes the 31 heads of a frame the largest cost of the frame, growing
    with the batch. The values are unchanged, and every caller (`generate` included) uses the
    same parameter, so what is drawn does not change either.
    """
    head = model.depth_decoder.codebooks_head
    with torch.no_grad():
        relaid = head.weight.detach().transpose(1, 2).contiguous().transpose(1, 2)
    head.weight = torch.nn.Parameter(relaid, requires_grad=False)


def draw_rows(
    logits: torch.Tensor,
    samplings: Sequence[Sampling],
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """One id per row of `logits` (batch, vocabulary), each row with its own sampling settings
    and generator, so a request draws the same ids whichever batch it shares a step with."""
    if len(samplings) == 1:
        return samplings[0].draw(logits, generators[0])
    limit = samplings[0].codebook_limit
    scores = logits.float()
    scores[..., limit:] = -float("inf")
    temperatures = torch.tensor([s.temperature for s in samplings], device=scores.device)
    scores = scores / temperatures.unsqueeze(1)
    ks = [min(s.topk, limit) for s in samplings]
    top = torch.topk(scores, max(ks), dim=-1).values
    threshold = top.gather(1, torch.tensor(ks, device=scores.device).unsqueeze(1) - 1)
    scores = scores.masked_fill(scores < threshold, -float("inf"))
    probs = torch.softmax(scores, dim=-1)
    drawn = []
    for row, generator in enumerate(generators):
        row_probs = probs[row : row + 1]
        if generator is not None and row_probs.device != generator.device:
            row_probs = row_probs.to(generator.device)
        drawn.append(torch.multinomial(row_probs, num_samples=1, generator=generator))
    return torch.cat(drawn).squeeze(-1).to(logits.device)


def depth_codes(
    model: CsmForConditionalGeneration,
    last_hidden: torch.Tensor,
    first: torch.Tensor,
    draw: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Codebooks 1..K-1 from the depth decoder, given codebook 0 and the backbone's last hidden
    state (batch, hidden), drawn by `draw(logits) -> ids`; all codebooks (batch, K).

    Every row of a batch is at the same depth position, so a batch runs as one.
    """
    depth = model.depth_decoder
    num_codebooks = int(model.config.num_codebooks)
    cache = DynamicCache(config=depth.config)
    # Position 0 is a placeholder replaced by the backbone's hidden state.
    ids = torch.stack([torch.zeros_like(first), first], dim=1)
    logits = depth(
        input_ids=ids,
        backbone_last_hidden_state=last_hidden,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1]
    codes = [first]
    for _ in range(1, num_codebooks):
        token = draw(logits)
        codes.append(token)
        if len(codes) == num_codebooks:
            break
        logits = depth(
            input_ids=token.unsqueeze(1), cache=cache, use_cache=True, logits_to_keep=1
        ).logits[:, -1]
    return torch.stack(codes, dim=1)


def is_end_of_audio(codes: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Per row of `codes` (batch, K): is it the end-of-audio frame? The model ends speech with a
    frame of end-of-audio ids; the last codebook is ignored, as `generate` does."""
    return (codes[:, :-1] == eos_id).all(dim=1)


@dataclass
class FrameState:
    """One request's place in generation: its caches and the backbone's last hidden state."""

    cache: DynamicCache
    last_hidden: torch.Tensor  # (batch, hidden)
    positions: int


class FrameGenerator:
    """The model's frame constants, and the prefill of one prompt (frames are made for a whole
    batch at once: `speech.engines.csm.batching.CsmBatch.step`)."""

    def __init__(self, model: CsmForConditionalGeneration) -> None:
        self.model = model
        config = model.config
        self.num_codebooks = int(config.num_codebooks)
        eos = config.codebook_eos_token_id
        self.eos_id = int(eos if isinstance(eos, int) else eos[0])
        self.codebook_limit = int(config.codec_config.codebook_size)

    @torch.inference_mode()
    def prefill(self, embeds: torch.Tensor) -> FrameState:
        """Run the prompt `embeds` (batch, positions, hidden) through the backbone."""
        cache = DynamicCache(config=self.model.backbone_model.config)
        out = self.model.backbone_model(inputs_embeds=embeds, cache=cache, use_cache=True)
        return FrameState(
            cache=cache, last_hidden=out.last_hidden_state[:, -1], positions=embeds.shape[1]
        )
