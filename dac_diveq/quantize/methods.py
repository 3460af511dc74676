"""The registry of quantization methods (paper Table 1), one small function each.

A method's training forward maps latents ``(N, D)`` to a :class:`Selection`
using the stage's codebook and lookup rule; everything else (inference, losses,
metrics, maintenance) is shared by :class:`~dac_diveq.quantize.core.Quantizer`.
Register a new method with ``@register(name, ...)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import torch

from ..errors import ConfigError
from . import estimators, fsq, space_filling
from .lookup import gather, nearest, similarity_logits

if TYPE_CHECKING:  # pragma: no cover
    from .core import Quantizer


@dataclass
class Selection:
    """Result of a method's training forward on flat latents.

    Attributes:
        z_q: ``(N, D)`` differentiable quantized latents.
        codes: ``(N,)`` int64 codeword indices.
        codeword: ``(N, D)`` selected codewords gathered with gradient (for VQ losses),
            or None when the method has no codeword loss.
        logits: ``(N, K)`` soft-assignment scores when the method has them (Gumbel).
        usage: ``(K,)`` how much each codeword was used, when that is not simply the histogram
            of ``codes`` (SF-DiVeQ: both ends of each selected segment).
    """

    z_q: torch.Tensor
    codes: torch.Tensor
    codeword: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    usage: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class MethodSpec:
    """How a method trains.

    Attributes:
        name: registry key.
        train: ``(stage, z) -> Selection`` training forward.
        aux: auxiliary loss: ``"vq"`` (codebook + commitment), ``"commitment"``,
            ``"kl"`` (to the uniform assignment) or ``"none"``.
        replacement: whether dead-codeword replacement applies (off for SF-DiVeQ).
        space_filling: SF-DiVeQ family (skip-and-initialise by default, curve inference option).
        ema: codebook learned by EMA, not by gradients.
        table: what ``Quantizer.weight`` holds: ``"learned"`` (the codewords), ``"fsq"`` (FSQ's
            fixed grid, no parameters) or ``"frozen_linear"`` (SimVQ's frozen random basis,
            mapped to the codewords by a learned linear layer).
        infer: eval-mode hard quantization ``(stage, z) -> Selection`` when it is not the
            nearest codeword of the table (FSQ rounds per dimension).
    """

    name: str
    train: Callable[["Quantizer", torch.Tensor], Selection]
    aux: str = "none"
    replacement: bool = True
    space_filling: bool = False
    ema: bool = False
    table: str = "learned"
    infer: Optional[Callable[["Quantizer", torch.Tensor], Selection]] = None


#: What ``Quantizer.weight`` can hold (see :attr:`MethodSpec.table`).
TABLES = ("learned", "fsq", "frozen_linear")


REGISTRY: dict[str, MethodSpec] = {}


def register(name: str, **spec) -> Callable:
    """Decorator registering a training forward under ``name``."""

    if spec.get("table", "learned") not in TABLES:  # a programming error: the Quantizer builds these only
        raise ValueError(f"table must be one of {TABLES}, got {spec['table']!r}")

    def wrap(fn: Callable[["Quantizer", torch.Tensor], Selection]) -> Callable:
        REGISTRY[name] = MethodSpec(name=name, train=fn, **spec)
        return fn

    return wrap


def get_method(name: str) -> MethodSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown quantization method {name!r}; expected one of {tuple(REGISTRY)}") from None


def _hard(stage: "Quantizer", z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    codes = nearest(z, stage.codebook, stage.lookup)
    return codes, gather(stage.codebook, codes)


@register("ste", aux="vq")
def _ste(stage: "Quantizer", z: torch.Tensor) -> Selection:
    codes, c = _hard(stage, z)
    return Selection(estimators.straight_through(z, c), codes, c)


@register("ema", aux="commitment", ema=True)
def _ema(stage: "Quantizer", z: torch.Tensor) -> Selection:
    codes, c = _hard(stage, z)
    return Selection(estimators.straight_through(z, c), codes, c)


@register("rotation", aux="vq")
def _rotation(stage: "Quantizer", z: torch.Tensor) -> Selection:
    codes, c = _hard(stage, z)
    return Selection(estimators.rotation(z, c), codes, c)


@register("gumbel", aux="kl")
def _gumbel(stage: "Quantizer", z: torch.Tensor) -> Selection:
    logits = similarity_logits(z, stage.codebook, stage.lookup)
    z_q, codes = estimators.gumbel_softmax(logits, stage.codebook, stage.gumbel_temperature())
    return Selection(z_q, codes, logits=logits)


@register("nsvq")
def _nsvq(stage: "Quantizer", z: torch.Tensor) -> Selection:
    codes, c = _hard(stage, z)
    return Selection(estimators.nsvq(z, c), codes)


@register("diveq")
def _diveq(stage: "Quantizer", z: torch.Tensor) -> Selection:
    codes, c = _hard(stage, z)
    return Selection(estimators.diveq(z, c, stage.noise_var), codes)


@register("diveq_detach")
def _diveq_detach(stage: "Quantizer", z: torch.Tensor) -> Selection:
    codes, c = _hard(stage, z)
    return Selection(estimators.diveq_detach(z, c), codes)


def _space_filling(surrogate: Callable) -> Callable:
    def train(stage: "Quantizer", z: torch.Tensor) -> Selection:
        choice = space_filling.select_segment(z, stage.codebook, stage.lookup)
        return Selection(surrogate(stage, z, choice), choice.nearest_end,
                         usage=choice.usage_counts(stage.codebook_size))

    return train


register("sf_diveq", replacement=False, space_filling=True)(
    _space_filling(lambda s, z, ch: space_filling.sf_diveq(z, s.codebook, ch, s.noise_var))
)
register("sf_diveq_detach", replacement=False, space_filling=True)(
    _space_filling(lambda s, z, ch: space_filling.sf_diveq_detach(z, s.codebook, ch))
)

METHODS: tuple[str, ...] = tuple(REGISTRY)
"""The methods of the DiVeQ paper's Table 1, in its order (every method with a learned table)."""


