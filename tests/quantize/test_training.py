"""End-to-end training of small autoencoders through every quantization method.

A 2-D mixture of 8 Gaussians on a ring is encoded by an MLP to R^8, quantized, and
decoded back; the loss is the reconstruction MSE plus the method's ``aux_loss``.
Every method must learn (eval-mode hard quantization reconstructs far better than at
initialisation) while keeping finite codebook metrics.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dac_diveq.quantize import METHODS, ProductQuantizer, Quantizer, ResidualQuantizer

pytestmark = pytest.mark.slow  # trains an autoencoder per method

DIVEQ_FAMILY = ("diveq", "diveq_detach", "sf_diveq", "sf_diveq_detach", "nsvq")
VQ_LOSS_METHODS = ("ste", "rotation", "ema")
STEPS = 300
BATCH = 256
LATENT = 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: intra-op threads only add contention on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ring(n: int, generator: torch.Generator, modes: int = 8, radius: float = 2.0, std: float = 0.1):
    """``n`` samples of a mixture of ``modes`` Gaussians evenly spaced on a circle."""
    k = torch.randint(0, modes, (n,), generator=generator)
    angle = 2 * math.pi * k.float() / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], 1)
    return centres + std * torch.randn(n, 2, generator=generator)


class AutoEncoder(nn.Module):
    def __init__(self, quantizer: nn.Module) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(2, 32), nn.GELU(), nn.Linear(32, LATENT))
        self.quantizer = quantizer
        self.decoder = nn.Sequential(nn.Linear(LATENT, 32), nn.GELU(), nn.Linear(32, 2))

    def forward(self, x: torch.Tensor, **kwargs):
        z = self.encoder(x)
        out = self.quantizer(z, **kwargs)
        return self.decoder(out.z_q), out, z


def method_options(method: str) -> dict:
    if method.startswith("sf_"):
        return dict(skip_iters=20, avg_iters=10)
    if method == "gumbel":
        return dict(gumbel_anneal_iters=STEPS)
    return {}


@torch.no_grad()
def eval_mse(model: AutoEncoder, x: torch.Tensor, **kwargs) -> float:
    model.eval()
    x_hat, _, _ = model(x, **kwargs)
    model.train()
    return F.mse_loss(x_hat, x).item()


def train(model: AutoEncoder, steps: int = STEPS, lr: float = 3e-3, seed: int = 0):
    """Adam on reconstruction MSE + aux loss; returns the aux losses and the last output."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    aux_losses, out = [], None
    for _ in range(steps):
        x = ring(BATCH, gen)
        x_hat, out, _ = model(x)
        loss = F.mse_loss(x_hat, x) + out.aux_loss
        assert torch.isfinite(loss), loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        aux_losses.append(out.aux_loss.detach())
    return aux_losses, out


