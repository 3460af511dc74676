"""One quantizer stage: a codebook, a lookup rule and a method, on ``(..., D)`` tensors."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from . import estimators, fsq
from .codebook import CodebookMaintenance
from .lookup import LOOKUPS, gather, nearest
from .methods import Selection, exponential_anneal, get_method
from .schedule import ReplacementSchedule
from .space_filling import dithered_point, project_to_curve, select_segment
from .stats import codebook_stats

SF_INFERENCE = ("codeword", "curve")
#: Codebook initialisations: DAC's ``nn.Embedding`` N(0, 1), or the DiVeQ authors' U(0, 1/K)
#: (codewords near the origin, where a freshly initialised encoder's latents are).
CODEBOOK_INITS = ("normal", "uniform")


@dataclass
class QuantizerOutput:
    """What a quantizer stage returns.

    Attributes:
        z_q: quantized latents, same shape as the input.
        codes: int64 codeword indices, shape ``input.shape[:-1]``.
        aux_loss: scalar auxiliary loss, already weighted (0 for the DiVeQ family).
        metrics: scalar tensors (usage, perplexity, entropy_bits, distortion, ...).
        commitment_loss: per-vector ``||z - sg[c]||^2 / D`` (shape ``input.shape[:-1]``),
            or a scalar 0 when the method has none. Unweighted.
        codebook_loss: per-vector ``||sg[z] - c||^2 / D`` or a scalar 0. Unweighted.
        latents: the stage's input after its own projection, where it has one (DAC's ``z_e``); else None.
    """

    z_q: torch.Tensor
    codes: torch.Tensor
    aux_loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    commitment_loss: Optional[torch.Tensor] = None
    codebook_loss: Optional[torch.Tensor] = None
    latents: Optional[torch.Tensor] = None


class Quantizer(nn.Module):
    """A vector-quantization stage with a selectable gradient estimator.

    In training mode the method's surrogate is used (and maintenance runs); in eval
    mode every method quantizes deterministically to the nearest codeword, whose
    index is a storable code. ``.weight`` / ``.codebook`` is the ``(K, D)`` table.

    Args:
        codebook_size: number of codewords K.
        dim: codeword dimension D.
        method: one of :data:`~dac_diveq.quantize.METHODS`.
        lookup: ``"euclidean"`` (paper) or ``"cosine"`` (DAC's rule on l2-normalised vectors).
        noise_var: variance sigma^2 of DiVeQ's directional noise (paper: 1e-3 for compression,
            1e-2 for VQGAN).
        commitment_weight: beta of the commitment loss (``ste``, ``ema``, ``rotation``).
        codebook_weight: alpha of the codebook loss (``ste``, ``rotation``).
        replace_every: replacement interval early in training (0 disables replacement).
        replace_every_after: replacement interval after ``replace_slowdown_at`` steps.
        replace_slowdown_at: step where the interval switches.
        replace_stop_before_end: no replacement in the last this-many steps of ``total_iters``.
        total_iters: planned length of training (None: unknown).
        discard_threshold: dead-codeword threshold, measured by ``discard_rule``.
        discard_rule: ``"steps"`` (the authors' convention: fraction of training steps in which a
            codeword was used at all) or ``"assignments"`` (assignments per step).
        perturb_eps: std of the perturbation of copied codewords, relative to their RMS value.
        skip_iters: training steps without quantization (latents pass through) before the
            codebook is initialised from means of recent latents (paper A.5). ``None``: the
            method's default, 1000 for SF-DiVeQ (the paper's) and 0 (off) for the others; an
            explicit value gives every method the same warm-up.
        avg_iters: how many of the last skipped steps feed the initialisation.
        latents_per_code: latents averaged per initial codeword.
        ema_decay: gamma of the ``ema`` method.
        gumbel_temperature: ``(start, end)`` of the Gumbel temperature's exponential anneal.
        gumbel_anneal_iters: steps of the anneal (default: ``total_iters`` or 10000).
        kl_weight: weight of Gumbel's KL-to-uniform loss.
        sf_inference: SF-DiVeQ eval output: ``"codeword"`` (default, storable) or
            ``"curve"`` (research option: nearest point on the curve, not storable).
        check_finite: raise on NaN/inf latents; default: on CPU tensors and in eval mode,
            where the check costs no device synchronisation of a training step.
        codebook_init: ``"normal"`` (N(0, 1), DAC's) or ``"uniform"`` (U(0, 1/K), the authors'
            image code; with large initial codewords and small latents one codeword wins every
            latent and the rotation trick's ``||c|| / ||z||`` scaling destabilises training).
        fsq_levels: ``fsq`` only: levels per dimension, e.g. ``[8, 5, 5, 5]``; then ``dim`` must be
            ``len(fsq_levels)`` and ``codebook_size`` their product (the implicit grid's size).
        fsq_stage: ``fsq`` only: the stage's index in a residual quantizer, which scales its grid
            by ``levels ** -fsq_stage`` per dimension (residual FSQ: each stage's residual is about
            one level spacing of the previous stage). Set by the residual wrappers.
        kmeans_init: initialise a learned codebook by k-means (EnCodec's): on the first training
            batch's latents (pooled over DDP ranks), or, with ``skip_iters``, on the latents
            captured during the warm-up instead of their chunk means. Not for ``fsq`` (no codebook)
            or ``simvq`` (its codebook is a frozen basis by design).
        kmeans_iters: Lloyd iterations of ``kmeans_init`` (EnCodec: 10).
        seed: seeds SF-DiVeQ's choice of captured latents and k-means' initial centroids.
    """

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        method: str = "diveq",
        *,
        lookup: str = "euclidean",
        noise_var: float = 1e-3,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        replace_every: int = 100,
        replace_every_after: int = 500,
        replace_slowdown_at: int = 2000,
        replace_stop_before_end: int = 1000,
        total_iters: Optional[int] = None,
        discard_threshold: float = 0.01,
        discard_rule: str = "steps",
        perturb_eps: float = 1e-3,
        skip_iters: Optional[int] = None,
        avg_iters: int = 50,
        latents_per_code: int = 32,
        ema_decay: float = 0.99,
        gumbel_temperature: tuple[float, float] = (1.0, 0.1),
        gumbel_anneal_iters: Optional[int] = None,
        kl_weight: float = 5e-4,
        sf_inference: str = "codeword",
        check_finite: Optional[bool] = None,
        codebook_init: str = "normal",
        fsq_levels: Optional[List[int]] = None,
        fsq_stage: int = 0,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.spec = get_method(method)
        if int(codebook_size) != codebook_size or codebook_size < 1:
            raise ConfigError(f"codebook_size must be a positive integer, got {codebook_size}")
        if int(dim) != dim or dim < 1:
            raise ConfigError(f"dim must be a positive integer, got {dim}")
        if self.spec.space_filling and codebook_size < 2:
            raise ConfigError(f"{method} needs codebook_size >= 2 (it quantizes to segments)")
        if lookup not in LOOKUPS:
            raise ConfigError(f"unknown lookup {lookup!r}; expected one of {LOOKUPS}")
        if not noise_var > 0:
            raise ConfigError(f"noise_var is a variance and must be > 0, got {noise_var}")
        if codebook_init not in CODEBOOK_INITS:
            raise ConfigError(f"codebook_init must be one of {CODEBOOK_INITS}, got {codebook_init!r}")
        if sf_inference not in SF_INFERENCE:
            raise ConfigError(f"sf_inference must be one of {SF_INFERENCE}, got {sf_inference!r}")
        t_start, t_end = gumbel_temperature
        if not (t_start > 0 and t_end > 0):
            raise ConfigError(f"gumbel_temperature values must be > 0, got {gumbel_temperature}")
        for name, weight in (("commitment_weight", commitment_weight), ("codebook_weight", codebook_weight),
                             ("kl_weight", kl_weight)):
            if weight < 0:
                raise ConfigError(f"{name} must be >= 0, got {weight}")
        table = self.spec.table
        if table == "fsq":
            levels = fsq.check_levels(fsq_levels or (), codebook_size, dim)
        elif fsq_levels:
            raise ConfigError(f"fsq_levels applies to method 'fsq', not {method!r}")
        if fsq_stage < 0:
            raise ConfigError(f"fsq_stage must be >= 0, got {fsq_stage}")
        if kmeans_init and table != "learned":
            raise ConfigError(f"kmeans_init applies to learned codebooks, not method {method!r}")
        if kmeans_init and kmeans_iters < 1:
            raise ConfigError(f"kmeans_iters must be >= 1, got {kmeans_iters}")

        self.codebook_size = int(codebook_size)
        self.dim = int(dim)
        self.method = method
        self.lookup = lookup
        self.noise_var = float(noise_var)
        self.commitment_weight = commitment_weight
        self.codebook_weight = codebook_weight
        self.kl_weight = kl_weight
        self.gumbel_schedule = (float(t_start), float(t_end), gumbel_anneal_iters or total_iters or 10_000)
        self._explicit_anneal = gumbel_anneal_iters is not None
        self.sf_inference = sf_inference
        self.check_finite = check_finite

        self.weight = nn.Parameter(self._initial_table(codebook_init, fsq_levels),
                                   requires_grad=table == "learned" and not self.spec.ema)
        if table == "fsq":
            # Not saved: the levels are a constructor argument; a buffer follows the device.
            self.register_buffer("fsq_levels", torch.tensor(levels, dtype=torch.long), persistent=False)
            self.register_buffer("fsq_scale", self.fsq_levels.double().pow(-fsq_stage).float(), persistent=False)
            with torch.no_grad():
                self.weight.mul_(self.fsq_scale)
        if table == "frozen_linear":
            # SimVQ's learned map of the frozen basis (the paper's one linear layer, no bias).
            self.transform = nn.Linear(self.dim, self.dim, bias=False)
        schedule = ReplacementSchedule(
            every=replace_every if self.spec.replacement else 0,
            every_after=replace_every_after,
            slowdown_at=replace_slowdown_at,
            stop_before_end=replace_stop_before_end,
            total_iters=total_iters,
        )
        self.maintenance = CodebookMaintenance(
            self.codebook_size,
            self.dim,
            schedule,
            discard_threshold=discard_threshold,
            discard_rule=discard_rule,
            perturb_eps=perturb_eps,
            skip_iters=(1000 if self.spec.space_filling else 0) if skip_iters is None else skip_iters,
            avg_iters=avg_iters,
            latents_per_code=latents_per_code,
            ema_decay=ema_decay if self.spec.ema else None,
            learned_table=table == "learned",
            kmeans_iters=kmeans_iters if kmeans_init else 0,
            kmeans_rule=lookup,
            seed=seed,
        )

    def _initial_table(self, codebook_init: str, fsq_levels: Optional[List[int]]) -> torch.Tensor:
        """What ``weight`` starts as: the codewords, FSQ's grid, or SimVQ's frozen basis."""
        if self.spec.table == "fsq":
            return fsq.grid(fsq_levels)
        if self.spec.table == "frozen_linear":
            # Gaussian with unit-norm rows in expectation, as SimVQ's reference code.
            return torch.randn(self.codebook_size, self.dim) * self.dim ** -0.5
        if codebook_init == "normal":  # nn.Embedding's, as DAC
            return torch.randn(self.codebook_size, self.dim)
        return torch.rand(self.codebook_size, self.dim) / self.codebook_size

    @property
    def codebook(self) -> torch.Tensor:
        """The ``(K, D)`` codeword table (SimVQ: the learned map of the frozen basis, with gradient)."""
        if self.spec.table == "frozen_linear":
            return self.transform(self.weight)
        return self.weight

    @property
    def quantizing(self) -> bool:
        """Whether training quantizes yet (False during the warm-up before initialisation)."""
        return self.maintenance.quantizing

    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        """This stage's estimator on ``z`` (..., D): :meth:`forward`, by the residual stack's name."""
        return self(z)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """The codewords of ``codes`` (any shape) -> ``(*codes.shape, D)``."""
        return gather(self.codebook, codes)

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Storable codes of ``(N, D)`` latents, by the eval-mode rule (no maintenance)."""
        if self.spec.infer is not None:
            return self.spec.infer(self, z.float()).codes
        return nearest(z, self.codebook, self.lookup)

    def set_total_iters(self, total_iters: Optional[int]) -> None:
        """Set the planned training length: replacement stops ``replace_stop_before_end`` steps
        before it, and the Gumbel temperature anneals over it (unless set explicitly)."""
        schedule = self.maintenance.schedule
        self.maintenance.schedule = dataclasses.replace(schedule, total_iters=total_iters)
        if not self._explicit_anneal and total_iters:
            start, end, _ = self.gumbel_schedule
            self.gumbel_schedule = (start, end, total_iters)

    def gumbel_temperature(self) -> float:
        start, end, steps = self.gumbel_schedule
        return exponential_anneal(self.maintenance.step, start, end, steps)

    def extra_repr(self) -> str:
        return f"{self.codebook_size}, {self.dim}, method={self.method!r}, lookup={self.lookup!r}"

    # ------------------------------------------------------------------ forward
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize ``z`` of shape ``(..., D)``.

        Args:
            z: latents; the last dimension must equal ``dim``.

        Returns:
            :class:`QuantizerOutput` with ``z_q`` shaped like ``z`` and ``codes`` like ``z.shape[:-1]``.
        """
        flat = self._validated(z)
        dtype = flat.dtype
        flat = flat.float()
        if self.training:
            self._begin_step(flat)
            sel = self.spec.train(self, flat) if self.maintenance.quantizing else self._skip(flat)
        else:
            sel = self._infer(flat)
        out = self._finish(flat, sel)
        out.z_q = out.z_q.to(dtype).reshape(z.shape)
        out.codes = out.codes.reshape(z.shape[:-1])
        for name in ("commitment_loss", "codebook_loss"):
            loss = getattr(out, name)
            if loss.dim():
                setattr(out, name, loss.reshape(z.shape[:-1]))
        return out

    def assign(self, z: torch.Tensor) -> QuantizerOutput:
        """Hard assignment with a gradient to the codebook only (``z_q = c``), with the usual
        maintenance in training mode. Used by the joint residual mode, which reparameterises
        the *sum* of stage choices once. SF-DiVeQ's training choice is the nearest dithered
        point on the curve (the authors' residual SF-DiVeQ); in eval it is the nearest codeword."""
        flat = self._validated(z).float()
        if self.training:
            self._begin_step(flat)
        if self.training and not self.maintenance.quantizing:
            sel = self._skip(flat)
        elif self.training and self.spec.space_filling:
            choice = select_segment(flat, self.codebook, self.lookup)
            sel = Selection(dithered_point(self.codebook, choice), choice.nearest_end,
                            usage=choice.usage_counts(self.codebook_size))
        else:
            codes = nearest(flat, self.codebook, self.lookup)
            sel = Selection(gather(self.codebook, codes), codes)
        out = self._finish(flat, sel)
        out.z_q = out.z_q.reshape(z.shape)
        out.codes = out.codes.reshape(z.shape[:-1])
        return out

    def _begin_step(self, z: torch.Tensor) -> None:
        self.maintenance.begin_step(self.weight)
        if self.maintenance.kmeans_pending:
            self.maintenance.kmeans_from_batch(self.weight, z)

    def _skip(self, z: torch.Tensor) -> Selection:
        """The warm-up before initialisation (paper A.5): latents pass through unquantized,
        recent ones are captured for the initial codebook, and their nearest codewords are
        reported as codes."""
        if self.maintenance.capturing():
            self.maintenance.capture_latents(z)
        # The zero term keeps the codebook in the graph, so DDP (which expects a gradient for
        # every parameter) runs without find_unused_parameters.
        return Selection(z + 0.0 * self.codebook.sum(), self.encode(z))

    def _infer(self, z: torch.Tensor) -> Selection:
        if self.spec.space_filling and self.sf_inference == "curve":
            points, codes = project_to_curve(z, self.codebook, self.lookup)
            return Selection(estimators.straight_through(z, points), codes)
        if self.spec.infer is not None:
            return self.spec.infer(self, z)
        codes = nearest(z, self.codebook, self.lookup)
        c = gather(self.codebook, codes)
        return Selection(estimators.straight_through(z, c), codes, c)

    def _finish(self, z: torch.Tensor, sel: Selection) -> QuantizerOutput:
        zero = z.new_zeros(())
        commitment, codebook_loss, aux = zero, zero, zero
        aux_kind = self.spec.aux
        if aux_kind in ("vq", "commitment") and sel.codeword is not None:
            commitment = F.mse_loss(z, sel.codeword.detach(), reduction="none").mean(-1)
            aux = self.commitment_weight * commitment.mean()
            if aux_kind == "vq":
                codebook_loss = F.mse_loss(sel.codeword, z.detach(), reduction="none").mean(-1)
                aux = aux + self.codebook_weight * codebook_loss.mean()
        elif aux_kind == "kl" and sel.logits is not None:
            log_q = sel.logits.log_softmax(-1)
            kl = (log_q.exp() * (log_q + math.log(self.codebook_size))).sum(-1)
            aux = self.kl_weight * kl.mean()

        counts = self.maintenance.record(sel.codes, accumulate=self.training, counts=sel.usage)
        if self.training and self.spec.ema and self.maintenance.quantizing:
            self.maintenance.ema_update(self.weight, z, sel.codes, counts)
        metrics = codebook_stats(counts, z, sel.z_q)
        if self.spec.aux == "kl":
            metrics["temperature"] = torch.full((), self.gumbel_temperature(), device=z.device)
        return QuantizerOutput(sel.z_q, sel.codes, aux, metrics, commitment, codebook_loss)

    def _validated(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(z).__name__}")
        if z.dim() < 1 or z.shape[-1] != self.dim:
            raise ValueError(f"expected latents of shape (..., {self.dim}), got {tuple(z.shape)}")
        if not z.is_floating_point():
            raise TypeError(f"expected floating-point latents, got {z.dtype}")
        if z.numel() == 0:
            raise ValueError(f"empty batch: latents of shape {tuple(z.shape)} hold no vectors")
        check = self.check_finite
        if check is None:
            check = z.device.type == "cpu" or not self.training
        if check and not bool(torch.isfinite(z).all()):
            raise ValueError("latents contain NaN or inf values")
        return z.reshape(-1, self.dim)
