"""CSM's frame loop, driven over the model's own modules: sampling settings and the prompt's
prefill.

One frame = the backbone predicts codebook 0 from everything so far, then the depth decoder
predicts codebooks 1..K-1 one after the other from the backbone's last hidden state. Keeping
the pieces apart (prefill here, the frame step in `speech.engines.csm.frame_step`) rather than
calling `generate` lets a scheduler run many requests frame by frame; greedy `model.generate`
stays the reference the frame step reproduces.
"""

from dataclasses import dataclass

import torch
from transformers import CsmForConditionalGeneration, DynamicCache


@dataclass(frozen=True)
class Sampling:
    """A request's sampling settings (drawn by `speech.engines.csm.sampler`)."""

    temperature: float
    topk: int


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


@dataclass
class FrameState:
    """One request's place in generation: its caches and the backbone's last hidden state."""

    cache: DynamicCache
    last_hidden: torch.Tensor  # (batch, hidden)
    positions: int


@torch.inference_mode()
def prefill(model: CsmForConditionalGeneration, embeds: torch.Tensor) -> FrameState:
    """Run the prompt `embeds` (batch, positions, hidden) through the backbone (frames are then
    made for a whole batch at once: `speech.engines.csm.batching.CsmBatch.step`)."""
    cache = DynamicCache(config=model.backbone_model.config)
    out = model.backbone_model(inputs_embeds=embeds, cache=cache, use_cache=True)
    return FrameState(
        cache=cache, last_hidden=out.last_hidden_state[:, -1], positions=embeds.shape[1]
    )