def _assert_metrics(metrics: dict[str, torch.Tensor], prefix: str = "") -> None:
    for name in ("usage", "perplexity", "entropy_bits", "distortion"):
        key = prefix + name
        assert key in metrics, sorted(metrics)
        value = metrics[key]
        assert isinstance(value, torch.Tensor) and value.dim() == 0, (key, value)
        assert torch.isfinite(value), (key, value)
    assert 0 < metrics[prefix + "usage"] <= 1
    assert metrics[prefix + "perplexity"] > 1


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_an_autoencoder(method):
    torch.manual_seed(0)
    model = AutoEncoder(Quantizer(32, LATENT, method, **method_options(method)))
    x_eval = ring(2048, torch.Generator().manual_seed(123))
    initial = eval_mse(model, x_eval)

    aux_losses, out = train(model)

    if method in DIVEQ_FAMILY:
        assert all(a.dim() == 0 and a.item() == 0.0 for a in aux_losses), "aux_loss must be exactly 0"
    elif method in VQ_LOSS_METHODS:
        assert all(a.item() > 0 for a in aux_losses)
    else:  # gumbel: KL to the uniform assignment
        assert all(torch.isfinite(a) and a.item() >= 0 for a in aux_losses)

    # Every method reaches < 2% of the initial MSE here; with the encoder cut off from the
    # gradient (decoder alone learning) the same run stays above 40%.
    final = eval_mse(model, x_eval)
    assert final < 0.05 * initial, f"{method}: eval MSE {initial:.4f} -> {final:.4f}"

    # Training metrics of the last step and eval metrics on held-out data.
    _assert_metrics(out.metrics)
    model.eval()
    with torch.no_grad():
        _, eval_out, _ = model(x_eval)
    _assert_metrics(eval_out.metrics)
    assert eval_out.codes.dtype == torch.int64 and eval_out.codes.shape == (2048,)
    # Eval is hard quantization to codewords (the storable default, SF included):
    # z_q = z + sg[c - z] equals the codeword up to float rounding.
    torch.testing.assert_close(eval_out.z_q, model.quantizer.codebook.detach()[eval_out.codes],
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "make, strict",
    [
        pytest.param(lambda: ResidualQuantizer(4, 16, LATENT, "diveq"), True, id="residual-diveq-stagewise"),
        pytest.param(lambda: ResidualQuantizer(4, 16, LATENT, "diveq", residual_mode="stagewise_hard"), True,
                     id="residual-diveq-stagewise_hard"),
        pytest.param(lambda: ResidualQuantizer(4, 16, LATENT, "diveq", residual_mode="joint"), True,
                     id="residual-diveq-joint"),
        pytest.param(lambda: ResidualQuantizer(4, 16, LATENT, "diveq_detach", residual_mode="joint"), True,
                     id="residual-diveq_detach-joint"),
        pytest.param(lambda: ResidualQuantizer(4, 16, LATENT, "sf_diveq", residual_mode="joint", skip_iters=20,
                                               avg_iters=10), True, id="residual-sf_diveq-joint"),
        pytest.param(lambda: ResidualQuantizer(4, 16, LATENT, "sf_diveq_detach", residual_mode="joint",
                                               skip_iters=20, avg_iters=10), True, id="residual-sf_diveq_detach-joint"),
        # STE's commitment loss shrinks the latents until one stage leaves a tiny error, and
        # a later stage without a codeword near 0 may add a little: only the total must drop.
        pytest.param(lambda: ResidualQuantizer(4, 16, LATENT, "ste", quantizer_dropout=0.5), False,
                     id="residual-ste-dropout"),
    ],
)
def test_residual_quantizer_trains_and_stages_reduce_distortion(make, strict):
    torch.manual_seed(0)
    model = AutoEncoder(make())
    x_eval = ring(2048, torch.Generator().manual_seed(123))
    initial = eval_mse(model, x_eval)
    _, out = train(model)
    for i in range(4):
        _assert_metrics(out.metrics, prefix=f"stage{i}/")
    assert out.codes.shape == (BATCH, 4)

    final = eval_mse(model, x_eval)
    assert final < 0.05 * initial, f"eval MSE {initial:.4f} -> {final:.4f}"

    # Quantization distortion of the trained latents with the first n stages.
    model.eval()
    with torch.no_grad():
        z = model.encoder(x_eval)
        distortion = []
        for n in range(1, 5):
            out = model.quantizer(z, n_quantizers=n)
            assert out.codes.shape == (2048, n)
            torch.testing.assert_close(out.z_q, model.quantizer.decode(out.codes))
            distortion.append((out.z_q - z).pow(2).sum(-1).mean().item())
    if strict:
        assert all(b <= a * (1 + 1e-4) for a, b in zip(distortion, distortion[1:])), distortion
        assert distortion[-1] < 0.5 * distortion[0], distortion
    else:
        assert distortion[-1] < distortion[0], distortion
    # Reconstruction is no worse with more stages either.
    mse = [eval_mse(model, x_eval, n_quantizers=n) for n in (1, 4)]
    assert mse[1] <= mse[0], mse


@pytest.mark.parametrize("method", ["diveq", "sf_diveq"])
def test_product_quantizer_trains(method):
    torch.manual_seed(0)
    model = AutoEncoder(ProductQuantizer(2, 16, LATENT, method, **method_options(method)))
    x_eval = ring(2048, torch.Generator().manual_seed(123))
    initial = eval_mse(model, x_eval)
    _, out = train(model)
    assert out.codes.shape == (BATCH, 2)
    for g in range(2):
        _assert_metrics(out.metrics, prefix=f"group{g}/")
    final = eval_mse(model, x_eval)
    assert final < 0.05 * initial, f"eval MSE {initial:.4f} -> {final:.4f}"


def test_sf_diveq_initialises_from_the_last_avg_iters_skipped_steps():
    """Paper A.5 / ``avg_iters`` doc: the initial codebook is made of latents from the *last*
    ``avg_iters`` skipped steps (the encoder has learned by then), not the first ones.

    The latents of step s (1-based) all equal s, so each initial codeword reveals the steps
    it was averaged from.
    """
    skip, avg = 10, 3
    q = Quantizer(8, 2, "sf_diveq", skip_iters=skip, avg_iters=avg, latents_per_code=4)
    for step in range(1, skip + 1):
        q(torch.full((64, 2), float(step)))
    assert not q.maintenance.initialized
    q(torch.zeros(64, 2))  # the first quantizing step initialises from the capture
    assert q.maintenance.initialized
    codebook = q.codebook.detach()
    first_recent = skip - avg + 1
    assert codebook.min() >= first_recent, (
        f"initial codewords {sorted(set(codebook[:, 0].tolist()))} come from steps before "
        f"the last avg_iters={avg} skipped steps ({first_recent}..{skip})"
    )


def test_stagewise_hard_codes_in_training_are_the_eval_codes():
    torch.manual_seed(0)
    z = 3 * torch.randn(4096, LATENT)
    codes = {}
    for mode in ("stagewise", "stagewise_hard"):
        torch.manual_seed(0)
        rq = ResidualQuantizer(6, 64, LATENT, "diveq", residual_mode=mode, noise_var=1e-2, replace_every=0)
        codes[mode] = (rq.train()(z).codes, rq.eval()(z).codes)
    train, decoded = codes["stagewise"]
    assert (train != decoded).any(-1).float().mean() > 0.01
    train, decoded = codes["stagewise_hard"]
    assert torch.equal(train, decoded)
