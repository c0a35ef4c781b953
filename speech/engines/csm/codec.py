"""Mimi, CSM's audio codec: reference audio to codes, and codes to audio frame by frame.

transformers' Mimi decoder keeps no state between calls in its convolutions, so decoding a
clip piece by piece would click at every seam. `StreamingDecoder` walks the same modules with
the same weights and carries, per layer, exactly what the next piece needs: the last inputs
of each causal convolution, the overlapping tail of each transposed convolution, and the
decoder transformer's key/value cache. The pieces then join into the whole-clip decode.
"""

import hashlib

import torch
from torch import nn
from transformers import DynamicCache
from transformers.models.mimi.modeling_mimi import (
    MimiConv1d,
    MimiConvTranspose1d,
    MimiModel,
    MimiResnetBlock,
)


def encode_audio(codec: MimiModel, samples: torch.Tensor) -> torch.Tensor:
    """Codes of mono `samples` at 24 kHz, shape (frames, codebooks)."""
    parameter = next(codec.parameters())
    values = samples.to(device=parameter.device, dtype=parameter.dtype).reshape(1, 1, -1)
    with torch.inference_mode():
        codes = codec.encode(values).audio_codes  # (1, codebooks, frames)
    return codes[0].transpose(0, 1).contiguous()


def codec_fingerprint(codec: MimiModel) -> str:
    """Names the codec's codebooks: codes stored under another fingerprint are another
    codec's, and are made again rather than decoded into noise."""
    digest = hashlib.sha256()
    for name, tensor in sorted(codec.quantizer.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        if "embed" in name or "codebook" in name:
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


class StreamingDecoder:
    """Decode codes (frames, codebooks) piece by piece; the pieces equal the whole decode."""

    def __init__(self, codec: MimiModel) -> None:
        self._codec = codec
        self._decoder = codec.decoder
        self._cache = DynamicCache(config=self._decoder.config)
        # Per module: the causal convolutions' past input, the transposed ones' pending tail.
        self._conv_state: dict[nn.Module, torch.Tensor] = {}
        self._overlap: dict[nn.Module, torch.Tensor] = {}

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio (samples,) for the next `codes` (frames, codebooks), float32 on the CPU."""
        if codes.shape[0] == 0:
            return torch.zeros(0)
        device = self._decoder.upsample.conv.weight.device if self._decoder.upsample else None
        codes = codes.transpose(0, 1).unsqueeze(0).to(device or codes.device)
        latents = self._codec.quantizer.decode(codes)
        hidden = latents
        if self._decoder.upsample is not None:
            hidden = self._transposed(self._decoder.upsample, hidden)
        out = self._decoder.decoder_transformer(
            hidden.transpose(1, 2), cache=self._cache, use_cache=True
        )
        hidden = out.last_hidden_state.transpose(1, 2)
        for layer in self._decoder.decoder_seanet.layers:
            hidden = self._apply(layer, hidden)
        return hidden[0, 0].float().cpu()

    def _apply(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, MimiConv1d):
            return self._causal(layer, hidden)
        if isinstance(layer, MimiConvTranspose1d):
            return self._transposed(layer, hidden)
        if isinstance(layer, MimiResnetBlock):
            residual = hidden
            for inner in layer.block:
                hidden = self._apply(inner, hidden)
            return self._apply(layer.shortcut, residual) + hidden
        return layer(hidden)

    def _causal(self, layer: MimiConv1d, hidden: torch.Tensor) -> torch.Tensor:
        """A causal convolution whose left padding is the end of the previous piece's input."""
        stride = layer.conv.stride[0]
        if stride != 1:
            raise ValueError("streaming decode expects stride-1 convolutions in the decoder")
        context = int(layer.padding_total)
        past = self._conv_state.get(layer)
        if past is None:
            # The whole-clip decode pads with zeros on the left (pad_mode "constant").
            past = hidden.new_zeros(hidden.shape[0], hidden.shape[1], context)
        padded = torch.cat([past, hidden], dim=-1)
        if context:
            self._conv_state[layer] = padded[..., padded.shape[-1] - context :]
        return layer.conv(padded)

    def _transposed(self, layer: MimiConvTranspose1d, hidden: torch.Tensor) -> torch.Tensor:
        """A transposed convolution: this piece's output overlaps the next one's by k - s.

        The whole-clip layer trims that overlap from the right end only (causal), so each
        piece emits `frames * stride` samples and keeps the rest, without bias, to add later.
        """
        conv = layer.conv
        stride = conv.stride[0]
        if layer.padding_left != 0:
            raise ValueError("streaming decode expects causal transposed convolutions")
        full = conv(hidden)
        bias = conv.bias.view(1, -1, 1) if conv.bias is not None else None
        pending = self._overlap.get(layer)
        if pending is not None:
            overlap = pending.shape[-1]
            full = torch.cat([full[..., :overlap] + pending, full[..., overlap:]], dim=-1)
        emitted = hidden.shape[-1] * stride
        tail = full[..., emitted:]
        self._overlap[layer] = tail - bias if bias is not None else tail
        return full[..., :emitted]
