"""The drop-ins reproduce ``dac.nn.quantize`` exactly with ``method="ste"`` and DAC's lookup."""
import warnings

import pytest
import torch
import dac.nn.quantize as dac_quantize

from dac_diveq.codec.dac_layers import ResidualVectorQuantize, VectorQuantize
from dac_diveq.quantize import METHODS
from dac_diveq.quantize.residual import ResidualQuantizer, residual_modes_of, residual_pass
from dac_diveq.quantize.space_filling import dithered_point, select_segment

warnings.filterwarnings("ignore", category=FutureWarning)  # DAC's weight_norm


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _assert_same_grads(a, b):
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5, msg=name)


def test_vector_quantize_matches_dac_exactly():
    torch.manual_seed(0)
    ref = dac_quantize.VectorQuantize(32, 64, 8)
    ours = VectorQuantize(32, 64, 8)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(4, 32, 25)
    xr, xo = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = ref(xr), ours(xo)
    assert torch.equal(a[3], b[3])  # codes
    assert torch.equal(a[0], b[0])  # z_q
    assert torch.equal(a[4], b[4])  # z_e
    torch.testing.assert_close(b[1], a[1], atol=0, rtol=1e-6)  # commitment, per item
    torch.testing.assert_close(b[2], a[2], atol=0, rtol=1e-6)  # codebook, per item
    g = torch.randn_like(a[0])
    for out, inp in ((a, xr), (b, xo)):
        ((out[0] * g).sum() + 0.25 * out[1].mean() + out[2].mean()).backward()
    torch.testing.assert_close(xo.grad, xr.grad, atol=1e-6, rtol=1e-5)
    _assert_same_grads(_grads(ours), _grads(ref))


@pytest.mark.parametrize("training", [True, False])
def test_residual_vector_quantize_matches_dac_exactly(training):
    torch.manual_seed(0)
    ref = dac_quantize.ResidualVectorQuantize(48, 5, 32, 8, quantizer_dropout=0.5)
    ours = ResidualVectorQuantize(48, 5, 32, 8, quantizer_dropout=0.5)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.train(training), ours.train(training)
    x = torch.randn(8, 48, 30)
    outs = []
    for module in (ref, ours):
        torch.manual_seed(123)  # the quantizer-dropout draw
        xi = x.clone().requires_grad_(True)
        out = module(xi, n_quantizers=3)
        loss = out[0].square().mean() + 0.25 * out[3] + out[4]
        loss.backward()
        outs.append((out, xi.grad))
    (a, ga), (b, gb) = outs
    assert torch.equal(a[1], b[1])  # codes
    assert torch.equal(a[0], b[0])  # z_q
    assert torch.equal(a[2], b[2])  # latents
    torch.testing.assert_close(b[3], a[3], atol=0, rtol=1e-6)
    torch.testing.assert_close(b[4], a[4], atol=0, rtol=1e-6)
    torch.testing.assert_close(gb, ga, atol=1e-6, rtol=1e-5)
    _assert_same_grads(_grads(ours), _grads(ref))


def test_from_codes_and_from_latents_match_dac():
    torch.manual_seed(1)
    ref = dac_quantize.ResidualVectorQuantize(48, 4, 32, 8).eval()
    ours = ResidualVectorQuantize(48, 4, 32, 8).eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 48, 11)
    codes = ref(x)[1]
    latents = ref(x)[2]
    for u, v in zip(ref.from_codes(codes), ours.from_codes(codes)):
        assert torch.equal(u, v)
    for u, v in zip(ref.from_latents(latents[:, :20]), ours.from_latents(latents[:, :20])):
        assert torch.equal(u, v)


@pytest.mark.parametrize("method", METHODS)
def test_state_dicts_load_in_both_directions(method):
    ours = ResidualVectorQuantize(48, 3, 32, 8, method=method, skip_iters=2, avg_iters=1)
    x = torch.randn(2, 48, 9)
    for _ in range(3):  # build up maintenance state
        ours(x)
    stock = dac_quantize.ResidualVectorQuantize(48, 3, 32, 8)
    result = stock.load_state_dict(ours.state_dict(), strict=False)
    assert not result.missing_keys
    assert all(".codebook.maintenance." in k for k in result.unexpected_keys)
    fresh = ResidualVectorQuantize(48, 3, 32, 8, method=method)
    fresh.load_state_dict(stock.state_dict(), strict=True)  # stock -> ours: strict works
    stock.eval(), ours.eval(), fresh.eval()
    assert torch.equal(stock(x)[1], ours(x)[1])
    assert torch.equal(stock(x)[1], fresh(x)[1])
    # Stock weights keep their codebook: SF-DiVeQ must not re-initialise it from latents.
    assert all(q.codebook.maintenance.initialized for q in fresh.quantizers)


