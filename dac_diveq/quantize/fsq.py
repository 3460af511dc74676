"""Finite scalar quantization (FSQ, Mentzer et al., ICLR 2024): pure functions.

Each of the ``D`` dimensions is squashed into a bounded range and rounded to one of ``L_d``
levels; the implicit codebook is the grid of all level combinations, ``prod(L_d)`` codewords,
and an index is the mixed-radix number whose digits are the per-dimension levels. Nothing is
learned: the encoder learns to use the grid.

Values are *normalised* codes: level ``q`` of dimension ``d`` (``q`` an integer in
``[-(L_d // 2), (L_d - 1) - L_d // 2]``) is stored as ``q / (L_d // 2)``, in ``[-1, 1]``,
as in the paper's reference code.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import ConfigError

#: The paper's margin that keeps ``tanh`` off the outermost rounding boundaries.
BOUND_EPS = 1e-3


def check_levels(levels: Sequence[int], codebook_size: int, dim: int) -> tuple[int, ...]:
    """Validate ``fsq_levels`` against a stage's size.

    Args:
        levels: levels per dimension, e.g. ``[8, 5, 5, 5]``.
        codebook_size: the stage's K, which must be ``prod(levels)``.
        dim: the stage's D, which must be ``len(levels)``.

    Returns:
        the levels as a tuple of ints.

    Raises:
        ConfigError: levels missing, below 3, or not matching ``codebook_size``/``dim`` (one line).
    """
    if not levels:
        raise ConfigError("method 'fsq' needs fsq_levels, e.g. [8, 5, 5, 5]")
    levels = tuple(int(level) for level in levels)
    # L = 2 puts both levels on one side of the bound's symmetric range (the paper uses L >= 3).
    if min(levels) < 3:
        raise ConfigError(f"fsq_levels must all be >= 3, got {list(levels)}")
    if len(levels) != dim or math.prod(levels) != codebook_size:
        raise ConfigError(f"fsq_levels {list(levels)} need codebook_dim {len(levels)} and codebook_size "
                         f"{math.prod(levels)}, got {dim} and {codebook_size}")
    return levels


def levels_for_bits(bits: int) -> tuple[int, ...]:
    """FSQ levels whose grid has exactly ``2 ** bits`` codewords, for comparisons at equal bits per
    code with a codebook of ``2 ** bits`` entries.

    Levels are 8 (3 bits) and 4 (2 bits), as many 8s as the parity allows: the paper's recommended
    grids use 5-8 levels per dimension, and only powers of two give a whole number of bits
    (e.g. 4 -> [4, 4], 6 -> [8, 8], 8 -> [8, 8, 4], 10 -> [8, 8, 4, 4]).

    Raises:
        ConfigError: ``bits`` below 2 (a grid needs at least 3 levels per dimension).
    """
    if bits < 2:
        raise ConfigError(f"FSQ needs at least 2 bits per code (4 levels), got {bits}")
    eights = bits // 3 if (bits % 3) % 2 == 0 else bits // 3 - 1
    return (8,) * eights + (4,) * ((bits - 3 * eights) // 2)


def _half_width(levels: torch.Tensor) -> torch.Tensor:
    return torch.div(levels, 2, rounding_mode="floor")


def _basis(levels: torch.Tensor) -> torch.Tensor:
    """Place values of the mixed-radix index: the first dimension is the least significant digit."""
    return torch.cat([levels.new_ones(1), levels[:-1]]).cumprod(0)


def bound(z: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Squash ``z`` so that rounding yields exactly ``L_d`` integer levels per dimension.

    Even ``L`` needs an offset of one half (its levels are not symmetric about 0); the shift by
    ``atanh(offset / half)`` keeps ``z = 0`` mapping to level 0.
    """
    half = (levels - 1) * (1 + BOUND_EPS) / 2
    offset = torch.where(levels % 2 == 0, 0.5, 0.0).to(z.dtype)
    shift = torch.atanh(offset / half)
    return torch.tanh(z + shift) * half - offset


def quantize(z: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Round bounded latents to the grid with the straight-through gradient.

    Args:
        z: ``(N, D)`` latents.
        levels: ``(D,)`` int64 levels.

    Returns:
        ``(z_q, codes)``: normalised grid values ``(N, D)`` whose gradient is that of the bound
        (rounding copied through), and their ``(N,)`` int64 indices.
    """
    bounded = bound(z, levels)
    rounded = bounded + (bounded.round() - bounded).detach()
    half_width = _half_width(levels)
    digits = rounded.detach().round().long() + half_width
    codes = (digits * _basis(levels)).sum(-1)
    return rounded / half_width, codes


def indices_to_codes(codes: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Normalised grid values of ``codes``: ``(...,)`` int64 -> ``(..., D)`` float."""
    digits = torch.div(codes.unsqueeze(-1), _basis(levels), rounding_mode="floor") % levels
    half_width = _half_width(levels)
    return (digits - half_width).float() / half_width


def grid(levels: Sequence[int]) -> torch.Tensor:
    """The implicit codebook: ``(prod(levels), D)`` normalised values, row ``k`` = index ``k``."""
    levels_t = torch.tensor(levels, dtype=torch.long)
    return indices_to_codes(torch.arange(math.prod(levels)), levels_t)
