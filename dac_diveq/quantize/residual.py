"""Residual and product wrappers around :class:`~dac_diveq.quantize.core.Quantizer` stages."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from . import estimators
from .core import Quantizer, QuantizerOutput
from .lookup import gather

RESIDUAL_MODES = ("stagewise", "stagewise_hard", "joint")
#: Methods whose training output is not the codeword itself (the modes other than stagewise
#: exist to keep that difference out of the later stages' codes).
DIVEQ_METHODS = ("diveq", "diveq_detach")
#: Methods with a joint mode, each the authors' residual variant of the method (their
#: ``ResidualDIVEQ`` / ``ResidualSFDIVEQ``): hard stage choices (SF-DiVeQ: dithered points),
#: one reparameterisation of their sum.
JOINT_METHODS = DIVEQ_METHODS + ("sf_diveq", "sf_diveq_detach")
_NOISELESS = ("diveq_detach", "sf_diveq_detach")


def joint_surrogate(method: str, z: torch.Tensor, target: torch.Tensor, noise_var: float) -> torch.Tensor:
    """One DiVeQ reparameterisation of the summed stage choices ``target`` (the authors' residual
    DiVeQ and SF-DiVeQ both end this way): gradients reach every stage's codewords through
    ``||target - z||``; the detach variants drop the noise."""
    if method in _NOISELESS:
        return estimators.diveq_detach(z, target)
    return estimators.diveq(z, target, noise_var)


def dropout_counts(batch: int, n_stages: int, fraction: float, device: torch.device) -> torch.Tensor:
    """Stages kept per example under quantizer dropout, drawn exactly as DAC draws them.

    A leading ``fraction`` of the batch keeps a random ``1..n_stages`` stages, the rest keep
    all. The draws use the global CPU generator in DAC's order, so a seeded run reproduces
    DAC's own dropout pattern.
    """
    kept = torch.ones((batch,)) * n_stages + 1
    dropout = torch.randint(1, n_stages + 1, (batch,))
    n_dropout = int(batch * fraction)
    kept[:n_dropout] = dropout[:n_dropout]
    return kept.to(device)


def fsq_stage_of(method: str, index: int) -> dict:
    """Residual FSQ scales stage ``index``'s grid by ``levels ** -index`` (the residual FSQ of
    the literature); other methods take no such option."""
    return {"fsq_stage": index} if method == "fsq" else {}


def check_n_quantizers(n_quantizers: Optional[int]) -> None:
    if n_quantizers is not None and (int(n_quantizers) != n_quantizers or n_quantizers < 1):
        raise ConfigError(f"n_quantizers must be a positive integer or None, got {n_quantizers}")


#: The methods each mode other than ``stagewise`` (every method's) applies to.
_MODE_METHODS = {"stagewise_hard": DIVEQ_METHODS, "joint": JOINT_METHODS}


def residual_modes_of(method: str) -> tuple[str, ...]:
    """The residual modes ``method`` can train with."""
    return tuple(mode for mode in RESIDUAL_MODES if method in _MODE_METHODS.get(mode, (method,)))


def check_residual_mode(mode: str, method: str) -> None:
    if mode not in RESIDUAL_MODES:
        raise ConfigError(f"unknown residual_mode {mode!r}; expected one of {RESIDUAL_MODES}")
    if mode not in residual_modes_of(method):
        raise ConfigError(f"residual_mode={mode!r} applies to {_MODE_METHODS[mode]}, not {method!r}")


def with_value_of(surrogate: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, ``surrogate``'s gradient in the backward pass.

    ``stagewise_hard`` passes the next stage the residual left by the *hard* codeword (what
    decoding the stored codes will subtract), so DiVeQ's training noise never changes a later
    stage's code, while the gradient is the stage-wise estimator's.
    """
    return surrogate + (value - surrogate).detach()


class Stage(Protocol):
    """What the residual stack needs of one stage (a core :class:`Quantizer`, or the codec's
    projected DAC stage): quantize a residual, choose hard codes, decode codes to the residual's
    space. Layouts are the stage's own; the stack only subtracts, masks and sums."""

    def quantize(self, residual: torch.Tensor) -> QuantizerOutput: ...

    def assign(self, residual: torch.Tensor) -> QuantizerOutput: ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor: ...

    @property
    def quantizing(self) -> bool: ...

    @property
    def noise_var(self) -> float: ...


