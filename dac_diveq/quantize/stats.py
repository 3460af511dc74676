"""Per-stage codebook statistics as device tensors (safe to compute every step)."""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def codebook_stats(counts: torch.Tensor, z: torch.Tensor, z_q: torch.Tensor) -> dict[str, torch.Tensor]:
    """Usage, perplexity and distortion of one batch.

    Args:
        counts: ``(K,)`` assignments per codeword in the batch.
        z: ``(N, D)`` latents.
        z_q: ``(N, D)`` quantized latents (their forward value is what the decoder sees).

    Returns:
        dict of scalar tensors: ``usage`` (fraction of codewords used), ``perplexity``
        (exp of the entropy of the code histogram), ``entropy_bits`` and ``distortion``
        (mean squared quantization error per vector).
    """
    probs = counts / counts.sum().clamp_min(1)
    entropy = -(probs * torch.log(probs.clamp_min(1e-30))).sum()
    return {
        "usage": (counts > 0).float().mean(),
        "perplexity": entropy.exp(),
        "entropy_bits": entropy / math.log(2.0),
        "distortion": (z.detach() - z_q.detach()).pow(2).sum(-1).mean(),
    }
