"""Codebook maintenance under ``torch.distributed``: two CPU ranks (gloo), real DDP training.

Each rank trains the same model wrapped in ``DistributedDataParallel`` (default
``broadcast_buffers=True``) on *different*, deliberately skewed data:

* rank 0 only ever sees latents around centres ``A`` (8 points), rank 1 only around ``B``
  (8 other points);
* codewords 0..7 start next to ``A``, 8..15 next to ``B`` and 16..63 far from all data,
  so after the first replacement window exactly 48 codewords are dead *if and only if
  both ranks' usage is counted*. Counting rank 0 alone would also kill 8..15.

After training the codebooks are compared bit for bit across ranks, and the workers
report what the maintenance observed (``replaced_last`` per step, codebook snapshots,
the SF-DiVeQ capture buffer) through files in ``tmp_path``.
"""
from __future__ import annotations

import os
import traceback
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from dac_diveq.quantize import Quantizer, ResidualQuantizer

pytestmark = pytest.mark.slow  # spawns a process group

WORLD = 2
K, D = 64, 4
N_STEPS = 15
PER_CENTRE = 4  # rows per centre per step (replacement cases): 32 rows per rank and step
REPLACE = dict(replace_every=3, replace_every_after=3, discard_threshold=0.5, perturb_eps=1e-2)
FIRST_ROUND_FORWARD = 3  # 0-based forward in which the first replacement (after step 3) runs
N_USED = 16  # codewords next to A (0..7) or B (8..15)


# ---------------------------------------------------------------------------- data
def _centres() -> torch.Tensor:
    """16 well separated points in R^4: rows 0..7 are A (rank 0), rows 8..15 are B (rank 1)."""
    gen = torch.Generator().manual_seed(123)
    centres = torch.randn(N_USED, D, generator=gen) * 3.0
    assert torch.cdist(centres, centres).add(torch.eye(N_USED) * 1e9).min() > 1.5
    return centres


def _rank_centres(rank: int) -> torch.Tensor:
    return _centres()[rank * 8 : rank * 8 + 8]


def _batch(rank: int, step: int, per_centre: int = PER_CENTRE, noise: float = 0.05) -> torch.Tensor:
    """This rank's latents at ``step``: every one of its 8 centres ``per_centre`` times, plus noise."""
    gen = torch.Generator().manual_seed(10_000 * (rank + 1) + step)
    x = _rank_centres(rank).repeat_interleave(per_centre, 0)
    return x + noise * torch.randn(x.shape, generator=gen)


@torch.no_grad()
def _skewed_init(stage: Quantizer) -> None:
    """Codewords 0..15 next to the centres, 16..63 far away (never the nearest of any latent)."""
    gen = torch.Generator().manual_seed(7)
    weight = torch.empty(K, D)
    weight[:N_USED] = _centres() + 0.1 * torch.randn(N_USED, D, generator=gen)
    weight[N_USED:] = 50.0 + torch.randn(K - N_USED, D, generator=gen)
    stage.weight.copy_(weight)


class _Net(nn.Module):
    """Quantizer behind a learnable (identity-initialised) input layer, as in a codec."""

    def __init__(self, quantizer: nn.Module) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(D))
        self.quantizer = quantizer

    def forward(self, x: torch.Tensor):
        out = self.quantizer(x * self.gain)
        return out.z_q, out.aux_loss


def _all_gather(t: torch.Tensor) -> list[torch.Tensor]:
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return out


# ---------------------------------------------------------------------------- cases (run on every rank)
def _stages(quantizer: nn.Module) -> list[Quantizer]:
    return list(quantizer.stages) if isinstance(quantizer, ResidualQuantizer) else [quantizer]


def _train_replacement(rank: int, make_quantizer) -> dict:
    torch.manual_seed(0)  # same model on every rank
    quantizer = make_quantizer()
    _skewed_init(_stages(quantizer)[0])
    model = DDP(_Net(quantizer))  # broadcast_buffers=True (the default)
    assert model.broadcast_buffers
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    torch.manual_seed(1_000 + rank)  # the estimators' noise differs per rank, as in real runs

    history = [[] for _ in _stages(quantizer)]
    after_first_round = None
    for step in range(N_STEPS):
        x = _batch(rank, step)
        z_q, aux = model(x)
        for i, stage in enumerate(_stages(quantizer)):
            history[i].append(stage.maintenance.replaced_last)
        if step == FIRST_ROUND_FORWARD:
            after_first_round = _stages(quantizer)[0].codebook.detach().clone()
        loss = F.mse_loss(z_q, x) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()

    codebooks = [stage.codebook.detach().clone() for stage in _stages(quantizer)]
    gathered = [_all_gather(cb) for cb in codebooks]
    return {
        "history": history,
        "after_first_round": after_first_round,
        "codebooks": codebooks,
        "gathered_equal": all(torch.equal(g[0], g[r]) for g in gathered for r in range(WORLD)),
        "gain": model.module.gain.detach().clone(),
    }


