"""The fused Snake is DAC's function: same outputs and gradients, same parameters and state dict."""
import pytest
import torch
from dac.nn.layers import Snake1d, snake

from dac_diveq.codec.model import DiVeQDAC
from dac_diveq.codec.snake import fuse_snake, fused_snake

pytestmark = pytest.mark.slow  # compiles a kernel


def test_fused_snake_matches_dacs_values_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 700, requires_grad=True)
    alpha = (torch.rand(1, 5, 1) + 0.2).requires_grad_()
    expected = snake(x, alpha)
    ex, ea = torch.autograd.grad(expected.square().sum(), (x, alpha))
    got = fused_snake(x, alpha)
    gx, ga = torch.autograd.grad(got.square().sum(), (x, alpha))
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(gx, ex, atol=1e-5) and torch.allclose(ga, ea, rtol=1e-4)


def test_fuse_snake_keeps_the_model_and_its_outputs():
    torch.manual_seed(0)
    model = DiVeQDAC(encoder_dim=8, encoder_rates=[2, 4, 5, 8], decoder_dim=16, decoder_rates=[8, 5, 4, 2],
                     n_codebooks=2, codebook_size=16, sample_rate=16000).eval()
    audio = 0.1 * torch.randn(1, 1, 3200)
    keys = list(model.state_dict())
    with torch.no_grad():
        before = model(audio)["audio"]
    count = fuse_snake(model)
    assert count == sum(isinstance(m, Snake1d) for m in model.modules()) > 0
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        assert torch.allclose(model(audio)["audio"], before, atol=1e-5)