@pytest.mark.parametrize("method", ["diveq", "diveq_detach", "sf_diveq", "sf_diveq_detach"])
def test_joint_mode_trains_codebooks_and_out_proj_only(method):
    torch.manual_seed(0)
    rvq = ResidualVectorQuantize(16, 3, 8, 4, method=method, residual_mode="joint", skip_iters=0)
    x = torch.randn(2, 16, 7, requires_grad=True)
    z_q, codes, latents, commit, cb = rvq(x)
    assert codes.shape == (2, 3, 7) and latents.shape == (2, 12, 7)
    assert commit == 0 and cb == 0
    z_q.square().sum().backward()
    for q in rvq.quantizers:
        assert q.codebook.weight.grad.abs().sum() > 0
        assert q.out_proj.weight_v.grad.abs().sum() > 0
        assert torch.count_nonzero(q.in_proj.weight_v.grad) == 0  # selects codes only
    assert x.grad.abs().sum() > 0
    rvq.eval()
    z_q_eval, codes_eval, *_ = rvq(x)
    torch.testing.assert_close(z_q_eval, rvq.from_codes(codes_eval)[0], atol=1e-5, rtol=1e-5)


def _training_and_decoded_codes(residual_mode: str, seed: int = 0):
    """Codes of one training forward and of the eval forward (= what decoding the stored codes
    sees) for a 12-stage DiVeQ RVQ with random weights and latents away from the codewords."""
    torch.manual_seed(seed)
    rvq = ResidualVectorQuantize(64, 12, 64, 8, method="diveq", residual_mode=residual_mode,
                                 noise_var=1e-3, replace_every=0)
    x = 3 * torch.randn(8, 64, 100)
    train_codes = rvq.train()(x)[1]
    eval_codes = rvq.eval()(x)[1]
    return rvq, x, train_codes, eval_codes


def test_stagewise_hard_trains_on_the_codes_that_decoding_sees():
    _, _, train_codes, eval_codes = _training_and_decoded_codes("stagewise")
    # Stage-wise DiVeQ: the noise of stage i changes the residual, hence later stages' codes.
    assert (train_codes != eval_codes).any(dim=1).float().mean() > 0.01
    rvq, x, train_codes, eval_codes = _training_and_decoded_codes("stagewise_hard")
    assert torch.equal(train_codes, eval_codes)
    # Still stage-wise: every stage's input projection gets a gradient (joint mode gives none).
    rvq.train()
    torch.manual_seed(1)
    xg = x.clone().requires_grad_(True)
    rvq(xg)[0].square().sum().backward()
    assert all(q.in_proj.weight_v.grad.abs().sum() > 0 for q in rvq.quantizers)
    assert xg.grad.abs().sum() > 0


