"""Codebook state and maintenance: the one place that changes codewords outside the optimizer.

:class:`CodebookMaintenance` owns every piece of per-stage training state and
the three procedures that act on the codebook directly:

* usage counting and **replacement** of dead codewords (paper B.1),
* **SF-DiVeQ initialisation** from averaged recent latents (paper A.5), fed by
  a bounded capture buffer,
* **EMA** codebook updates (the ``ema`` method),
* **k-means initialisation** (EnCodec's), from the first batch or from the captured latents.

Ordinary steps only touch device tensors (no host synchronisation). Decisions
that need host values (replacement, initialisation) happen on their scheduled
steps; they use statistics summed over ranks and rank 0's random draws, so the
codebook is bit-identical on every rank.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

from ..errors import ConfigError
from . import distributed
from .lookup import nearest
from .schedule import ReplacementSchedule

# Laplace smoothing of EMA cluster sizes, so rarely used codewords do not divide by ~0.
EMA_EPS = 1e-5
#: How dead codewords are found: ``steps`` - used in fewer than ``discard_threshold`` of the
#: training steps since the last replacement (the DiVeQ authors' package: one count per step in
#: which a codeword was used at all); ``assignments`` - fewer than ``discard_threshold``
#: assignments per step on average.
DISCARD_RULES = ("steps", "assignments")


def _kmeans_plus_plus(rows: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next centroid is a row drawn with
    probability proportional to its squared distance to the nearest centroid so far, so separated
    clusters are rarely left without one (uniform seeding often puts two in one cluster). With
    ``N <= k`` rows every row is a centroid and the rest repeat rows (dead, for replacement)."""
    n = rows.shape[0]
    if n <= k:
        extra = torch.randint(0, n, (k - n,), generator=gen)
        return rows[torch.cat([torch.arange(n), extra]).to(rows.device)].clone()
    # Draws on the CPU from the seeded generator: the same on every rank and device.
    first = int(torch.randint(0, n, (1,), generator=gen))
    chosen = [first]
    dist = (rows - rows[first]).pow(2).sum(-1)
    for _ in range(k - 1):
        weights = dist.cpu()
        nxt = int(torch.multinomial(weights, 1, generator=gen)) if weights.sum() > 0 else \
            int(torch.randint(0, n, (1,), generator=gen))
        chosen.append(nxt)
        dist = torch.minimum(dist, (rows - rows[nxt]).pow(2).sum(-1))
    return rows[torch.tensor(chosen, device=rows.device)].clone()


@torch.no_grad()
def kmeans(rows: torch.Tensor, k: int, iters: int, seed: int, rule: str = "euclidean") -> torch.Tensor:
    """Lloyd's k-means of ``rows``, deterministic given ``seed``.

    Args:
        rows: ``(N, D)`` latents (``N < k`` repeats rows among the initial centroids).
        k: number of centroids.
        iters: Lloyd iterations.
        seed: seeds k-means++'s choice of initial centroids among the rows.
        rule: the stage's lookup; ``"cosine"`` clusters directions (spherical k-means), since
            a cosine lookup only ever sees a codeword's direction.

    Returns:
        ``(k, D)`` float64 centroids; a centroid that loses all its rows keeps its last value.
    """
    rows = rows.double()
    if rule == "cosine":
        rows = torch.nn.functional.normalize(rows, dim=-1)
    centroids = _kmeans_plus_plus(rows, k, torch.Generator().manual_seed(seed))
    for _ in range(iters):
        assign = nearest(rows, centroids, "euclidean")
        sums = torch.zeros_like(centroids).index_add_(0, assign, rows)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1).to(rows.dtype)
        centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        if rule == "cosine":
            centroids = torch.nn.functional.normalize(centroids, dim=-1)
    return centroids


