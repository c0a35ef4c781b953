"""The compiled step's sampler: counter-based Gumbel noise, top-k and temperature per row."""

import math

import pytest
import torch

from speech.engines.csm.sampler import MAX_TOPK, frame_keys, gumbel_noise, sample

CODEBOOKS = 32


def noise_of(seeds: list[int], frames: list[int], vocabulary: int = 64) -> torch.Tensor:
    """Noise (rows, codebooks, vocabulary) of every id."""
    keys = frame_keys(torch.tensor(seeds), torch.tensor(frames), CODEBOOKS)
    return gumbel_noise(keys, torch.arange(vocabulary).expand(*keys.shape, vocabulary))


def test_a_rows_noise_depends_on_its_own_seed_and_frame_only():
    # given a row (seed 7, frame 3) alone, and the same row among others in another order
    alone = noise_of([7], [3])[0]
    batched = noise_of([1, 7, 2**40 + 7, 9], [3, 3, 3, 0])
    # then its noise is the same wherever it sits
    assert torch.equal(batched[1], alone)
    # and any other seed, high bits included, or another frame gives other noise
    assert not torch.equal(batched[0], alone)
    assert not torch.equal(batched[2], alone)
    assert not torch.equal(noise_of([7], [4])[0], alone)
    # and each codebook of a frame has its own
    assert not torch.equal(alone[0], alone[1])
    # and an id's noise is the same whichever ids are asked for with it
    keys = frame_keys(torch.tensor([7]), torch.tensor([3]), CODEBOOKS)[:, 0]
    some = gumbel_noise(keys, torch.tensor([[40, 5, 17]]))
    assert torch.equal(some[0], alone[0, [40, 5, 17]])


def test_the_noise_is_finite_standard_gumbel():
    # given noise for 200 frames of one seed (200 x 32 x 2048 values)
    noise = noise_of([12345] * 200, list(range(200)), vocabulary=2048)
    # then it is finite, and its mean and spread are the standard Gumbel's
    assert bool(torch.isfinite(noise).all())
    euler_gamma = 0.5772156649
    assert abs(float(noise.mean()) - euler_gamma) < 0.01
    assert abs(float(noise.std()) - math.pi / math.sqrt(6)) < 0.01


def test_frequencies_match_the_top_k_distribution_at_the_temperature():
    # given one distribution over 12 ids, of which the codec may decode the first 10, with
    # top-k 4 and temperature 0.7, drawn by 40,000 requests (seeds) at once
    draws = 40_000
    logits = torch.tensor([[2.0, 1.5, 0.3, 1.0, -1.0, 0.9, 0.0, -0.5, 0.2, 0.1, 9.0, 9.0]])
    temperature, topk, limit = 0.7, 4, 10
    keys = frame_keys(torch.arange(draws), torch.zeros(draws, dtype=torch.int64), 1)[:, 0]
    drawn = sample(
        logits.expand(draws, -1),
        torch.full((draws,), temperature),
        torch.full((draws,), topk),
        limit,
        keys,
    )
    counts = torch.bincount(drawn, minlength=logits.shape[1]).float()
    # then only the top 4 of the decodable ids are ever drawn
    top = [0, 1, 3, 5]
    assert set(torch.nonzero(counts).flatten().tolist()) == set(top)
    # and their frequencies are softmax(logits / temperature) over those 4 (chi-square with 3
    # degrees of freedom, below its 0.1% critical value)
    expected = torch.softmax(logits[0, top] / temperature, dim=0) * draws
    chi_square = float(((counts[top] - expected) ** 2 / expected).sum())
    assert chi_square < 16.27


@pytest.mark.parametrize("temperature", [0.05, 1.0, 2.0])
def test_top_k_one_is_the_arg_max_whatever_the_noise(temperature):
    logits = torch.randn(64, 2051, generator=torch.Generator().manual_seed(0))
    keys = frame_keys(torch.arange(64), torch.arange(64), 1)[:, 0]
    drawn = sample(
        logits,
        torch.full((64,), temperature),
        torch.ones(64, dtype=torch.int64),
        2048,
        keys,
    )
    assert torch.equal(drawn, logits[:, :2048].argmax(dim=1))


def test_each_row_keeps_its_own_settings():
    # given two rows with the same logits: one greedy, one at the widest top-k and hot
    logits = torch.randn(1, 2051, generator=torch.Generator().manual_seed(1)).expand(2, -1)
    settings = (torch.tensor([1.0, 2.0]), torch.tensor([1, MAX_TOPK]))
    greedy_draws, hot_draws = set(), set()
    for frame in range(50):
        keys = frame_keys(torch.tensor([3, 3]), torch.tensor([frame, frame]), 1)[:, 0]
        drawn = sample(logits, *settings, 2048, keys)
        greedy_draws.add(int(drawn[0]))
        hot_draws.add(int(drawn[1]))
    # then the greedy row always takes the arg max, and the hot one spreads over many ids
    assert greedy_draws == {int(logits[0, :2048].argmax())}
    assert len(hot_draws) > 20
