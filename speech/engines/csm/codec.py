"""Mimi, CSM's audio codec: reference audio to codes, and codes to audio frame by frame.

transformers' Mimi decoder keeps no state between calls in its convolutions, so decoding a
clip piece by piece would click at every seam. `StreamingDecoder` walks the same modules with
the same weights and carries, per layer, exactly what the next piece needs: the last inputs
of each causal convolution, the overlapping tail of each transposed convolution, and the
decoder transformer's key/value cache. The pieces then join into the whole-clip decode.

`StreamingDecoder.decode_together` decodes the next piece of several streams at once: each
stream runs its own quantizer, upsampling and transformer step (its cache is its own), and
the convolution stack, the heavy part, runs once over the streams whose pieces have the same
length, their carried state stacked row by row.
"""

import hashlib
from collections import Counter
from collections.abc import Sequence

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


class _Carry:
    """What the next piece needs from this one, per module, for a batch of rows: the causal
    convolutions' past input and the transposed convolutions' pending tail."""

    def __init__(self) -> None:
        self.conv: dict[nn.Module, torch.Tensor] = {}
        self.overlap: dict[nn.Module, torch.Tensor] = {}

    @staticmethod
    def stack(carries: "list[_Carry]") -> "_Carry":
        """The rows' carries as one batch; a row without one yet gets zeros, as it would alone."""
        stacked = _Carry()
        for name in ("conv", "overlap"):
            parts = [getattr(carry, name) for carry in carries]
            for module in {module: None for part in parts for module in part}:
                like = next(part[module] for part in parts if module in part)
                rows = [part.get(module) for part in parts]
                rows = [row if row is not None else torch.zeros_like(like) for row in rows]
                getattr(stacked, name)[module] = torch.cat(rows)
        return stacked

    def unstack_into(self, carries: "list[_Carry]") -> None:
        """Hand each row of this batch's carry back to its own (compact, so no row keeps the
        whole batch's tensors alive)."""
        for name in ("conv", "overlap"):
            for module, batch in getattr(self, name).items():
                for index, carry in enumerate(carries):
                    getattr(carry, name)[module] = batch[index : index + 1].clone()


class StreamingDecoder:
    """Decode codes (frames, codebooks) piece by piece; the pieces equal the whole decode."""

    def __init__(self, codec: MimiModel) -> None:
        self._codec = codec
        self._decoder = codec.decoder
        self._cache = DynamicCache(config=self._decoder.config)
        self._upsample = _Carry()
        self._seanet = _Carry()

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio (samples,) for the next `codes` (frames, codebooks), float32 on the CPU."""
        if codes.shape[0] == 0:
            return torch.zeros(0)
        hidden = self._hidden(codes)
        return _seanet(self._decoder, hidden, self._seanet)[0, 0].float().cpu()

    @staticmethod
    @torch.inference_mode()
    def decode_together(
        decoders: "Sequence[StreamingDecoder]", pieces: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """What `decoders[i].decode(pieces[i])` returns, for every i, with the convolution
        stack run once for all the pieces of the same length. A decoder listed twice decodes
        its pieces in the order given."""
        if len(decoders) != len(pieces):
            raise ValueError("one piece per decoder")
        results: list[torch.Tensor | None] = [None] * len(pieces)
        rounds: list[list[int]] = []
        seen: Counter[int] = Counter()
        for index, decoder in enumerate(decoders):
            turn = seen[id(decoder)]
            seen[id(decoder)] += 1
            if turn == len(rounds):
                rounds.append([])
            rounds[turn].append(index)
        for indices in rounds:
            groups: dict[tuple[nn.Module, int], list[tuple[int, torch.Tensor]]] = {}
            for index in indices:
                decoder, codes = decoders[index], pieces[index]
                if codes.shape[0] == 0:
                    results[index] = torch.zeros(0)
                    continue
                hidden = decoder._hidden(codes)
                groups.setdefault((decoder._decoder, hidden.shape[-1]), []).append((index, hidden))
            for (module, _), members in groups.items():
                if len(members) == 1:
                    index, hidden = members[0]
                    audio = _seanet(module, hidden, decoders[index]._seanet)
                    results[index] = audio[0, 0].float().cpu()
                    continue
                carries = [decoders[index]._seanet for index, _ in members]
                carry = _Carry.stack(carries)
                audio = _seanet(module, torch.cat([hidden for _, hidden in members]), carry)
                carry.unstack_into(carries)
                for row, (index, _) in zip(audio[:, 0].float().cpu(), members, strict=True):
                    results[index] = row
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]

    @staticmethod
    def decode_items(
        items: Sequence[tuple["StreamingDecoder", torch.Tensor]],
    ) -> list[torch.Tensor]:
        """`decode_together` of (decoder, codes) pairs."""
        return StreamingDecoder.decode_together(
            [decoder for decoder, _ in items], [codes for _, codes in items]
        )

    def _hidden(self, codes: torch.Tensor) -> torch.Tensor:
        """The convolution stack's input (1, channels, time) for the next `codes`: quantizer,
        upsampling and the decoder transformer, whose cache is this stream's own."""
        device = self._decoder.upsample.conv.weight.device if self._decoder.upsample else None
        codes = codes.transpose(0, 1).unsqueeze(0).to(device or codes.device)
        hidden = self._codec.quantizer.decode(codes)
        if self._decoder.upsample is not None:
            hidden = _transposed(self._decoder.upsample, hidden, self._upsample)
        out = self._decoder.decoder_transformer(
            hidden.transpose(1, 2), cache=self._cache, use_cache=True
        )
        return out.last_hidden_state.transpose(1, 2)


