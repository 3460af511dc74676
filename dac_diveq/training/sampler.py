"""The data order of a training run as a function of the step, so that a resumed run replays it."""
from __future__ import annotations

from typing import Iterator

import torch


class StepSampler(torch.utils.data.Sampler):
    """Indices ``start, start + 1, ...``, strided over ranks.

    The datasets the trainers use make item ``i`` a deterministic function of ``i`` (audiotools'
    ``AudioDataset`` seeds its excerpt with the index, the image datasets crop with it), so
    resuming at step ``s`` with ``start = s * batch_size`` replays exactly the data an
    uninterrupted run would see.

    Args:
        start: first index of this process (in units of per-rank items).
        rank, world_size: this process's position; rank ``r`` takes every ``world_size``-th index.
        length: end of the (practically endless) index range.
    """

    def __init__(self, start: int = 0, rank: int = 0, world_size: int = 1, length: int = 2 ** 62) -> None:
        self.start, self.rank, self.world_size, self.length = start, rank, world_size, length

    def __iter__(self) -> Iterator[int]:
        index = self.start * self.world_size + self.rank
        while index < self.length:
            yield index
            index += self.world_size

    def __len__(self) -> int:
        return max(0, (self.length - self.start * self.world_size) // self.world_size)