def _case_diveq(rank: int) -> dict:
    return _train_replacement(rank, lambda: Quantizer(K, D, "diveq", **REPLACE))


def _case_residual_ste(rank: int) -> dict:
    return _train_replacement(
        rank, lambda: ResidualQuantizer(2, K, D, "ste", quantizer_dropout=0.5, **REPLACE)
    )


def _case_ema(rank: int) -> dict:
    return _train_replacement(rank, lambda: Quantizer(K, D, "ema", **REPLACE))


SF = dict(skip_iters=6, avg_iters=4, latents_per_code=4)  # capture: 64 rows/step, 256 rows = 4 per codeword
SF_PER_CENTRE = 16  # 128 rows per rank and step (>= 64 captured rows per step)


def _case_sf_diveq(rank: int, ddp_options: dict, n_steps: int = N_STEPS) -> dict:
    torch.manual_seed(0)
    quantizer = Quantizer(K, D, "sf_diveq", **SF)
    random_init = quantizer.codebook.detach().clone()
    model = DDP(_Net(quantizer), **ddp_options)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    torch.manual_seed(1_000 + rank)
    m = quantizer.maintenance

    capture, at_init, initialized_at = None, None, None
    for step in range(n_steps):
        x = _batch(rank, step, per_centre=SF_PER_CENTRE)
        if not m.initialized:
            capture = m.capture[: m.capture_len].clone()  # what the next initialisation will use
        was_initialized = m.initialized
        z_q, aux = model(x)
        if m.initialized and not was_initialized:
            initialized_at, at_init = step, quantizer.codebook.detach().clone()
        loss = F.mse_loss(z_q, x) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()

    codebook = quantizer.codebook.detach().clone()
    gathered, gathered_init = _all_gather(codebook), _all_gather(at_init)
    return {
        "random_init": random_init,
        "capture": capture,
        "at_init": at_init,
        "initialized_at": initialized_at,
        "codebooks": [codebook],
        "gathered_equal": all(torch.equal(g, codebook) for g in gathered),
        "at_init_gathered_equal": all(torch.equal(g, at_init) for g in gathered_init),
    }


def _case_simvq(rank: int) -> dict:
    # The skewed start is the frozen basis here; the learned map is what DDP must keep identical.
    return _train_replacement(rank, lambda: Quantizer(K, D, "simvq", **REPLACE))


def _case_kmeans_init(rank: int) -> dict:
    torch.manual_seed(0)
    quantizer = Quantizer(N_USED, D, "ste", kmeans_init=True)
    model = DDP(_Net(quantizer))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    at_init = None
    for step in range(3):
        x = _batch(rank, step)
        z_q, aux = model(x)
        if at_init is None:
            at_init = quantizer.codebook.detach().clone()
        loss = F.mse_loss(z_q, x) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
    codebook = quantizer.codebook.detach().clone()
    return {
        "at_init": at_init,
        "codebooks": [codebook],
        "gathered_equal": all(torch.equal(g, codebook) for g in _all_gather(codebook)),
        "at_init_gathered_equal": all(torch.equal(g, at_init) for g in _all_gather(at_init)),
    }


# The skip phase leaves the codebook out of the graph; DDP then needs find_unused_parameters.
CASES = {
    "simvq": _case_simvq,
    "kmeans_init": _case_kmeans_init,
    "diveq": _case_diveq,
    "residual_ste": _case_residual_ste,
    "ema": _case_ema,
    "sf_diveq": lambda rank: _case_sf_diveq(rank, {"find_unused_parameters": True}),
    # As DAC's training script wraps the generator (audiotools' Accelerator: DDP defaults).
    "sf_diveq_default_ddp": lambda rank: _case_sf_diveq(rank, {}, n_steps=SF["skip_iters"] + 3),
}


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """Run every case in one process group (one spawn keeps the file fast); a case that raises
    (symmetrically on both ranks) is recorded and the next case still runs."""
    torch.set_num_threads(1)
    if os.path.exists("/sys/class/net/lo"):  # do not depend on the host name resolving
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
        timeout=timedelta(seconds=60),
    )
    results = {}
    try:
        for name, case in CASES.items():
            try:
                results[name] = case(rank)
            except Exception:  # reported by the test of that case
                results[name] = {"error": traceback.format_exc()}
            dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[dict]]:
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(WORLD, str(tmp / "rendezvous"), str(tmp)), nprocs=WORLD, join=True)
    per_rank = [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]
    return {name: [per_rank[r][name] for r in range(WORLD)] for name in CASES}


def _results(runs, case: str) -> list[dict]:
    results = runs[case]
    for rank, r in enumerate(results):
        if "error" in r:
            pytest.fail(f"case {case!r} raised on rank {rank}:\n{r['error']}", pytrace=False)
    return results


