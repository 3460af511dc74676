"""FSQ and SimVQ (the baselines codec work compares with) and k-means initialisation.

FSQ and SimVQ are checked against ``vector-quantize-pytorch``'s ``FSQ`` / ``SimVQ`` (a test
extra): same inputs give the same quantized outputs, indices and gradients.
"""
import math

import pytest
import torch
from vector_quantize_pytorch import FSQ, SimVQ

from dac_diveq.quantize import BASELINES, METHODS, Quantizer, ResidualQuantizer
from dac_diveq.quantize import fsq
from dac_diveq.quantize.codebook import kmeans

LEVELS = ([8, 5, 5, 5], [7, 5, 5, 5, 5], [8, 6, 5], [3, 3, 3, 3], [4, 4])


def _fsq_pair(levels):
    return Quantizer(math.prod(levels), len(levels), "fsq", fsq_levels=levels), FSQ(levels)


def _latents(n, dim, seed=0, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    # Wide enough to reach the saturated ends of the bound, where rounding ties are rarest.
    return torch.randn(n, dim, generator=gen) * scale


def test_baselines_are_registered_but_outside_the_papers_table():
    assert BASELINES == ("fsq", "simvq")
    assert not set(BASELINES) & set(METHODS)


@pytest.mark.parametrize("levels", LEVELS)
@pytest.mark.parametrize("training", [True, False])
def test_fsq_matches_vector_quantize_pytorch(levels, training):
    ours, ref = _fsq_pair(levels)
    ours.train(training), ref.train(training)
    z = _latents(512, len(levels))
    g = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    z_ours, z_ref = z.clone().requires_grad_(), z.clone().requires_grad_()
    out = ours(z_ours)
    ref_q, ref_idx = ref(z_ref[None])
    (out.z_q * g).sum().backward()
    (ref_q[0] * g).sum().backward()
    assert torch.equal(out.z_q.detach(), ref_q[0].detach())
    assert torch.equal(out.codes, ref_idx[0].long())
    assert torch.equal(z_ours.grad, z_ref.grad)
    assert out.aux_loss == 0


@pytest.mark.parametrize("levels", LEVELS)
def test_fsq_grid_is_the_implicit_codebook_and_decodes_codes(levels):
    ours, ref = _fsq_pair(levels)
    assert torch.equal(ours.weight, ref.implicit_codebook)
    assert not ours.weight.requires_grad and list(ours.parameters()) == [ours.weight]
    ours.eval()
    z = _latents(256, len(levels), seed=2)
    out = ours(z)
    assert torch.equal(ours.weight[out.codes], out.z_q)  # codes -> vectors is a table lookup
    assert torch.equal(fsq.indices_to_codes(out.codes, ours.fsq_levels), out.z_q)
    assert torch.equal(ours.encode(z), out.codes)  # what DAC's from_latents stores


def test_fsq_reports_codebook_statistics_over_the_implicit_grid():
    levels = [5, 5, 5]
    ours = Quantizer(125, 3, "fsq", fsq_levels=levels)
    # Levels are spaced 1 apart after the bound; a dense cloud reaches every grid point.
    z = torch.atanh(torch.linspace(-0.99, 0.99, 40)).expand(3, -1)
    z = torch.cartesian_prod(*z)
    metrics = ours(z).metrics
    assert metrics["usage"] == 1.0
    assert metrics["perplexity"] > 60
    assert ours.maintenance.usage.shape == (125,)


def test_fsq_errors_are_one_line():
    with pytest.raises(ValueError, match="needs fsq_levels"):
        Quantizer(1000, 4, "fsq")
    with pytest.raises(ValueError, match=r"need codebook_dim 4 and codebook_size 1000, got 4 and 1024"):
        Quantizer(1024, 4, "fsq", fsq_levels=[8, 5, 5, 5])
    with pytest.raises(ValueError, match=">= 3"):
        Quantizer(16, 4, "fsq", fsq_levels=[2, 2, 2, 2])
    with pytest.raises(ValueError, match="applies to method 'fsq'"):
        Quantizer(1000, 4, "ste", fsq_levels=[8, 5, 5, 5])


@pytest.mark.parametrize("bits", range(2, 17))
def test_fsq_levels_for_bits_give_exactly_that_many_bits_per_code(bits):
    levels = fsq.levels_for_bits(bits)
    assert math.prod(levels) == 2 ** bits and set(levels) <= {4, 8}
    stage = Quantizer(2 ** bits, len(levels), "fsq", fsq_levels=list(levels))  # a grid the core accepts
    assert stage.weight.shape == (2 ** bits, len(levels)) and torch.unique(stage.weight, dim=0).shape[0] == 2 ** bits


def test_fsq_levels_for_bits_refuses_a_grid_below_four_levels():
    with pytest.raises(ValueError, match="at least 2 bits"):
        fsq.levels_for_bits(1)


def test_fsq_warm_up_passes_latents_through_and_leaves_the_grid():
    stage = Quantizer(125, 3, "fsq", fsq_levels=[5, 5, 5], skip_iters=2, avg_iters=1)
    grid = stage.weight.clone()
    z = _latents(64, 3)
    assert torch.equal(stage(z).z_q, z)  # warm-up: pass-through
    stage(z)
    out = stage(z)  # quantizing
    assert torch.equal(stage.weight, grid) and stage.maintenance.initialized
    assert torch.equal(out.z_q, grid[out.codes])


# ---------------------------------------------------------------------------- SimVQ
def _simvq_pair(k=32, d=8, seed=0):
    torch.manual_seed(seed)
    ref = SimVQ(d, k, rotation_trick=False)  # the paper's straight-through estimator
    ours = Quantizer(k, d, "simvq", lookup="euclidean")
    with torch.no_grad():
        ours.weight.copy_(ref.frozen_codebook)
        ours.transform.weight.copy_(ref.code_transform.weight)
    return ours, ref


def test_simvq_matches_vector_quantize_pytorch():
    ours, ref = _simvq_pair()
    z = _latents(300, 8, scale=1.0)
    g = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    z_ours, z_ref = z.clone().requires_grad_(), z.clone().requires_grad_()
    out = ours(z_ours)
    ref_q, ref_idx, ref_loss = ref(z_ref[None])
    # Their one "commit loss" = ||sg[z] - c||^2 + 0.25 ||z - sg[c]||^2: our codebook and
    # commitment terms with the default weights (1 and 0.25), as DAC's loss weights them.
    torch.testing.assert_close(out.aux_loss, ref_loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(out.codebook_loss.mean() + 0.25 * out.commitment_loss.mean(), ref_loss,
                               rtol=1e-6, atol=0)
    ((out.z_q * g).sum() + out.aux_loss).backward()
    ((ref_q[0] * g).sum() + ref_loss).backward()
    assert torch.equal(out.codes, ref_idx[0])
    torch.testing.assert_close(out.z_q, ref_q[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(z_ours.grad, z_ref.grad, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours.transform.weight.grad, ref.code_transform.weight.grad, rtol=1e-5, atol=1e-7)
    assert ours.weight.grad is None  # the basis is frozen
    ours.eval()
    assert torch.equal(ours(z).codes, ref_idx[0])
    torch.testing.assert_close(ours.codebook, ref.codebook)


def test_simvq_trains_the_map_and_never_the_basis():
    stage = Quantizer(32, 8, "simvq", replace_every=1)
    basis = stage.weight.detach().clone()
    opt = torch.optim.Adam(stage.parameters(), lr=1e-2)
    before = stage.codebook.detach().clone()
    for step in range(5):
        out = stage(_latents(64, 8, seed=step))
        opt.zero_grad()
        ((out.z_q - 1).pow(2).mean() + out.aux_loss).backward()
        opt.step()
    assert torch.equal(stage.weight, basis)
    assert not torch.equal(stage.codebook.detach(), before)
    assert stage.maintenance.replaced_last == 0  # no replacement: SimVQ's map moves every codeword
    with pytest.raises(ValueError, match="kmeans_init applies to learned codebooks"):
        Quantizer(32, 8, "simvq", kmeans_init=True)


def test_simvq_state_dict_round_trips_basis_and_map():
    a, b = Quantizer(16, 4, "simvq"), Quantizer(16, 4, "simvq")
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.codebook, b.codebook)
    assert set(a.state_dict()) >= {"weight", "transform.weight"}


def test_residual_baselines_decode_their_codes():
    for method, options in (("fsq", {"fsq_levels": [5, 5, 5]}), ("simvq", {})):
        rq = ResidualQuantizer(3, 125, 3, method, **options).eval()
        z = _latents(40, 3)
        out = rq(z)
        torch.testing.assert_close(rq.decode(out.codes), out.z_q, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- k-means
def _clusters(n_per=20, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(8, 4, generator=gen) * 5
    return centres, (centres.repeat_interleave(n_per, 0) + 0.05 * torch.randn(8 * n_per, 4, generator=gen))


def test_kmeans_finds_separated_clusters():
    centres, rows = _clusters()
    centroids = kmeans(rows, 8, iters=10, seed=0)
    assert torch.cdist(centres.double(), centroids).min(1).values.max() < 0.1


@pytest.mark.parametrize("method", ["ste", "ema", "diveq", "rotation", "sf_diveq"])
def test_kmeans_init_sets_the_codebook_from_the_first_batch(method):
    centres, rows = _clusters()
    stage = Quantizer(8, 4, method, kmeans_init=True, skip_iters=0, kmeans_iters=10)
    assert stage.maintenance.kmeans_pending
    stage(rows)
    expected = kmeans(rows, 8, iters=10, seed=0).float()
    if stage.spec.ema:  # the first step's EMA update already moved the codewords to their means
        assert torch.cdist(centres, stage.weight.detach()).min(1).values.max() < 0.1
    else:
        assert torch.equal(stage.weight.detach(), expected)
    assert not stage.maintenance.kmeans_pending
    stage(rows)  # later batches leave the initialisation alone
    state = stage.state_dict()
    fresh = Quantizer(8, 4, method, kmeans_init=True, skip_iters=0)
    fresh.load_state_dict(state)
    assert not fresh.maintenance.kmeans_pending  # a resumed run does not re-initialise


def test_kmeans_init_after_the_warm_up_clusters_the_captured_latents():
    centres, rows = _clusters()
    stage = Quantizer(8, 4, "diveq", kmeans_init=True, skip_iters=3, avg_iters=2, latents_per_code=40)
    assert not stage.maintenance.kmeans_pending
    for _ in range(4):
        stage(rows[torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(_))])
    assert stage.maintenance.initialized
    assert torch.cdist(centres, stage.weight.detach()).min(1).values.max() < 0.1


def test_kmeans_init_cosine_clusters_directions():
    centres, rows = _clusters()
    centroids = kmeans(rows, 8, iters=10, seed=0, rule="cosine")
    torch.testing.assert_close(centroids.norm(dim=1), torch.ones(8, dtype=torch.float64))


def test_kmeans_init_is_refused_where_there_is_no_learned_codebook():
    with pytest.raises(ValueError, match="kmeans_init applies to learned codebooks, not method 'fsq'"):
        Quantizer(125, 3, "fsq", fsq_levels=[5, 5, 5], kmeans_init=True)
    with pytest.raises(ValueError, match="kmeans_iters must be >= 1"):
        Quantizer(8, 4, "ste", kmeans_init=True, kmeans_iters=0)


# ---------------------------------------------------------------------------- residual FSQ
def test_residual_fsq_scales_stage_i_grid_by_levels_to_the_minus_i():
    levels = [8, 5, 5, 5]
    rq = ResidualQuantizer(3, 1000, 4, "fsq", fsq_levels=levels).eval()
    ref = FSQ(levels)
    for i, stage in enumerate(rq.stages):
        scale = torch.tensor(levels, dtype=torch.float64).pow(-i).float()
        torch.testing.assert_close(stage.weight, ref.implicit_codebook * scale)
    # Stage by stage, each is the reference FSQ on its rescaled residual (forward values and codes;
    # vector-quantize-pytorch's own ResidualFSQ uses its symmetry-preserving rounding instead).
    z = _latents(200, 4, scale=1.0)
    out = rq(z)
    residual, total = z, torch.zeros_like(z)
    for i in range(3):
        scale = torch.tensor(levels, dtype=torch.float64).pow(-i).float()
        q, idx = ref(residual[None] / scale)
        q = q[0] * scale
        assert torch.equal(out.codes[:, i], idx[0].long())
        residual, total = residual - q, total + q
    torch.testing.assert_close(out.z_q, total, rtol=0, atol=1e-6)
    torch.testing.assert_close(rq.decode(out.codes), out.z_q, rtol=0, atol=1e-6)
    # Each stage removes error: the residual FSQ's distortion falls with the stages used.
    errors = [(z - rq.decode(out.codes[:, :n])).pow(2).mean() for n in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]


# ---------------------------------------------------------------------------- DAC stages
def _rvq(method, **options):
    from dac_diveq.codec.dac_layers import ResidualVectorQuantize

    sizes = {"fsq": dict(codebook_size=125, codebook_dim=3, fsq_levels=[5, 5, 5]),
             "simvq": dict(codebook_size=64, codebook_dim=8)}[method]
    torch.manual_seed(0)
    return ResidualVectorQuantize(32, 3, method=method, quantizer_dropout=0.5, **sizes, **options)


@pytest.mark.parametrize("method", BASELINES)
def test_dac_stages_train_and_decode_their_codes(method):
    rvq = _rvq(method)
    x = torch.randn(2, 32, 11, requires_grad=True)
    z_q, codes, latents, commitment, codebook_loss = rvq(x)
    (z_q.pow(2).mean() + commitment + codebook_loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert {f"stage{i}/perplexity" for i in range(3)} <= set(rvq.metrics)
    if method == "simvq":
        assert all(q.codebook.transform.weight.grad is not None for q in rvq.quantizers)
        assert commitment > 0 and codebook_loss > 0
    else:
        assert commitment == 0 and codebook_loss == 0  # FSQ has no auxiliary loss
    rvq.eval()
    z_q, codes, latents, *_ = rvq(x)
    decoded, _, _ = rvq.from_codes(codes)
    torch.testing.assert_close(decoded, z_q, rtol=0, atol=1e-5)
    _, _, codes_again = rvq.from_latents(latents)
    assert torch.equal(codes_again, codes)


@pytest.mark.parametrize("method", BASELINES)
def test_dac_stages_state_dict_round_trips(method):
    a, b = _rvq(method), _rvq(method)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.01)
    b.load_state_dict(a.state_dict(), strict=True)
    a.eval(), b.eval()
    x = torch.randn(1, 32, 5)
    assert torch.equal(a(x)[1], b(x)[1])
