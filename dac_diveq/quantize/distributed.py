"""Collective helpers that are no-ops outside ``torch.distributed``.

Codebook maintenance must reach the same decision on every rank: statistics are
summed with :func:`all_reduce_sum_` and every randomised decision is taken on
rank 0 and shipped with :func:`broadcast_`.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place and return it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` with rank ``src``'s value in place and return it."""
    if is_distributed():
        dist.broadcast(tensor, src=src)
    return tensor


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``(n_r, D)`` rows in rank order (``n_r`` may differ)."""
    if not is_distributed():
        return rows
    count = torch.tensor([rows.shape[0]], device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    sizes = [int(c) for c in counts]  # called on initialisation steps only
    padded = rows.new_zeros(max(sizes), rows.shape[1])
    padded[: rows.shape[0]] = rows
    gathered = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)])
