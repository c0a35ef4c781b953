"""Building CSM prompts: context segments (text + audio codes) and the text to speak.

CSM reads a conversation: for each earlier turn `<bos>[speaker]text<eos>` followed by that
turn's audio frames and an end-of-audio frame, then `<bos>[speaker]text<eos>` of the turn to
speak, after which it generates audio frames. The text part is rendered with the processor's
own chat template; audio frames are embedded from their codes, so a voice's reference is
encoded by the codec once and reused rather than re-encoded per request.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import CsmForConditionalGeneration, CsmProcessor

# The template sesame/csm-1b ships (same output), for checkpoints built offline.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- bos_token + '[' + message['role'] + ']' + message['content'][0]['text'] + eos_token -}}"
    "{%- if message['content'] | length > 1 -%}{{- '<|AUDIO|><|audio_eos|>' -}}{%- endif -%}"
    "{%- endfor -%}"
)


@dataclass(frozen=True)
class Segment:
    """One turn: who spoke, what was said, and (for context) its audio codes."""

    speaker: int
    text: str
    # (frames, codebooks) codec codes; None for the turn to be generated.
    codes: torch.Tensor | None = None
    # Kept in the context before any other turn (a voice's reference: without it the voice
    # would be lost), as long as it fits at all.
    pinned: bool = False
    # Names this segment's content when it starts a prompt (a voice's reference), so its
    # prefill can be computed once and reused; None when it is not worth keeping.
    prefix_key: str | None = None


class PromptBuilder:
    """Token counts and input embeddings of segments, for one loaded model."""

    def __init__(self, model: CsmForConditionalGeneration, processor: CsmProcessor) -> None:
        self._model = model
        self._processor = processor
        config = model.config
        self.num_codebooks = int(config.num_codebooks)
        self.max_positions = int(config.max_position_embeddings)
        self._eos_frame_id = int(
            config.codebook_eos_token_id
            if isinstance(config.codebook_eos_token_id, int)
            else config.codebook_eos_token_id[0]
        )

    def text_ids(self, segment: Segment) -> list[int]:
        """Token ids of `<bos>[speaker]text<eos>`, rendered by the checkpoint's template."""
        message = {
            "role": str(segment.speaker),
            "content": [{"type": "text", "text": segment.text}],
        }
        rendered = self._processor.apply_chat_template([message], tokenize=False)
        if isinstance(rendered, list):
            rendered = rendered[0]
        return self._processor.tokenizer(rendered, add_special_tokens=False)["input_ids"]

    def length(self, segment: Segment) -> int:
        """Positions the segment takes in the model's context."""
        audio = 0 if segment.codes is None else segment.codes.shape[0] + 1
        return len(self.text_ids(segment)) + audio

    @torch.inference_mode()
    def embed(self, segments: Sequence[Segment]) -> torch.Tensor:
        """Input embeddings (1, positions, hidden) of `segments` in order."""
        model = self._model
        device = model.embed_text_tokens.weight.device
        parts: list[torch.Tensor] = []
        for segment in segments:
            ids = torch.tensor(self.text_ids(segment), device=device)
            parts.append(model.embed_text_tokens(ids))
            if segment.codes is not None:
                frames = torch.cat(
                    [
                        segment.codes.to(device),
                        torch.full((1, self.num_codebooks), self._eos_frame_id, device=device),
                    ]
                )
                parts.append(model.backbone_model.embed_tokens(frames.unsqueeze(0))[0])
        return torch.cat(parts).unsqueeze(0)


def fit_context(
    builder: PromptBuilder, context: Sequence[Segment], target: Segment, reserve: int
) -> list[Segment]:
    """The pinned segments, then the newest other segments, that fit beside `target` and
    `reserve` generated frames, in their original order.

    Older turns go first: the model's window is finite, and the latest turns matter most. A
    pinned segment (the voice's reference) goes only if it cannot fit at all.
    """
    budget = builder.max_positions - reserve - builder.length(target)
    kept: set[int] = set()
    for index, segment in enumerate(context):
        if segment.pinned and builder.length(segment) <= budget:
            kept.add(index)
            budget -= builder.length(segment)
    for index in reversed(range(len(context))):
        if index in kept or context[index].pinned:
            continue
        size = builder.length(context[index])
        if size > budget:
            break
        kept.add(index)
        budget -= size
    return [segment for index, segment in enumerate(context) if index in kept]