class CodebookMaintenance(nn.Module):
    """Training-time state of one codebook and the procedures that maintain it.

    Args:
        codebook_size: number of codewords K.
        dim: codeword dimension D.
        schedule: when replacement runs (``schedule.enabled`` False turns it off).
        discard_threshold: a codeword is dead when its usage over the window since the last
            replacement falls below this, measured by ``discard_rule``.
        discard_rule: ``"steps"`` (default, the authors' convention: the fraction of training
            steps in which the codeword was used at all; 0.01 = used in fewer than 1% of the
            steps; under DDP, of the steps of every rank) or ``"assignments"`` (assignments per
            step, summed over ranks).
        perturb_eps: std of the noise added to a copied codeword, relative to the donor's RMS
            value. Relative, not absolute (the authors' 1e-9): in float32 an absolute 1e-9 on
            codewords of scale ~1 vanishes in the distances, so copies tie exactly with their donor
            and never win latents, and the dead codewords stay dead.
        skip_iters: steps without quantization before initialisation (0: quantize from the
            first step with the current codebook).
        avg_iters: the last ``avg_iters`` skipped steps feed the capture buffer.
        latents_per_code: each initial codeword is the mean of about this many
            consecutive captured latents; the buffer holds ``K * latents_per_code`` rows at most
            (rounded up to a whole number of rows per step).
        ema_decay: ``ema`` only: decay gamma of the codebook EMA; None disables EMA state.
        learned_table: the table holds learned codewords; False (FSQ's grid, SimVQ's frozen
            basis): the warm-up ends without touching it.
        kmeans_iters: > 0 initialises the codebook by k-means with this many iterations: of the
            first training batch (no warm-up) or of the captured latents (after ``skip_iters``).
        kmeans_rule: the stage's lookup rule (see :func:`kmeans`).
        seed: seeds the choice of which rows are captured (same on every rank and on resume)
            and k-means' initial centroids.

    Every option is required: the defaults are :class:`~dac_diveq.quantize.core.Quantizer`'s, the
    one place they are declared (it builds this state).
    """

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        schedule: ReplacementSchedule,
        *,
        discard_threshold: float,
        discard_rule: str,
        perturb_eps: float,
        skip_iters: int,
        avg_iters: int,
        latents_per_code: int,
        ema_decay: Optional[float],
        learned_table: bool,
        kmeans_iters: int,
        kmeans_rule: str,
        seed: int,
    ) -> None:
        super().__init__()
        if not discard_threshold >= 0.0:
            raise ConfigError(f"discard_threshold must be >= 0, got {discard_threshold}")
        if discard_rule not in DISCARD_RULES:
            raise ConfigError(f"discard_rule must be one of {DISCARD_RULES}, got {discard_rule!r}")
        if perturb_eps < 0:
            raise ConfigError(f"perturb_eps must be >= 0, got {perturb_eps}")
        if skip_iters < 0:
            raise ConfigError(f"skip_iters must be >= 0, got {skip_iters}")
        if skip_iters > 0 and not 1 <= avg_iters <= skip_iters:
            raise ConfigError(f"avg_iters must be in [1, skip_iters={skip_iters}], got {avg_iters}")
        if latents_per_code < 1:
            raise ConfigError(f"latents_per_code must be >= 1, got {latents_per_code}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1), got {ema_decay}")
        self.codebook_size = codebook_size
        self.dim = dim
        self.schedule = schedule
        self.discard_threshold = discard_threshold
        self.discard_rule = discard_rule
        self.perturb_eps = perturb_eps
        self.skip_iters = skip_iters
        self.avg_iters = avg_iters
        self.seed = seed
        self.ema_decay = ema_decay
        self.learned_table = learned_table
        self.kmeans_iters = kmeans_iters
        self.kmeans_rule = kmeans_rule

        # Host-side counters (saved through get_extra_state, never read from the device).
        self.step = 0
        self.window_start = 0
        self.initialized = self.skip_iters == 0
        # EnCodec-style: with no warm-up, k-means runs on the first training batch.
        self.kmeans_pending = kmeans_iters > 0 and self.skip_iters == 0
        self.capture_len = 0
        self.replaced_last = 0

        # Per-rank statistics are plain tensors, not buffers: DDP broadcasts buffers from
        # rank 0 at every forward, which would erase the other ranks' counts and latents.
        # They are saved through get_extra_state and follow the codebook's device lazily.
        self.usage = torch.zeros(codebook_size)
        self.rows_per_step = math.ceil(codebook_size * latents_per_code / max(avg_iters, 1))
        self.capture = torch.zeros(0, dim)
        if ema_decay is not None:
            self.register_buffer("ema_cluster_size", torch.ones(codebook_size))
            self.register_buffer("ema_embed_sum", torch.zeros(codebook_size, dim))
            self._ema_needs_init = True

    # ------------------------------------------------------------------ phases
    def begin_step(self, weight: torch.Tensor) -> int:
        """Start a training step: run the maintenance due after the previous step, then
        advance the step counter (called once per training forward).

        Maintenance runs here rather than at the end of the previous forward so that the
        codebook is never modified while a graph that saved it is waiting for backward.
        """
        if self.usage.device != weight.device:
            self.usage = self.usage.to(weight.device)
            self.capture = self.capture.to(weight.device)
        self.run_due(weight)
        self.step += 1
        return self.step

    @property
    def quantizing(self) -> bool:
        """False while SF-DiVeQ is still skipping quantization before its initialisation."""
        return self.initialized

    def capturing(self) -> bool:
        return self.learned_table and not self.initialized and self.step > self.skip_iters - self.avg_iters

    # ------------------------------------------------------------------ usage
    @torch.no_grad()
    def record(self, codes: torch.Tensor, accumulate: bool, counts: Optional[torch.Tensor] = None
               ) -> torch.Tensor:
        """Count this batch's assignments, adding them to the replacement window if
        ``accumulate`` (training steps).

        Args:
            codes: the batch's codes.
            accumulate: add to the replacement window.
            counts: ``(K,)`` usage of this batch when it is not the histogram of ``codes``
                (SF-DiVeQ's segments use both of their ends).

        Returns:
            ``(K,)`` float counts of this batch (used for metrics).
        """
        if counts is None:
            flat = codes.reshape(-1)
            counts = torch.zeros(self.codebook_size, device=codes.device).scatter_add_(
                0, flat, torch.ones(flat.shape, device=codes.device)
            )
        if accumulate and self.schedule.enabled:
            self.usage += (counts > 0).float() if self.discard_rule == "steps" else counts
        return counts

    # ------------------------------------------------------------------ replacement
    @torch.no_grad()
    def replace_dead(self, weight: torch.Tensor) -> int:
        """Replace codewords used less than ``discard_threshold`` (by ``discard_rule``) since the
        last replacement by used codewords drawn proportionally to their usage (plus a tiny
        perturbation). Identical on all ranks.

        Returns:
            number of replaced codewords.
        """
        distributed.all_reduce_sum_(self.usage)
        window = max(self.step - self.window_start, 1)
        if self.discard_rule == "steps":  # summed over ranks: the fraction of all ranks' steps
            window *= distributed.world_size()
        rate = self.usage / window
        dead = rate < self.discard_threshold
        alive_usage = torch.where(dead, torch.zeros_like(self.usage), self.usage)
        n_dead = int(dead.sum())  # replacement steps are rare: a host sync is fine here
        replaced = 0
        if 0 < n_dead < self.codebook_size:
            new_weight = weight.detach().clone()
            if not distributed.is_distributed() or torch.distributed.get_rank() == 0:
                donors = torch.multinomial(alive_usage.float(), n_dead, replacement=True)
                dead_idx = dead.nonzero().squeeze(1)
                copies = weight[donors]
                scale = copies.pow(2).mean(-1, keepdim=True).sqrt()
                new_weight[dead_idx] = copies + self.perturb_eps * scale * torch.randn_like(copies)
            distributed.broadcast_(new_weight)
            weight.copy_(new_weight)
            if self.ema_decay is not None:
                self.ema_cluster_size[dead] = 1.0
                self.ema_embed_sum[dead] = new_weight[dead]
            replaced = n_dead
        self.usage.zero_()
        self.window_start = self.step
        self.replaced_last = replaced
        return replaced

    # ------------------------------------------------------------------ SF-DiVeQ init
    @torch.no_grad()
    def capture_latents(self, z: torch.Tensor) -> None:
        """Keep a contiguous run of this step's latents for the initialisation.

        Consecutive rows are neighbouring frames of one example, so each initial
        codeword is a local mean inside the latent cloud rather than the global mean.
        """
        if self.capture.shape[0] == 0:
            self.capture = torch.zeros(self.rows_per_step * self.avg_iters, self.dim, device=z.device)
        n = min(self.rows_per_step, z.shape[0], self.capture.shape[0] - self.capture_len)
        if n <= 0:
            return
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
        offset = int(torch.randint(0, z.shape[0] - n + 1, (1,), generator=gen))
        self.capture[self.capture_len : self.capture_len + n] = z[offset : offset + n].detach().float()
        self.capture_len += n

    @torch.no_grad()
    def initialize_from_capture(self, weight: torch.Tensor) -> None:
        """Set codeword j to the mean of the j-th of K consecutive chunks of captured latents."""
        # Pool every rank's captured runs (in rank order) before chunking, so each codeword
        # stays the mean of neighbouring latents however many ranks there are.
        rows = distributed.gather_rows(self.capture[: self.capture_len]).double()
        total, k = rows.shape[0], self.codebook_size
        if total > 0 and self.kmeans_iters:
            self._set_table(weight, kmeans(rows, k, self.kmeans_iters, self.seed, self.kmeans_rule))
        elif total > 0:
            j = torch.arange(k, device=rows.device)
            start = torch.div(j * total, k, rounding_mode="floor")
            end = torch.maximum(torch.div((j + 1) * total, k, rounding_mode="floor"), start + 1)
            cumsum = torch.cat([rows.new_zeros(1, self.dim), rows.cumsum(0)])
            means = (cumsum[end] - cumsum[start]) / (end - start).unsqueeze(1).to(rows.dtype)
            weight.copy_(distributed.broadcast_(means.to(weight.dtype)))
        self.initialized = True
        self.capture = torch.zeros(0, self.dim, device=weight.device)
        self.capture_len = 0
        self.usage.zero_()  # the replacement window starts with the initialised codebook
        if self.ema_decay is not None:
            self._ema_needs_init = True

    # ------------------------------------------------------------------ k-means init
    @torch.no_grad()
    def kmeans_from_batch(self, weight: torch.Tensor, z: torch.Tensor) -> None:
        """EnCodec's initialisation: k-means of this (first) batch's latents, pooled over ranks."""
        rows = distributed.gather_rows(z.detach().float())
        self._set_table(weight, kmeans(rows, self.codebook_size, self.kmeans_iters, self.seed, self.kmeans_rule))
        self.kmeans_pending = False
        self.usage.zero_()
        if self.ema_decay is not None:
            self._ema_needs_init = True

    def _set_table(self, weight: torch.Tensor, centroids: torch.Tensor) -> None:
        # Every rank computed the same centroids from the same pooled rows; rank 0's copy is
        # broadcast anyway, so float reductions that differ by device cannot split the ranks.
        weight.copy_(distributed.broadcast_(centroids.to(weight.device, weight.dtype).contiguous()))

    # ------------------------------------------------------------------ EMA
    @torch.no_grad()
    def ema_update(self, weight: torch.Tensor, z: torch.Tensor, codes: torch.Tensor,
                   counts: torch.Tensor) -> None:
        """EMA of assigned latents: ``weight_k = ema(sum z | k) / ema(count_k)``."""
        if self._ema_needs_init:
            self.ema_embed_sum.copy_(weight)
            self._ema_needs_init = False
        sums = torch.zeros_like(self.ema_embed_sum).index_add_(0, codes.reshape(-1), z.detach().float())
        counts = counts.clone()
        distributed.all_reduce_sum_(counts)
        distributed.all_reduce_sum_(sums)
        decay = self.ema_decay
        self.ema_cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.ema_embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
        n = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + EMA_EPS) / (n + self.codebook_size * EMA_EPS) * n
        weight.copy_(self.ema_embed_sum / smoothed.unsqueeze(1))

    # ------------------------------------------------------------------ scheduled work
    def run_due(self, weight: torch.Tensor) -> None:
        """Run the maintenance scheduled after step ``self.step`` unless it already ran."""
        if not self.initialized:
            if self.step >= self.skip_iters:
                self.initialize_from_capture(weight)
                self.window_start = self.step
            return
        if self.step > self.window_start and self.schedule.is_due(self.step):
            self.replace_dead(weight)

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "window_start": self.window_start,
            "initialized": self.initialized,
            "capture_len": self.capture_len,
            "ema_needs_init": getattr(self, "_ema_needs_init", False),
            "kmeans_pending": self.kmeans_pending,
            "usage": self.usage,
            "capture": self.capture[: self.capture_len],
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.window_start = int(state["window_start"])
        self.initialized = bool(state["initialized"])
        self.capture_len = int(state["capture_len"])
        # Absent from checkpoints older than kmeans_init: a saved run is past its first batch.
        self.kmeans_pending = bool(state.get("kmeans_pending", False))
        device = self.usage.device
        self.usage = state["usage"].to(device=device, dtype=torch.float32).clone()
        self.capture = torch.zeros(0, self.dim, device=device)
        if self.capture_len:
            self.capture = torch.zeros(self.rows_per_step * self.avg_iters, self.dim, device=device)
            self.capture[: self.capture_len] = state["capture"].to(device)
        if self.ema_decay is not None:
            self._ema_needs_init = bool(state.get("ema_needs_init", False))

    def mark_initialized(self) -> None:
        """Treat the current codebook as initialised (e.g. codewords from a pretrained model)."""
        self.initialized = True
        self.kmeans_pending = False
        self.capture = torch.zeros(0, self.dim, device=self.usage.device)
        self.capture_len = 0
        if self.ema_decay is not None:
            self._ema_needs_init = True

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        before = len(missing_keys)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        # A checkpoint without maintenance state (e.g. stock DAC weights) is valid:
        # it means "fresh maintenance state", so its absence is not an error.
        own = [k for k in missing_keys[before:] if k.startswith(prefix)]
        for key in own:
            missing_keys.remove(key)
        if own and not any(k.startswith(prefix) for k in state_dict):
            self.mark_initialized()