def _seanet(decoder: nn.Module, hidden: torch.Tensor, carry: _Carry) -> torch.Tensor:
    """The decoder's convolution stack over a batch (rows, channels, time), carrying `carry`."""
    for layer in decoder.decoder_seanet.layers:
        hidden = _apply(layer, hidden, carry)
    return hidden


def _apply(layer: nn.Module, hidden: torch.Tensor, carry: _Carry) -> torch.Tensor:
    if isinstance(layer, MimiConv1d):
        return _causal(layer, hidden, carry)
    if isinstance(layer, MimiConvTranspose1d):
        return _transposed(layer, hidden, carry)
    if isinstance(layer, MimiResnetBlock):
        residual = hidden
        for inner in layer.block:
            hidden = _apply(inner, hidden, carry)
        return _apply(layer.shortcut, residual, carry) + hidden
    return layer(hidden)


def _causal(layer: MimiConv1d, hidden: torch.Tensor, carry: _Carry) -> torch.Tensor:
    """A causal convolution whose left padding is the end of the previous piece's input."""
    stride = layer.conv.stride[0]
    if stride != 1:
        raise ValueError("streaming decode expects stride-1 convolutions in the decoder")
    context = int(layer.padding_total)
    past = carry.conv.get(layer)
    if past is None:
        # The whole-clip decode pads with zeros on the left (pad_mode "constant").
        past = hidden.new_zeros(hidden.shape[0], hidden.shape[1], context)
    padded = torch.cat([past, hidden], dim=-1)
    if context:
        carry.conv[layer] = padded[..., padded.shape[-1] - context :]
    return layer.conv(padded)


def _transposed(layer: MimiConvTranspose1d, hidden: torch.Tensor, carry: _Carry) -> torch.Tensor:
    """A transposed convolution: this piece's output overlaps the next one's by k - s.

    The whole-clip layer trims that overlap from the right end only (causal), so each piece
    emits `frames * stride` samples and keeps the rest, without bias, to add later.
    """
    conv = layer.conv
    stride = conv.stride[0]
    if layer.padding_left != 0:
        raise ValueError("streaming decode expects causal transposed convolutions")
    full = conv(hidden)
    bias = conv.bias.view(1, -1, 1) if conv.bias is not None else None
    pending = carry.overlap.get(layer)
    if pending is not None:
        overlap = pending.shape[-1]
        full = torch.cat([full[..., :overlap] + pending, full[..., overlap:]], dim=-1)
    emitted = hidden.shape[-1] * stride
    tail = full[..., emitted:]
    carry.overlap[layer] = tail - bias if bias is not None else tail
    return full[..., :emitted]
