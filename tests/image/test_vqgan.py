"""VQGAN stage 1, the PatchGAN discriminator and the adversarial-loss helpers."""
import pytest
import torch

from dac_diveq.image import VQGAN, PatchDiscriminator
from dac_diveq.image.losses import adaptive_weight, generator_adv_loss, hinge_d_loss
from dac_diveq.image.vqgan import AttnBlock, Downsample, ResnetBlock, Upsample

from .test_vqvae import assert_same_state

TINY = dict(ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[16], resolution=32, z_channels=16,
            embed_dim=8, codebook_size=16)


def test_shapes_and_forward_dict():
    torch.manual_seed(0)
    model = VQGAN(**TINY)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(x)
    assert model.downsample_factor == 2 and model.latent_shape(32) == (16, 16)
    assert out["recons"].shape == x.shape
    assert out["z_e"].shape == out["z_q"].shape == (2, 8, 16, 16)
    assert out["codes"].shape == (2, 16, 16)
    assert set(out) == {"recons", "z_e", "z_q", "codes", "aux_loss", "metrics"}
    assert model.quantizer.stages[0].noise_var == 1e-2  # the paper's VQGAN value
    assert model.last_layer is model.decoder.conv_out.weight


def test_attention_only_at_configured_resolutions():
    model = VQGAN(**TINY)
    # 32x32 level: no attention; 16x16 level: attention after every residual block; mid: one.
    enc, dec = model.encoder, model.decoder
    assert enc.levels[0].attn is None and len(enc.levels[1].attn) == 1
    assert dec.levels[0].attn is not None and len(dec.levels[0].attn) == 2  # decoder: 16x16 first
    assert dec.levels[1].attn is None
    assert sum(isinstance(m, AttnBlock) for m in enc.modules()) == 2
    assert sum(isinstance(m, Downsample) for m in enc.modules()) == 1
    assert sum(isinstance(m, Upsample) for m in dec.modules()) == 1
    block = enc.levels[1].blocks[0]
    assert isinstance(block, ResnetBlock) and block.shortcut.kernel_size == (1, 1)  # 32 -> 64 channels
    assert block.norm1.num_groups == 32
    no_attn = VQGAN(**{**TINY, "attn_resolutions": []})
    assert sum(isinstance(m, AttnBlock) for m in no_attn.modules()) == 2  # the encoder and decoder mid blocks


def test_thin_models_use_fewer_groups():
    assert ResnetBlock(8, 24).norm2.num_groups == 24
    assert ResnetBlock(48, 48).norm1.num_groups == 24


def test_encode_decode_match_eval_forward():
    model = VQGAN(**TINY).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    out = model(x)
    codes = model.encode(x)
    assert torch.equal(codes, out["codes"])
    torch.testing.assert_close(model.decode(codes), out["recons"], rtol=1e-4, atol=1e-5)


def test_discriminator_output_and_init():
    torch.manual_seed(0)
    disc = PatchDiscriminator(ndf=16)
    assert disc(torch.randn(2, 3, 32, 32)).shape == (2, 1, 2, 2)
    assert disc(torch.randn(1, 3, 64, 64)).shape == (1, 1, 6, 6)
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(c.kernel_size == (4, 4) for c in convs)
    weights = torch.cat([c.weight.flatten() for c in convs])
    assert abs(weights.std().item() - 0.02) < 0.002
    norms = [m for m in disc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 3 and all(abs(n.weight.mean().item() - 1) < 0.01 for n in norms)


def test_adaptive_weight_matches_manual_gradients():
    torch.manual_seed(0)
    model = VQGAN(**TINY)
    disc = PatchDiscriminator(ndf=8)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    recons = model(x)["recons"]
    rec_loss = (recons - x).abs().mean()
    g_loss = generator_adv_loss(disc(recons))
    weight = adaptive_weight(rec_loss, g_loss, model.last_layer)

    layer = model.last_layer
    g_rec = torch.autograd.grad(rec_loss, layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(g_loss, layer, retain_graph=True)[0]
    expected = g_rec.norm() / (g_adv.norm() + 1e-4)
    torch.testing.assert_close(weight, expected)
    assert not weight.requires_grad
    (rec_loss + weight * g_loss).backward()  # the graph survives for the real backward pass


def test_adaptive_weight_is_clamped():
    w = torch.ones(3, requires_grad=True)
    assert adaptive_weight((1e3 * w).sum(), (1e-3 * w).sum(), w, max_weight=7.0) == 7.0
    # ||(3, 3, 3)|| / (||(1, 1, 1)|| + eps)
    expected = 3 * 3 ** 0.5 / (3 ** 0.5 + 1e-4)
    assert adaptive_weight((3 * w).sum(), w.sum(), w).item() == pytest.approx(expected)


def test_discriminator_losses_on_known_logits():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - real) = [0, .5, 2] -> 2.5/3; relu(1 + fake) = [0, 1, 2] -> 1
    torch.testing.assert_close(hinge_d_loss(real, fake), torch.tensor(0.5 * (2.5 / 3 + 1.0)))
    assert generator_adv_loss(fake) == pytest.approx(1 / 3)
    assert hinge_d_loss(torch.full((4,), 5.0), torch.full((4,), -5.0)) == 0


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = VQGAN(**TINY, method="sf_diveq", skip_iters=0, noise_var=3e-2)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    model(x)
    loaded = VQGAN.load(model.save(str(tmp_path / "vqgan.pth"), package=False))
    assert loaded.ch_mult == [1, 2] and loaded.method == "sf_diveq" and loaded.noise_var == 3e-2
    assert_same_state(model.state_dict(), loaded.state_dict())
    model.eval(), loaded.eval()
    assert torch.equal(model(x)["recons"], loaded(x)["recons"])

    disc = PatchDiscriminator(ndf=8, n_layers=2)
    disc_loaded = PatchDiscriminator.load(disc.save(str(tmp_path / "disc.pth"), package=False))
    assert disc_loaded.n_layers == 2
    disc.eval(), disc_loaded.eval()
    assert torch.equal(disc(x), disc_loaded(x))