def _fsq(stage: "Quantizer", z: torch.Tensor) -> Selection:
    """FSQ: bounded per-dimension rounding, straight-through; the same rule in eval. A residual
    stage ``i`` rounds on the grid scaled by ``levels ** -i`` (its ``fsq_scale``)."""
    z_q, codes = fsq.quantize(z / stage.fsq_scale, stage.fsq_levels)
    return Selection(z_q * stage.fsq_scale, codes)


# No codebook to learn, so no replacement and no auxiliary loss (the paper has none).
register("fsq", replacement=False, table="fsq", infer=_fsq)(_fsq)


@register("simvq", aux="vq", replacement=False, table="frozen_linear")
def _simvq(stage: "Quantizer", z: torch.Tensor) -> Selection:
    """SimVQ (Zhu et al.): nearest codeword of ``W(C)`` (``C`` frozen), straight-through, with
    the VQ-VAE losses, whose codebook term trains ``W`` (the paper's loss)."""
    codes, c = _hard(stage, z)
    return Selection(estimators.straight_through(z, c), codes, c)


BASELINES: tuple[str, ...] = tuple(name for name in REGISTRY if name not in METHODS)
"""Methods the paper does not compare with that codec work does (FSQ, SimVQ); they are not in
:data:`METHODS`, whose every member shares one constructor (FSQ's size comes from its levels)."""
ALL_METHODS: tuple[str, ...] = tuple(REGISTRY)


def exponential_anneal(step: int, start: float, end: float, steps: int) -> float:
    """``start -> end`` geometrically over ``steps`` steps, then constant."""
    frac = min(max(step, 0) / max(steps, 1), 1.0)
    return start * math.exp(frac * math.log(end / start))
