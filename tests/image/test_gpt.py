"""CodeGPT: a causal prior over code grids that learns and reproduces a pattern."""
import math

import pytest
import torch

from dac_diveq.image import CodeGPT

SMALL = dict(n_layer=2, n_head=2, n_embd=32)


def test_logits_at_t_ignore_later_tokens():
    torch.manual_seed(0)
    model = CodeGPT(vocab_size=10, block_size=12, **SMALL).eval()
    idx = torch.randint(0, 11, (2, 12))
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 3) % 11
    a, b = model(idx), model(changed)
    assert a.shape == (2, 12, 10)
    torch.testing.assert_close(a[:, :6], b[:, :6], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_initial_loss_is_near_uniform():
    torch.manual_seed(0)
    model = CodeGPT(vocab_size=16, block_size=16, **SMALL)
    loss = model.loss(torch.randint(0, 16, (4, 4, 4)))
    assert abs(loss.item() - math.log(16)) < 0.2


def test_sample_shape_dtype_range_and_reproducibility():
    torch.manual_seed(0)
    model = CodeGPT(vocab_size=7, block_size=12, **SMALL)
    grids = model.sample(3, (2, 3, 2), generator=torch.Generator().manual_seed(1))
    assert grids.shape == (3, 2, 3, 2) and grids.dtype == torch.int64
    assert int(grids.min()) >= 0 and int(grids.max()) < 7  # never the start token
    again = model.sample(3, (2, 3, 2), generator=torch.Generator().manual_seed(1))
    assert torch.equal(grids, again)
    assert model.training  # sampling restores the mode
    with pytest.raises(ValueError, match="block_size"):
        model.sample(1, (4, 4))


def test_top_k_one_is_greedy_decoding():
    torch.manual_seed(0)
    model = CodeGPT(vocab_size=9, block_size=6, **SMALL).eval()
    grids = model.sample(2, (2, 3), top_k=1, temperature=0.7)
    assert torch.equal(grids, model.sample(2, (2, 3), top_k=1))
    seq = torch.full((2, 1), 9)
    for _ in range(6):
        seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(grids.reshape(2, -1), seq[:, 1:])


def test_top_k_restricts_choices():
    torch.manual_seed(0)
    model = CodeGPT(vocab_size=12, block_size=1, **SMALL).eval()
    allowed = model(torch.tensor([[12]]))[0, -1].topk(3).indices
    draws = model.sample(200, (1, 1), top_k=3, generator=torch.Generator().manual_seed(0)).flatten()
    assert set(draws.tolist()) <= set(allowed.tolist())


@pytest.mark.parametrize("grid", [(3, 4), (2, 3, 2)])
def test_learns_and_reproduces_a_pattern(grid):
    torch.manual_seed(len(grid))
    vocab = 8
    pattern = torch.randint(0, vocab, grid)
    length = pattern.numel()
    model = CodeGPT(vocab_size=vocab, block_size=length, **SMALL)
    batch = pattern.expand(4, *grid)
    first = model.loss(batch).item()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(80):
        opt.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        opt.step()
    assert loss.item() < 0.02 * first
    # Temperature 0.5 squares the already small odds of a wrong code.
    samples = model.sample(4, grid, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples, pattern.expand(4, *grid))


def test_codes_are_read_in_raster_order_stage_fastest():
    model = CodeGPT(vocab_size=100, block_size=12, **SMALL)
    codes = torch.arange(12).reshape(1, 2, 3, 2)  # value = 6 h + 2 w + stage
    assert model.flatten(codes).tolist() == [list(range(12))]
