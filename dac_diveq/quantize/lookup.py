"""Nearest-codeword search: the rule that turns a latent into a discrete index.

Two rules are supported:

* ``euclidean`` - argmin of the squared euclidean distance (the DiVeQ paper).
* ``cosine`` - argmax of the cosine similarity between l2-normalised vectors
  (DAC's native rule, ViT-VQGAN). It is evaluated with exactly DAC's
  arithmetic so that codes are bit-identical to ``dac.nn.quantize``.

Search always runs in float32 and without gradient: under bf16 autocast a
half-precision distance matrix would pick wrong neighbours.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOOKUPS = ("euclidean", "cosine")


@torch.no_grad()
def nearest(z: torch.Tensor, codebook: torch.Tensor, rule: str, dac_exact: bool = True) -> torch.Tensor:
    """Index of the nearest codeword for every row of ``z``.

    Args:
        z: latents, shape ``(N, D)``.
        codebook: codewords (or any candidate points), shape ``(M, D)``.
        rule: ``"euclidean"`` or ``"cosine"``.
        dac_exact: for ``cosine``, evaluate DAC's full distance expression (bit-identical codes)
            rather than one matmul + argmax (same neighbour up to rounding ties, fewer passes over
            the ``N x M`` matrix). Paths with no DAC counterpart (SF-DiVeQ's dithered points) pass False.

    Returns:
        int64 tensor of shape ``(N,)`` with values in ``[0, M)``.
    """
    with torch.autocast(device_type="cuda" if z.is_cuda else "cpu", enabled=False):
        z = z.float()
        codebook = codebook.float()
        if rule == "euclidean":
            # ||z||^2 is the same for every candidate, so it does not change the argmin.
            dist = torch.addmm((codebook * codebook).sum(1), z, codebook.t(), alpha=-2.0)
            return dist.argmin(1)
        if rule == "cosine":
            z = F.normalize(z)
            codebook = F.normalize(codebook)
            if not dac_exact:
                return (z @ codebook.t()).argmax(1)
            # Same expression and evaluation order as DAC's decode_latents.
            dist = (
                z.pow(2).sum(1, keepdim=True)
                - 2 * z @ codebook.t()
                + codebook.pow(2).sum(1, keepdim=True).t()
            )
            return (-dist).max(1)[1]
    raise ValueError(f"unknown lookup rule {rule!r}; expected one of {LOOKUPS}")


def similarity_logits(z: torch.Tensor, codebook: torch.Tensor, rule: str) -> torch.Tensor:
    """Differentiable scores (higher = closer) used by soft assignments (Gumbel).

    Args:
        z: latents ``(N, D)``.
        codebook: codewords ``(K, D)``.
        rule: lookup rule.

    Returns:
        ``(N, K)`` float32 logits: negative squared distances (euclidean) or cosine similarities.
        Computed in float32 even under autocast: in bf16 the cross term of offset latents loses
        the digits that separate neighbours, and the soft assignment's argmax goes wrong.
    """
    with torch.autocast(device_type="cuda" if z.is_cuda else "cpu", enabled=False):
        z, codebook = z.float(), codebook.float()
        if rule == "cosine":
            return F.normalize(z) @ F.normalize(codebook).t()
        z2 = (z * z).sum(1, keepdim=True)
        c2 = (codebook * codebook).sum(1)
        return -(z2 - 2 * z @ codebook.t() + c2)


def gather(codebook: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """The codewords of ``codes`` (any shape), ``(*codes.shape, D)``, differentiable in ``codebook``.

    ``F.embedding`` rather than ``codebook[codes]``: on CPU the backward of advanced indexing
    scatter-adds in parallel in no fixed order, so identical steps (and seeded runs) drift apart
    in the last bits; the embedding backward sums each codeword's gradient in a fixed order.
    """
    return F.embedding(codes, codebook)