@dataclass
class ResidualOutput:
    """What the residual stack returns.

    Attributes:
        z_q: the sum of the kept stages' outputs (joint mode: its one reparameterisation), shaped like the input.
        codes: each used stage's codes.
        commitment_loss, codebook_loss: per stage, the mean over examples of its per-example loss
            (kept examples only; a dropped stage counts 0), summed over stages. Unweighted, as DAC's.
        aux_loss: the stages' own weighted auxiliary losses, summed (Gumbel's KL; the core's VQ terms).
        metrics: each stage's metrics, prefixed ``stage{i}/``.
        latents: each stage's projected input, for stages that project (DAC's ``z_e``); else empty.
    """

    z_q: torch.Tensor
    codes: list[torch.Tensor]
    commitment_loss: torch.Tensor
    codebook_loss: torch.Tensor
    aux_loss: torch.Tensor
    metrics: dict[str, torch.Tensor]
    latents: list[torch.Tensor]


def per_example(loss: Optional[torch.Tensor], batch: int, device: torch.device) -> torch.Tensor:
    """A per-vector loss (leading dimension: examples) -> its mean per example ``(B,)``; none (or a
    scalar 0) -> zeros ``(B,)`` on ``device``."""
    if loss is None or not loss.dim():
        return torch.zeros(batch, device=device)
    return loss.reshape(batch, -1).mean(1)


def residual_pass(stages: Sequence[Stage], z: torch.Tensor, *, method: str, mode: str, training: bool,
                  n_quantizers: Optional[int], dropout: float, vector_dim: int) -> ResidualOutput:
    """The one residual quantization loop of the project (both tracks): stage ``i`` quantizes
    what stages ``< i`` left.

    Args:
        stages: the stages, in order.
        z: latents, examples along dimension 0, vectors along ``vector_dim``.
        method: the stages' estimator (joint mode's surrogate is chosen by it).
        mode: a residual mode (:data:`RESIDUAL_MODES`).
        training: training (every stage runs, quantizer dropout applies) or eval (the first
            ``n_quantizers`` stages run).
        n_quantizers: stages used in eval (None: all).
        dropout: fraction of the batch (leading examples) that keeps a random number of stages
            in training, drawn as DAC draws it (so a seeded run reproduces DAC's pattern); at 0
            nothing is drawn, so the stages' own random draws (DiVeQ's noise) match the authors'.
        vector_dim: the dimension holding the vector components (joint mode reparameterises vectors).

    Returns:
        :class:`ResidualOutput`.
    """
    check_n_quantizers(n_quantizers)
    n_stages, batch = len(stages), z.shape[0]
    kept = dropout_counts(batch, n_stages, dropout, z.device) if training and dropout > 0 else None
    used = n_stages if training or n_quantizers is None else min(n_quantizers, n_stages)
    joint = mode == "joint"
    residual, total = z, torch.zeros_like(z)
    commitment = codebook = aux = torch.zeros((), device=z.device)  # float32 under autocast too
    codes, latents, metrics = [], [], {}
    for i, stage in enumerate(stages[:used]):
        out = stage.assign(residual) if joint else stage.quantize(residual)
        if joint:
            residual = residual - out.z_q.detach()
        elif mode == "stagewise_hard" and training and stage.quantizing:
            with torch.no_grad():  # its value only: with_value_of detaches it
                hard = stage.decode(out.codes)
            residual = residual - with_value_of(out.z_q, hard)
        else:
            residual = residual - out.z_q
        if kept is None:  # every example keeps every stage
            total = total + out.z_q
            commitment = commitment + per_example(out.commitment_loss, batch, z.device).mean()
            codebook = codebook + per_example(out.codebook_loss, batch, z.device).mean()
        else:
            mask = (kept > i).to(z.dtype)
            total = total + out.z_q * mask.reshape(-1, *([1] * (z.dim() - 1)))
            commitment = commitment + (per_example(out.commitment_loss, batch, z.device) * mask).mean()
            codebook = codebook + (per_example(out.codebook_loss, batch, z.device) * mask).mean()
        aux = aux + out.aux_loss
        codes.append(out.codes)
        if out.latents is not None:
            latents.append(out.latents)
        metrics.update({f"stage{i}/{k}": v for k, v in out.metrics.items()})
    if joint:
        zt, qt = z.movedim(vector_dim, -1), total.movedim(vector_dim, -1)
        if training:
            total = joint_surrogate(method, zt, qt, stages[0].noise_var).movedim(-1, vector_dim)
            # The stages' input projections only select codes here; the zero term keeps them in
            # the graph so DDP runs without find_unused_parameters.
            total = total + 0.0 * sum(latent.sum() for latent in latents)
        else:
            total = estimators.straight_through(zt, qt).movedim(-1, vector_dim)
    return ResidualOutput(total, codes, commitment, codebook, aux, metrics, latents)


