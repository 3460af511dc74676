"""The paper's identities for each gradient surrogate (DESIGN.md section 1)."""
import pytest
import torch

from dac_diveq.quantize import estimators

N, D = 256, 8


def _zc(seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, D, generator=g).requires_grad_(True)
    c = torch.randn(N, D, generator=g).requires_grad_(True)
    up = torch.randn(N, D, generator=g)
    return z, c, up


def _grads(fn, seed=0):
    z, c, up = _zc(seed)
    out = fn(z, c)
    gz, gc = torch.autograd.grad((out * up).sum(), (z, c), allow_unused=True)
    return out.detach(), gz, gc, z.detach(), c.detach(), up


def _projection_identity(z, c, up):
    u = (c - z) / (c - z).norm(dim=1, keepdim=True)
    along = u * (u * up).sum(1, keepdim=True)
    return up - along, along


def test_diveq_detach_forward_is_the_codeword_and_gradients_follow_eq16():
    out, gz, gc, z, c, up = _grads(estimators.diveq_detach)
    torch.testing.assert_close(out, c, atol=1e-6, rtol=0)
    expected_gz, expected_gc = _projection_identity(z, c, up)
    torch.testing.assert_close(gz, expected_gz, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gc, expected_gc, atol=1e-5, rtol=1e-5)


def test_diveq_output_lies_on_the_error_sphere_and_points_near_the_codeword():
    torch.manual_seed(0)
    out, _, _, z, c, _ = _grads(lambda z, c: estimators.diveq(z, c, 1e-3))
    torch.testing.assert_close((out - z).norm(dim=1), (c - z).norm(dim=1), atol=1e-5, rtol=1e-5)
    cos = torch.nn.functional.cosine_similarity(out - z, c - z)
    assert cos.min() > 0.99  # sigma = 0.03 against errors of norm ~4


@pytest.mark.parametrize("variance", [1e-6, 1e-10])
def test_diveq_tends_to_diveq_detach_as_variance_vanishes(variance):
    torch.manual_seed(0)
    out, gz, gc, z, c, up = _grads(lambda z, c: estimators.diveq(z, c, variance))
    expected_gz, expected_gc = _projection_identity(z, c, up)
    tol = 50 * variance ** 0.5
    torch.testing.assert_close(out, c, atol=tol, rtol=0)
    torch.testing.assert_close(gz, expected_gz, atol=tol, rtol=0)
    torch.testing.assert_close(gc, expected_gc, atol=tol, rtol=0)


def test_diveq_gradient_differs_from_detach_at_the_paper_noise():
    torch.manual_seed(0)
    _, gz, _, z, c, up = _grads(lambda z, c: estimators.diveq(z, c, 1e-2))
    expected_gz, _ = _projection_identity(z, c, up)
    assert (gz - expected_gz).abs().max() > 1e-3


@pytest.mark.parametrize("variance", [1e-3, 1e-2])
def test_diveq_noise_has_the_documented_variance(variance):
    """With the error along e_1 and ||d|| = L large, the output direction is (L e_1 + v)/||.||, so
    L * (perpendicular / parallel component) = v_perp / (1 + v_par/L) ~ v_perp ~ N(0, variance)."""
    torch.manual_seed(0)
    n, length = 200_000, 1e3
    z = torch.zeros(n, D, dtype=torch.float64)
    c = torch.zeros(n, D, dtype=torch.float64)
    c[:, 0] = length
    out = estimators.diveq(z, c, variance)
    ratio = length * out[:, 1:] / out[:, :1]
    measured = ratio.var().item()
    assert measured == pytest.approx(variance, rel=0.02)
    assert ratio.mean().abs().item() < 5 * (variance / ratio.numel()) ** 0.5


def test_straight_through_copies_the_gradient():
    out, gz, gc, z, c, up = _grads(estimators.straight_through)
    torch.testing.assert_close(out, c, atol=1e-6, rtol=0)
    assert torch.equal(gz, up)
    assert gc is None


def test_rotation_maps_z_onto_c_with_detached_coefficients():
    out, gz, gc, z, c, up = _grads(estimators.rotation)
    torch.testing.assert_close(out, c, atol=1e-5, rtol=1e-5)
    assert gc is None
    # The Jacobian is rho * R, a scaled rotation: it preserves the angle between gradients,
    # and rescales the upstream gradient norm by rho = ||c|| / ||z||.
    rho = c.norm(dim=1) / z.norm(dim=1)
    torch.testing.assert_close(gz.norm(dim=1), rho * up.norm(dim=1), atol=1e-4, rtol=1e-4)


def test_nsvq_output_is_at_the_error_distance():
    torch.manual_seed(0)
    out, gz, gc, z, c, _ = _grads(estimators.nsvq)
    torch.testing.assert_close((out - z).norm(dim=1), (c - z).norm(dim=1), atol=1e-5, rtol=1e-5)
    assert gc.abs().sum() > 0


def test_gumbel_softmax_forward_is_a_codeword_and_backward_is_soft():
    torch.manual_seed(0)
    codebook = torch.randn(16, D, requires_grad=True)
    logits = torch.randn(N, 16, requires_grad=True)
    z_q, codes = estimators.gumbel_softmax(logits, codebook, temperature=0.5)
    torch.testing.assert_close(z_q, codebook[codes], atol=1e-6, rtol=0)
    z_q.sum().backward()
    assert logits.grad.abs().sum() > 0 and codebook.grad.abs().sum() > 0


def test_gumbel_logits_are_float32_under_bf16_autocast():
    from dac_diveq.quantize.lookup import similarity_logits

    torch.manual_seed(0)
    codebook = torch.randn(512, 8)
    z = 30.0 + 0.1 * torch.randn(256, 8)  # offset latents: the cross term dwarfs the differences
    codebook = codebook + 30.0
    for rule in ("euclidean", "cosine"):
        reference = similarity_logits(z, codebook, rule)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = similarity_logits(z, codebook, rule)
        assert logits.dtype == torch.float32
        assert torch.equal(logits.argmax(1), reference.argmax(1))
