"""Codebook maintenance: replacement (paper B.1), SF-DiVeQ initialisation (A.5), EMA, resume."""
import io

import pytest
import torch

from dac_diveq.quantize import METHODS, Quantizer
from dac_diveq.quantize.schedule import ReplacementSchedule


def test_paper_schedule():
    s = ReplacementSchedule(every=100, every_after=500, slowdown_at=2000, stop_before_end=1000, total_iters=5000)
    due = [t for t in range(1, 5001) if s.is_due(t)]
    assert due[:3] == [100, 200, 300] and 2000 in due and 2100 not in due
    assert 2500 in due and 3500 in due and 4000 in due
    assert max(due) == 4000  # nothing in the last 1000 steps
    assert not any(ReplacementSchedule(every=0, every_after=500, slowdown_at=2000, stop_before_end=1000, total_iters=None).is_due(t) for t in range(1, 1000))


def _skewed_batch(n=256, center=(3.0, -2.0), scale=0.3):
    return torch.tensor(center) + scale * torch.randn(n, 2)


def _revive_run(replace_every):
    torch.manual_seed(0)
    stage = Quantizer(32, 2, "diveq", replace_every=replace_every, discard_threshold=0.5)
    with torch.no_grad():
        stage.weight.mul_(0.1)  # all codewords far from the data: one or two win every latent
    used = stage(_skewed_batch()).codes.unique()
    winners = stage.codebook.detach()[used].clone()
    for _ in range(10):  # step 11 runs the replacement due after step 10
        stage(_skewed_batch())
    copies = (stage.codebook.detach()[:, None] - winners[None]).norm(dim=-1).min(1).values
    copies = copies / winners.norm(dim=1).max()
    # The perturbation is small but survives float32 distances: copies win latents at once.
    used_at_once = stage(_skewed_batch()).codes.unique().numel()
    # Revived codewords are copies of used ones; a little training splits them apart.
    opt = torch.optim.SGD(stage.parameters(), lr=0.05)
    for _ in range(30):
        z = _skewed_batch()
        out = stage(z)
        (out.z_q - z).pow(2).sum(1).mean().backward()  # DiVeQ's forward value is the codeword
        opt.step(), opt.zero_grad()
    stage.eval()
    used_after = stage(_skewed_batch()).codes.unique().numel()
    return used.numel(), copies, stage.maintenance.replaced_last, used_at_once, used_after


def test_replacement_revives_dead_codewords_on_a_skewed_stream():
    used_before, copies, _, used_at_once, used_after = _revive_run(replace_every=10)
    assert copies.max() < 1e-2  # every dead codeword became a (perturbed) copy of a used one
    assert used_after >= 3 * used_before + 1
    control_before, _, replaced, _, control_after = _revive_run(replace_every=0)
    assert replaced == 0 and control_after == control_before


def _copies_win_at_once(perturb_eps):
    torch.manual_seed(0)
    stage = Quantizer(16, 2, "diveq", replace_every=1, discard_threshold=0.5, perturb_eps=perturb_eps)
    with torch.no_grad():
        stage.weight.copy_(torch.randn(16, 2) + 50.0)
        stage.weight[3] = torch.tensor([3.0, -2.0])  # the only codeword near the data
    stage(_skewed_batch())
    stage(_skewed_batch())  # replacement after step 1: 15 copies of codeword 3
    return stage(_skewed_batch()).codes.unique().numel()


def test_relative_perturbation_lets_copies_win_latents_at_once():
    assert _copies_win_at_once(1e-3) >= 8
    # An absolute 1e-9 (the authors' package) vanishes in float32 distances: the copies tie.
    assert _copies_win_at_once(1e-9 / 3.6) == 1


def test_replacement_keeps_used_codewords_and_draws_donors_by_usage():
    torch.manual_seed(0)
    stage = Quantizer(8, 2, "ste", replace_every=1, discard_threshold=0.5)
    with torch.no_grad():
        stage.weight.copy_(torch.tensor([[0.0, 0], [10, 10], [20, 20], [30, 30],
                                         [-10, 0], [-20, 0], [-30, 0], [-40, 0]]))
    before = stage.codebook.detach().clone()
    z = torch.cat([torch.zeros(90, 2), torch.full((10, 2), 10.0)])
    stage(z)
    stage(z)  # replacement after step 1
    after = stage.codebook.detach()
    assert torch.equal(after[:2], before[:2])
    gaps = (after[2:, None] - before[None, :2]).norm(dim=-1)
    donors = gaps.argmin(1)
    assert (gaps.min(1).values < 0.1).all()  # relative perturbation of donors of norm 0 and ~14
    assert (donors == 0).sum() >= 3  # codeword 0 carries 90% of the usage


@pytest.mark.parametrize("method", METHODS)
def test_warmup_initialisation_puts_codewords_inside_the_latent_cloud(method):
    """SF-DiVeQ's skip-and-initialise (paper A.5), given to every method by an explicit skip_iters."""
    torch.manual_seed(0)
    stage = Quantizer(16, 2, method, skip_iters=20, avg_iters=5, latents_per_code=8)
    with torch.no_grad():
        stage.weight.add_(50.0)  # far outside the data
    center = torch.tensor([-4.0, 7.0])
    for step in range(1, 21):
        z = center + torch.randn(64, 2)
        out = stage(z)
        assert torch.equal(out.z_q, z)  # no quantization while skipping
        assert float(out.aux_loss) == 0.0
        assert stage.maintenance.capture.shape[0] <= stage.maintenance.rows_per_step * 5
    assert not stage.maintenance.initialized
    out = stage(center + torch.randn(64, 2))  # step 21 initialises, then quantizes
    assert stage.maintenance.initialized and stage.maintenance.capture.numel() == 0
    codebook = stage.codebook.detach()
    assert (codebook - center).norm(dim=1).max() < 1.5  # local means of N(center, I) samples
    assert codebook.std(0).min() > 0.05  # not collapsed onto one point
    assert not torch.equal(out.z_q, out.z_q.new_zeros(()))


