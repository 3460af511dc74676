"""SF-DiVeQ: dithering, segment selection, outputs on the segment, storable inference."""
import torch

from dac_diveq.quantize import Quantizer
from dac_diveq.quantize.space_filling import dither_codebook, project_to_curve, select_segment

K, D, N = 12, 3, 400


def _segment_distance(points, a, b):
    ab = b - a
    t = (((points - a) * ab).sum(-1, keepdim=True) / (ab * ab).sum(-1, keepdim=True)).clamp(0, 1)
    return (points - (a + t * ab)).norm(dim=-1)


def _stage(method, **kw):
    torch.manual_seed(0)
    return Quantizer(K, D, method, skip_iters=0, **kw)


def test_dithers_are_uniform_and_fresh_each_batch():
    codebook = torch.randn(K, D)
    torch.manual_seed(0)
    draws = torch.cat([dither_codebook(codebook)[1] for _ in range(500)])
    assert 0 <= draws.min() and draws.max() <= 1
    assert abs(draws.mean().item() - 0.5) < 0.02 and abs(draws.var().item() - 1 / 12) < 0.01
    first, second = dither_codebook(codebook)[1], dither_codebook(codebook)[1]
    assert not torch.equal(first, second)


def test_selected_point_is_the_nearest_dithered_point():
    torch.manual_seed(0)
    codebook, z = torch.randn(K, D), torch.randn(N, D)
    torch.manual_seed(1)
    choice = select_segment(z, codebook, "euclidean")
    torch.manual_seed(1)
    points, lam = dither_codebook(codebook)
    assert torch.equal(choice.index, torch.cdist(z, points).argmin(1))
    assert torch.equal(choice.lam, lam[choice.index])


def _train_output_and_segment(stage):
    """One training forward, and the segment ends and dithers it chose (replayed with the same seed)."""
    z = torch.randn(N, D)
    torch.manual_seed(5)
    out = stage(z)
    torch.manual_seed(5)
    choice = select_segment(z, stage.codebook.detach(), "euclidean")
    a, b = stage.codebook[choice.index].detach(), stage.codebook[choice.index + 1].detach()
    return out, choice, a, b


def test_sf_diveq_detach_training_output_is_the_dithered_point_on_the_segment():
    out, choice, a, b = _train_output_and_segment(_stage("sf_diveq_detach"))
    torch.testing.assert_close(out.z_q, (1 - choice.lam) * a + choice.lam * b, atol=1e-5, rtol=1e-5)
    assert _segment_distance(out.z_q.detach(), a, b).max() < 1e-5


def test_sf_diveq_training_output_lands_on_the_segment_up_to_the_directional_noise():
    out, _, a, b = _train_output_and_segment(_stage("sf_diveq", noise_var=1e-6))
    # Each term is off its direction by at most ~||v||, with v ~ N(0, 1e-6 I): sigma = 1e-3.
    assert _segment_distance(out.z_q.detach(), a, b).max() < 10 * 1e-3


def test_training_outputs_change_between_batches_because_dithers_are_fresh():
    stage = _stage("sf_diveq_detach")
    z = torch.randn(N, D)
    assert not torch.equal(stage(z).z_q, stage(z).z_q)


def test_gradients_reach_both_segment_ends_and_the_latents():
    stage = _stage("sf_diveq")
    z = torch.randn(N, D, requires_grad=True)
    stage(z).z_q.square().sum().backward()
    assert z.grad.abs().sum() > 0
    assert (stage.weight.grad.abs().sum(1) > 0).sum() > K // 2


def test_inference_is_deterministic_hard_quantization_to_codewords():
    stage = _stage("sf_diveq").eval()
    z = torch.randn(N, D)
    first, second = stage(z), stage(z)
    assert torch.equal(first.codes, second.codes) and torch.equal(first.z_q, second.z_q)
    assert torch.equal(first.codes, torch.cdist(z, stage.codebook.detach()).argmin(1))
    torch.testing.assert_close(first.z_q, stage.codebook[first.codes].detach(), atol=1e-6, rtol=0)


def test_curve_projection_is_an_explicit_option_on_the_polyline():
    stage = _stage("sf_diveq", sf_inference="curve").eval()
    z = torch.randn(N, D)
    out = stage(z)
    codebook = stage.codebook.detach()
    to_curve = torch.stack([_segment_distance(out.z_q, codebook[i], codebook[i + 1]) for i in range(K - 1)]).min(0).values
    assert to_curve.max() < 1e-5
    assert ((out.z_q - z).norm(dim=1) <= (codebook[out.codes] - z).norm(dim=1) + 1e-6).all()
    points, _ = project_to_curve(z, codebook, "euclidean")
    torch.testing.assert_close(out.z_q, points, atol=1e-6, rtol=0)


def test_training_usage_counts_both_ends_of_the_selected_segments():
    # Latents sitting on every codeword: eval usage is 100%, and so must training usage be,
    # although each latent's nearest_end code misses codeword j whenever lam_{j-1} <= 0.5 < lam_j.
    torch.manual_seed(0)
    stage = Quantizer(256, 8, "sf_diveq", skip_iters=0)
    z = stage.codebook.detach().repeat(4, 1) + 1e-4 * torch.randn(1024, 8)
    train_usage = torch.stack([stage(z).metrics["usage"] for _ in range(20)]).mean()
    stage.eval()
    assert stage(z).metrics["usage"] == 1.0
    assert train_usage > 0.9  # segments far from a codeword can win its latents: not exactly 1


def test_segment_usage_is_one_per_latent_split_between_the_ends():
    torch.manual_seed(0)
    codebook, z = torch.randn(K, D), torch.randn(N, D)
    choice = select_segment(z, codebook, "euclidean")
    counts = choice.usage_counts(K)
    assert torch.allclose(counts.sum(), torch.tensor(float(N)))
    expected = torch.zeros(K)
    for i, lam in zip(choice.index.tolist(), choice.lam.squeeze(-1).tolist()):
        expected[i] += 1 - lam
        expected[i + 1] += lam
    assert torch.allclose(counts, expected, atol=1e-4)