def test_stagewise_hard_is_stagewise_without_noise():
    # With (almost) no noise DiVeQ's training value is the codeword: both modes are the same map.
    torch.manual_seed(0)
    x = torch.randn(2, 32, 13)
    outs = []
    for mode in ("stagewise", "stagewise_hard"):
        torch.manual_seed(0)
        rvq = ResidualVectorQuantize(32, 4, 16, 8, method="diveq", residual_mode=mode, noise_var=1e-14,
                                     replace_every=0)
        xi = x.clone().requires_grad_(True)
        out = rvq(xi)
        out[0].square().sum().backward()
        outs.append((out[0], out[1], xi.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("method, modes", [("ste", ("stagewise_hard", "joint")),
                                           ("rotation", ("stagewise_hard", "joint")),
                                           ("sf_diveq", ("stagewise_hard",))])
def test_modes_other_than_stagewise_are_refused_for_other_methods(method, modes):
    for mode in modes:
        with pytest.raises(ValueError, match="applies to"):
            ResidualVectorQuantize(16, 2, 8, 4, method=method, residual_mode=mode)


def test_joint_sf_diveq_chains_dithered_points_and_decodes_its_eval_codes():
    """Joint SF-DiVeQ (the authors' residual SF-DiVeQ): in training each stage quantizes what the
    previous stages' *dithered points* left, with no noise in the chain; in eval the stored codes
    decode to exactly the eval output."""
    torch.manual_seed(0)
    rvq = ResidualVectorQuantize(32, 4, 16, 8, method="sf_diveq_detach", residual_mode="joint", skip_iters=0)
    x = torch.randn(2, 32, 9)
    torch.manual_seed(5)
    z_q = rvq(x)[0]
    # Replay the same dithers by hand: the chain and the noiseless total are the dithered points'.
    torch.manual_seed(5)  # no quantizer dropout, so nothing is drawn before the dithers
    residual, total = x, 0
    for q in rvq.quantizers:
        z_e = q.in_proj(residual).transpose(1, 2).reshape(-1, 8)
        choice = select_segment(z_e, q.codebook.weight, q.codebook.lookup)
        point = dithered_point(q.codebook.weight, choice).reshape(2, 9, 8).transpose(1, 2)
        step = q.out_proj(point)
        total, residual = total + step, residual - step
    torch.testing.assert_close(z_q, total, atol=1e-5, rtol=1e-5)
    rvq.eval()
    z_q_eval, codes = rvq(x)[:2]
    torch.testing.assert_close(z_q_eval, rvq.from_codes(codes)[0], atol=1e-5, rtol=1e-5)


def _identity_projections(rvq):
    """DAC's stages with in_proj = out_proj = identity: the codec's stack on the core's space."""
    with torch.no_grad():
        for q in rvq.quantizers:
            for conv in (q.in_proj, q.out_proj):
                conv.weight_v.copy_(torch.eye(conv.weight_v.shape[0])[..., None])
                conv.weight_g.fill_(1.0)
                conv.bias.zero_()


@pytest.mark.parametrize("method, mode", [(m, mode) for m in ("ste", "diveq", "sf_diveq")
                                          for mode in residual_modes_of(m)])
def test_both_tracks_run_the_one_residual_stack(method, mode):
    """The image track's ResidualQuantizer and the codec's ResidualVectorQuantize (identity
    projections, the same codebooks) give the same output, codes, dropout, gradients and losses
    for the same seed and input, in training and in eval."""
    options = dict(method=method, residual_mode=mode, quantizer_dropout=0.5, lookup="euclidean",
                   skip_iters=0, replace_every=0)
    core = ResidualQuantizer(3, 16, 8, **options)
    codec = ResidualVectorQuantize(8, 3, 16, 8, **options)
    _identity_projections(codec)
    with torch.no_grad():
        for stage, q in zip(core.stages, codec.quantizers):
            q.codebook.weight.copy_(stage.weight)
    x = torch.randn(6, 5, 8)  # (B, T, D) for the core, (B, D, T) for the codec
    g = torch.randn(6, 5, 8)
    results = []
    for module, to_module, from_module in ((core, lambda t: t, lambda t: t),
                                           (codec, lambda t: t.transpose(1, 2), lambda t: t.transpose(1, 2))):
        xx = x.clone().requires_grad_(True)
        torch.manual_seed(7)  # the dropout draw, then DiVeQ's noise / SF-DiVeQ's dithers
        stages = list(module.stages if module is core else module.quantizers)
        out = residual_pass(stages, to_module(xx), method=method, mode=mode, training=True, n_quantizers=None,
                            dropout=0.5, vector_dim=-1 if module is core else 1)
        (from_module(out.z_q) * g).sum().backward()
        codebook_grads = [(s.weight if module is core else s.codebook.weight).grad for s in stages]
        results.append((from_module(out.z_q).detach(), torch.stack(out.codes, -1), xx.grad, *codebook_grads,
                        out.commitment_loss.detach(), out.codebook_loss.detach()))
    for core_t, codec_t in zip(*results):
        torch.testing.assert_close(codec_t, core_t, atol=1e-5, rtol=1e-5)
    # The modules' own forwards: the same draws, codes (the codec's B x N x T) and eval output.
    torch.manual_seed(7)
    core_codes = core(x).codes
    torch.manual_seed(7)
    assert torch.equal(codec(x.transpose(1, 2))[1].transpose(1, 2), core_codes)
    core.eval(), codec.eval()
    torch.testing.assert_close(codec(x.transpose(1, 2), n_quantizers=2)[0].transpose(1, 2),
                               core(x, n_quantizers=2).z_q, atol=1e-5, rtol=1e-5)