class ResidualQuantizer(nn.Module):
    """Residual VQ on ``(..., D)`` tensors (:func:`residual_pass` over core stages).

    Args:
        n_quantizers: number of stages.
        codebook_size: codewords per stage.
        dim: vector dimension D.
        method: estimator of every stage.
        residual_mode: ``"stagewise"`` (each stage applies its estimator to its residual),
            ``"stagewise_hard"`` (DiVeQ only: the same, with the residual chain valued at the
            hard codewords) or ``"joint"`` (DiVeQ and SF-DiVeQ: hard stage choices, one
            reparameterisation of their sum).
        quantizer_dropout: fraction of each batch (leading dimension) that uses a random
            number of stages in training, as DAC.
        **options: forwarded to every :class:`Quantizer`.
    """

    def __init__(self, n_quantizers: int, codebook_size: int, dim: int, method: str = "diveq",
                 residual_mode: str = "stagewise", quantizer_dropout: float = 0.0, **options) -> None:
        super().__init__()
        check_residual_mode(residual_mode, method)
        if n_quantizers < 1:
            raise ConfigError(f"n_quantizers must be >= 1, got {n_quantizers}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ConfigError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.method = method
        self.residual_mode = residual_mode
        self.quantizer_dropout = quantizer_dropout
        seed = options.pop("seed", 0)
        self.stages = nn.ModuleList(
            Quantizer(codebook_size, dim, method, seed=seed + i, **fsq_stage_of(method, i), **options)
            for i in range(n_quantizers)
        )

    def forward(self, z: torch.Tensor, n_quantizers: Optional[int] = None) -> QuantizerOutput:
        """Quantize ``z`` (..., D) with all stages (or the first ``n_quantizers`` in eval).

        Returns:
            :class:`QuantizerOutput` with ``codes`` of shape ``(..., n_stages_used)``, the stages'
            summed auxiliary losses and metrics prefixed ``stage{i}/``.
        """
        out = residual_pass(list(self.stages), z, method=self.method, mode=self.residual_mode,
                            training=self.training, n_quantizers=n_quantizers,
                            dropout=self.quantizer_dropout, vector_dim=-1)
        return QuantizerOutput(out.z_q, torch.stack(out.codes, -1), out.aux_loss, out.metrics)

    def decode_stages(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's codewords of ``codes`` (..., n), for the first n stages."""
        return [stage.decode(codes[..., i]) for i, stage in enumerate(self.stages[: codes.shape[-1]])]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the codewords of ``codes`` (..., n) for the first n stages."""
        return sum(self.decode_stages(codes))


class ProductQuantizer(nn.Module):
    """Product VQ: split D into ``n_groups`` equal parts, each quantized by its own stage.

    Args:
        n_groups: number of groups G (must divide ``dim``).
        codebook_size: codewords per group.
        dim: full vector dimension D.
        method: estimator of every group.
        **options: forwarded to every :class:`Quantizer`.
    """

    def __init__(self, n_groups: int, codebook_size: int, dim: int, method: str = "diveq", **options) -> None:
        super().__init__()
        if n_groups < 1 or dim % n_groups:
            raise ConfigError(f"n_groups={n_groups} must be >= 1 and divide dim={dim}")
        self.group_dim = dim // n_groups
        seed = options.pop("seed", 0)
        self.groups = nn.ModuleList(
            Quantizer(codebook_size, self.group_dim, method, seed=seed + i, **options) for i in range(n_groups)
        )

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Returns a :class:`QuantizerOutput` with ``codes`` of shape ``(..., G)``."""
        if z.shape[-1] != self.group_dim * len(self.groups):
            raise ValueError(f"expected latents of shape (..., {self.group_dim * len(self.groups)}), "
                             f"got {tuple(z.shape)}")
        outs = [g(part) for g, part in zip(self.groups, z.split(self.group_dim, dim=-1))]
        metrics = {f"group{i}/{k}": v for i, o in enumerate(outs) for k, v in o.metrics.items()}
        return QuantizerOutput(
            torch.cat([o.z_q for o in outs], -1),
            torch.stack([o.codes for o in outs], -1),
            sum(o.aux_loss for o in outs),
            metrics,
        )

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([gather(g.codebook, codes[..., i]) for i, g in enumerate(self.groups)], -1)
