"""VQVAE: the paper's Table 3 architecture, every quantization method trains through it, save/load."""
import inspect

import pytest
import torch
from torch import nn

from dac_diveq import image
from dac_diveq.image import VQVAE
from dac_diveq.image.vqvae import ResidualBlock
from dac_diveq.quantize import METHODS
from dac_diveq.quantize.options import MODEL_OPTIONS, core_parameters

# Thin widths keep the full-size (256x256, 4 downsamplings, 6 residual blocks) model fast on CPU.
THIN = dict(channels=8, res_channels=4, codebook_dim=4, codebook_size=16)
TINY = dict(channels=8, res_channels=4, n_down=2, n_res_blocks=2, codebook_dim=4, codebook_size=8)


def test_table3_shapes_at_256():
    model = VQVAE(**THIN)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    out = model(x)
    assert model.downsample_factor == 16 and model.latent_shape(256) == (16, 16)
    assert out["z_e"].shape == out["z_q"].shape == (1, 4, 16, 16)
    assert out["codes"].shape == (1, 16, 16)
    assert out["recons"].shape == x.shape
    assert out["aux_loss"].shape == ()


def test_table3_layer_structure():
    model = VQVAE(**THIN)
    down = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert len(down) == 4 and all(m.kernel_size == (4, 4) for m in down)
    assert [m.out_channels for m in down] == [1, 2, 4, 8]  # widths double up to `channels`
    for part in (model.encoder, model.decoder):
        blocks = [m for m in part.modules() if isinstance(m, ResidualBlock)]
        assert len(blocks) == 6
        for block in blocks:
            convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
            assert [c.kernel_size for c in convs] == [(3, 3), (1, 1)]
    assert model.pre_quant.kernel_size == (1, 1) and model.pre_quant.out_channels == 4
    ups = [m for m in model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 4 and all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in ups)
    assert ups[-1].out_channels == 3
    assert not isinstance(list(model.decoder.up)[-1], nn.ReLU)  # linear output, [-1, 1] images


def test_latent_shape_rejects_sizes_off_the_grid():
    model = VQVAE(**TINY)
    assert model.latent_shape((32, 48)) == (8, 12)
    with pytest.raises(ValueError, match="downsampling factor 4"):
        model.latent_shape(30)
    with pytest.raises(ValueError, match="divisible"):
        VQVAE(channels=12, n_down=4)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_the_encoder(method):
    torch.manual_seed(0)
    # skip_iters=0: SF-DiVeQ quantizes from the first step instead of passing latents through.
    model = VQVAE(**TINY, method=method, skip_iters=0)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = model(x)
    loss = (out["recons"] - x).pow(2).mean() + out["aux_loss"]
    loss.backward()
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    codebook = model.quantizer.codebooks()[0]
    if method == "ema":
        assert codebook.grad is None  # learned by moving averages
    else:
        assert codebook.grad is not None and codebook.grad.abs().sum() > 0


@pytest.mark.parametrize("structure", ["residual", "product"])
def test_multi_codebook_encode_decode(structure):
    model = VQVAE(**TINY, structure=structure, n_quantizers=2).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = model(x)
    codes = model.encode(x)
    assert codes.shape == (2, 4, 4, 2) and torch.equal(codes, out["codes"])
    torch.testing.assert_close(model.decode(codes), out["recons"], rtol=1e-4, atol=1e-5)


def assert_same_state(ours, theirs):
    """Equal state dicts, including the quantizers' extra state (step counters, usage)."""
    assert ours.keys() == theirs.keys()
    for key in ours:
        a, b = ours[key], theirs[key]
        if isinstance(a, dict):
            assert a.keys() == b.keys(), key
            a, b = list(a.values()), list(b.values())
        else:
            a, b = [a], [b]
        for u, v in zip(a, b):
            assert torch.equal(u, v) if isinstance(u, torch.Tensor) else u == v, key


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = VQVAE(**TINY, structure="residual", n_quantizers=2, noise_var=5e-3, replace_every=7)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model(x)  # one training step of quantizer state (usage counts, step counter)
    path = model.save(str(tmp_path / "vqvae.pth"), package=False)
    loaded = VQVAE.load(path)
    assert loaded.metadata["kwargs"]["structure"] == "residual" and loaded.noise_var == 5e-3
    assert loaded.replace_every == 7
    assert [s.maintenance.step for s in loaded.quantizer.stages] == [1, 1]
    assert_same_state(model.state_dict(), loaded.state_dict())
    model.eval(), loaded.eval()
    a, b = model(x), loaded(x)
    assert torch.equal(a["codes"], b["codes"]) and torch.equal(a["recons"], b["recons"])


@pytest.mark.parametrize("model, overrides", [("VQVAE", {"codebook_init": "uniform"}),
                                              ("VQGAN", {"noise_var": 1e-2, "codebook_init": "uniform"})])
def test_image_models_take_every_model_option_with_the_cores_defaults(model, overrides):
    parameters = inspect.signature(getattr(image, model)).parameters
    assert [name for name in parameters if name in MODEL_OPTIONS] == list(MODEL_OPTIONS)
    for option in core_parameters():
        assert parameters[option.name].default == overrides.get(option.name, option.default), option.name