# ---------------------------------------------------------------------------- checks
def _assert_identical_codebooks(results: list[dict]) -> None:
    for r in results:
        assert r["gathered_equal"], "all_gather: codebooks differ between ranks"
    for a, b in zip(results[0]["codebooks"], results[1]["codebooks"]):
        assert torch.equal(a, b), f"codebooks differ by up to {(a - b).abs().max().item():.3g}"


def _assert_both_ranks_counted(results: list[dict]) -> None:
    """First replacement window: only the 48 far codewords are dead (both ranks' usage counted),
    and the dead ones were refilled from donors of *both* ranks."""
    centres = _centres()
    for r in results:
        assert r["history"][0][FIRST_ROUND_FORWARD - 1] == 0  # nothing replaced before the round
        assert r["history"][0][FIRST_ROUND_FORWARD] == K - N_USED, (
            f"replaced {r['history'][0][FIRST_ROUND_FORWARD]} codewords in the first round; "
            f"{K - N_USED} are unused by both ranks (8 more means rank 1's usage was lost)"
        )
        cb = r["after_first_round"]
        # Codewords used only by rank 1 survived in place (not overwritten by copies of A).
        assert torch.linalg.vector_norm(cb[8:16] - centres[8:16], dim=1).max() < 0.5
        assert torch.linalg.vector_norm(cb[0:8] - centres[0:8], dim=1).max() < 0.5
        # Every dead codeword became a copy of a used one, drawn from both ranks' codewords.
        dist_to_centres = torch.cdist(cb[N_USED:], centres)
        assert dist_to_centres.min(1).values.max() < 0.5
        donors = set(dist_to_centres.argmin(1).tolist())
        assert donors & set(range(8)) and donors & set(range(8, 16)), donors


def test_diveq_replacement_is_identical_across_ranks_and_counts_both_ranks(runs):
    results = _results(runs, "diveq")
    _assert_identical_codebooks(results)
    _assert_both_ranks_counted(results)
    assert results[0]["history"] == results[1]["history"]
    assert torch.equal(results[0]["gain"], results[1]["gain"])  # ordinary DDP sync still works


def test_residual_ste_replacement_is_identical_across_ranks(runs):
    results = _results(runs, "residual_ste")
    _assert_identical_codebooks(results)
    _assert_both_ranks_counted(results)
    assert results[0]["history"] == results[1]["history"]
    assert max(results[0]["history"][1]) > 0  # the second stage replaced codewords too


def test_ema_replacement_is_identical_across_ranks(runs):
    results = _results(runs, "ema")
    _assert_identical_codebooks(results)
    _assert_both_ranks_counted(results)


def test_sf_diveq_initialisation_is_identical_and_pools_both_ranks(runs):
    results = _results(runs, "sf_diveq")
    for r in results:
        assert r["initialized_at"] == SF["skip_iters"], r["initialized_at"]
        assert r["at_init_gathered_equal"]
    a, b = results
    assert torch.equal(a["at_init"], b["at_init"]), "SF initialisation differs between ranks"
    assert not torch.allclose(a["at_init"], a["random_init"])
    # Both ranks' captured latents are pooled (rank order) and cut into K consecutive chunks,
    # so every codeword is a local mean of one rank's neighbouring latents.
    assert a["capture"].shape == b["capture"].shape == (K * SF["latents_per_code"], D)
    assert not torch.allclose(a["capture"].mean(0), b["capture"].mean(0), atol=0.5)  # skewed data
    pooled = torch.cat([r["capture"] for r in results])
    expected = pooled.reshape(K, -1, D).mean(1)
    torch.testing.assert_close(a["at_init"], expected, atol=1e-5, rtol=1e-5)
    _assert_identical_codebooks(results)


def test_sf_diveq_skip_phase_trains_under_default_ddp(runs):
    """DAC's trainer wraps the generator in DDP with default options; the SF-DiVeQ skip phase
    must not break it (the codebook receives no gradient while quantization is skipped)."""
    results = _results(runs, "sf_diveq_default_ddp")
    assert all(r["initialized_at"] == SF["skip_iters"] for r in results)
    _assert_identical_codebooks(results)


def test_simvq_map_is_identical_across_ranks(runs):
    results = _results(runs, "simvq")
    _assert_identical_codebooks(results)
    assert all(h == 0 for r in results for stage in r["history"] for h in stage)  # no replacement


def test_kmeans_init_pools_both_ranks_latents_identically(runs):
    results = _results(runs, "kmeans_init")
    _assert_identical_codebooks(results)
    for r in results:
        assert r["at_init_gathered_equal"]
    # Rank 0 only saw A and rank 1 only B: a codeword next to every centre means both were pooled.
    assert torch.cdist(_centres(), results[0]["at_init"]).min(1).values.max() < 0.2