def test_ema_moves_codewords_to_the_mean_of_their_latents():
    torch.manual_seed(0)
    stage = Quantizer(2, 2, "ema", replace_every=0, ema_decay=0.9)
    with torch.no_grad():
        stage.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    assert not stage.weight.requires_grad
    for _ in range(200):
        z = torch.cat([torch.tensor([3.0, 1.0]) + 0.1 * torch.randn(50, 2),
                       torch.tensor([-2.0, -1.0]) + 0.1 * torch.randn(50, 2)])
        out = stage(z)
    torch.testing.assert_close(stage.codebook, torch.tensor([[3.0, 1.0], [-2.0, -1.0]]), atol=0.05, rtol=0)
    assert out.aux_loss > 0


def _train(stage, encoder, steps, seed_offset=0):
    opt = torch.optim.Adam(list(stage.parameters()) + list(encoder.parameters()), lr=1e-2)
    for step in range(steps):
        g = torch.Generator().manual_seed(1000 + step + seed_offset)
        x = torch.randn(32, 2, generator=g) * torch.tensor([1.0, 0.1])
        out = stage(encoder(x))
        ((out.z_q - encoder(x)).pow(2).mean() + out.aux_loss + (out.z_q.sum(1) - x.sum(1)).pow(2).mean()).backward()
        opt.step(), opt.zero_grad()
    return opt


@pytest.mark.parametrize("method,options", [
    ("diveq", dict(replace_every=4, replace_every_after=4, discard_threshold=0.5)),
    ("sf_diveq", dict(skip_iters=10, avg_iters=6, latents_per_code=2)),
    ("ema", dict(replace_every=3, discard_threshold=0.3)),
])
def test_resume_from_a_checkpoint_continues_exactly(method, options):
    def build():
        torch.manual_seed(0)
        return Quantizer(16, 4, method, **options), torch.nn.Linear(2, 4)

    stage, enc = build()
    opt = _train(stage, enc, 7)  # stops mid-window / mid-capture
    buffer = io.BytesIO()
    torch.save({"stage": stage.state_dict(), "enc": enc.state_dict(), "opt": opt.state_dict(),
                "rng": torch.get_rng_state()}, buffer)
    _continue(stage, enc, opt)
    reference = stage.codebook.detach().clone(), stage.maintenance.step, stage.maintenance.usage.clone()

    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)
    resumed, enc2 = build()
    resumed.load_state_dict(ckpt["stage"], strict=True)
    enc2.load_state_dict(ckpt["enc"])
    opt2 = torch.optim.Adam(list(resumed.parameters()) + list(enc2.parameters()), lr=1e-2)
    opt2.load_state_dict(ckpt["opt"])
    torch.set_rng_state(ckpt["rng"])
    _continue(resumed, enc2, opt2)
    assert resumed.maintenance.step == reference[1]
    assert torch.equal(resumed.codebook.detach(), reference[0])
    assert torch.equal(resumed.maintenance.usage, reference[2])


def _continue(stage, enc, opt):
    for step in range(7, 20):
        g = torch.Generator().manual_seed(1000 + step)
        x = torch.randn(32, 2, generator=g) * torch.tensor([1.0, 0.1])
        out = stage(enc(x))
        ((out.z_q - enc(x)).pow(2).mean() + out.aux_loss + (out.z_q.sum(1) - x.sum(1)).pow(2).mean()).backward()
        opt.step(), opt.zero_grad()


def _discard_run(rule):
    """Codeword 1 gets 10 latents in one step of four, codeword 0 everything else."""
    stage = Quantizer(4, 2, "ste", replace_every=4, discard_threshold=0.5, discard_rule=rule)
    with torch.no_grad():
        stage.weight.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [-10.0, 0.0]]))
    before = stage.codebook.detach().clone()
    for step in range(5):  # the replacement due after step 4 runs at the start of step 5
        z = torch.zeros(40, 2)
        if step == 0:
            z[:10] = torch.tensor([10.0, 0.0])
        stage(z)
    return (stage.codebook.detach() != before).any(1).tolist()


def test_discard_rule_steps_counts_steps_in_which_a_codeword_was_used():
    # The authors' convention (default): codeword 1 was used in 1 of 4 steps (< 0.5): dead.
    assert _discard_run("steps") == [False, True, True, True]
    # Assignments per step: 10 / 4 = 2.5 >= 0.5, so codeword 1 stays.
    assert _discard_run("assignments") == [False, False, True, True]


def test_discard_rule_is_validated():
    with pytest.raises(ValueError, match="discard_rule"):
        Quantizer(4, 2, "ste", discard_rule="sometimes")


@pytest.mark.parametrize("method", METHODS)
def test_skip_iters_defaults_to_the_papers_for_sf_diveq_and_off_for_the_others(method):
    stage = Quantizer(16, 2, method)
    expected = 1000 if method.startswith("sf_") else 0
    assert stage.maintenance.skip_iters == expected
    assert stage.maintenance.initialized == (expected == 0)
