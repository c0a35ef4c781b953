"""Sampling that compiles: top-k and temperature per row as tensors, randomness as a function.

Each request draws with the Gumbel-max trick: the id drawn is `argmax(logits / temperature +
gumbel)` over the top-k ids, which is a draw from `softmax(top-k logits / temperature)`. The
Gumbel noise is not taken from a generator object but computed from integers, a hash of
(seed, frame, codebook, id): the same request draws the same ids whichever rows share its
step, in any order, alone or batched, eager or compiled, on any device. There is no per-row
Python loop and no generator state to carry, so the whole step is one graph.

Seed semantics: a request's `seed` (the API's, else a random one) fixes the noise of every
frame it makes; frame numbers count over the whole request, chunk after chunk, so two chunks
never reuse each other's noise. Same seed, voice, text and parameters give the same audio.
"""

import torch

# Largest top-k the API accepts (`topk` 1..100): the top-k threshold is read from this many.
MAX_TOPK = 100
# The hash is 32-bit (Murmur3's finaliser) computed in int64, every product kept below 2**49
# (`_times`), so no step overflows and every device and compiler computes the same bits.
_MASK32 = 0xFFFFFFFF
_MIX1 = 0x85EBCA6B
_MIX2 = 0xC2B2AE35
_GOLDEN = 0x9E3779B9
# 24 random bits make a float32 uniform in (0, 1) exactly (its mantissa holds 24).
_UNIFORM_BITS = 24


def _times(value: torch.Tensor, constant: int) -> torch.Tensor:
    """`value * constant` modulo 2**32, for 32-bit values, in two 16-bit halves."""
    low = (value & 0xFFFF) * constant
    high = (((value >> 16) * constant) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _mix32(value: torch.Tensor) -> torch.Tensor:
    """Murmur3's 32-bit finaliser: every input bit flips about half the output bits."""
    value = value & _MASK32
    value = value ^ (value >> 16)
    value = _times(value, _MIX1)
    value = value ^ (value >> 13)
    value = _times(value, _MIX2)
    return value ^ (value >> 16)


def _combine(state: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return _mix32(state ^ _times(value & _MASK32, _GOLDEN))


def frame_keys(seeds: torch.Tensor, frames: torch.Tensor, codebooks: int) -> torch.Tensor:
    """32-bit keys (rows, codebooks) for every codebook of each row's frame, from int64
    tensors (rows,) of seeds and frame numbers."""
    key = _mix32(seeds & _MASK32)
    key = _combine(key, seeds >> 32)
    key = _combine(key, frames).unsqueeze(1)
    numbers = torch.arange(1, codebooks + 1, device=seeds.device, dtype=torch.int64)
    return _combine(key, numbers.unsqueeze(0))


def gumbel_noise(keys: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise, float32, for each id of `ids` under the key of its row: a pure
    function of (key, id). `keys` (*rows) and `ids` (*rows, n) → (*rows, n)."""
    bits = _combine(keys.unsqueeze(-1), ids) >> (32 - _UNIFORM_BITS)
    uniform = (bits.to(torch.float32) + 0.5) * (1.0 / (1 << _UNIFORM_BITS))
    return -torch.log(-torch.log(uniform))


def sample(
    logits: torch.Tensor,
    temperatures: torch.Tensor,
    topks: torch.Tensor,
    codebook_limit: int,
    keys: torch.Tensor,
) -> torch.Tensor:
    """One id per row of `logits` (rows, vocabulary): top-k per row (`topks`, int64), then
    temperature per row (`temperatures`, float32), drawn with the noise of each row's key
    (`keys`, from `frame_keys`).

    Only the top ids get noise: the arg max of (score / temperature + Gumbel noise) over them
    is a draw from their softmax, and noise is a function of (key, id), so which id is drawn
    does not depend on how many candidates were looked at. Ids from `codebook_limit` up
    cannot be decoded by the codec (padding, end of audio): they are never drawn. At top-k 1
    the draw is the arg max, whatever the noise.
    """
    scores = logits[:, :codebook_limit].float()
    top, ids = torch.topk(scores, min(MAX_TOPK, codebook_limit), dim=-1)
    ranks = torch.arange(top.shape[1], device=top.device)
    allowed = ranks.unsqueeze(0) < topks.unsqueeze(1)
    perturbed = top / temperatures.unsqueeze(1) + gumbel_noise(keys, ids)
    choice = perturbed.masked_fill(~allowed, -torch.inf).argmax(dim=-1, keepdim=True)
    return ids.gather(1, choice).squeeze(1)
