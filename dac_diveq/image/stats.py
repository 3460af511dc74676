"""Codebook statistics of an image model's quantizer on a set of images (usage, perplexity,
index entropy, distortion, distortion per bit), per stage or group."""
from __future__ import annotations

import torch

from ..metrics.codebook import CodebookAccumulator


def new_accumulator(quantizer) -> CodebookAccumulator:
    """An accumulator with one row per stage (residual) or group (product) of ``quantizer``."""
    return CodebookAccumulator(len(quantizer.codebooks()), quantizer.codebook_size)


@torch.no_grad()
def accumulate(stats: CodebookAccumulator, quantizer, z_e: torch.Tensor, codes: torch.Tensor) -> None:
    """Add one batch.

    Args:
        stats: from :func:`new_accumulator`.
        quantizer: the model's :class:`~dac_diveq.image.SpatialQuantizer`.
        z_e: pre-quantization latents ``(B, D, H, W)``.
        codes: ``(B, H, W)`` or ``(B, H, W, n)`` indices of the same batch.
    """
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1]).float()  # (N, D)
    codes = codes.reshape(vectors.shape[0], -1)  # (N, n)
    # Each stage's (group's) chosen codewords, decoded by the stages themselves.
    chosen = [stage.decode(codes[:, i]).detach().float() for i, stage in enumerate(quantizer.stages)]
    product = quantizer.structure == "product"
    parts = vectors.split(vectors.shape[1] // len(chosen), dim=1) if product else None
    residual = vectors  # residual (or single): stage i sees what the stages before it left
    for i, codewords in enumerate(chosen):
        target = parts[i] if product else residual
        # The accumulator's layout is (B, d, T): one "file" of N vectors.
        stats.add(i, codes[:, i][None].cpu(), target.T[None].cpu(), codewords.T[None].cpu())
        if not product:
            residual = residual - codewords
