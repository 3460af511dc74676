"""SF-DiVeQ (paper section 3.2): quantization onto the curve through consecutive codewords.

The codebook ``c_0..c_{K-1}`` is read as a polyline. Each training batch draws
fresh dithers ``lambda_j ~ U(0, 1)`` and quantizes to the nearest *dithered*
point ``(1 - lambda_j) c_j + lambda_j c_{j+1}`` (this file's
:func:`dither_codebook` is where the dithering happens); the reparameterised
output then lands on the segment ``[c_i, c_{i+1}]``. Inference maps to the
nearest codeword (a storable index); projecting onto the curve is offered as a
research option by :func:`project_to_curve`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .estimators import EPS, _norm
from .lookup import gather, nearest


@dataclass
class SegmentChoice:
    """Which dithered point was selected for each latent.

    Attributes:
        index: ``(N,)`` segment start ``i`` (the segment is ``[c_i, c_{i+1}]``).
        lam: ``(N, 1)`` the dither of that segment.
    """

    index: torch.Tensor
    lam: torch.Tensor

    @property
    def nearest_end(self) -> torch.Tensor:
        """The codeword of the segment closer to the dithered point (a storable code)."""
        return self.index + (self.lam.squeeze(-1) > 0.5).long()

    def usage_counts(self, codebook_size: int) -> torch.Tensor:
        """``(K,)`` how much each codeword is used by the selected segments: both ends of every
        segment count, weighted ``(1 - lam, lam)`` as in the surrogate, so each latent adds 1 in
        all. Counting only :attr:`nearest_end` would miss codeword ``j`` whenever it is the far end
        of every segment that uses it, and training usage could never reach 100%."""
        weights = torch.cat([1 - self.lam, self.lam], dim=1).reshape(-1).float()
        ends = torch.stack([self.index, self.index + 1], dim=1).reshape(-1)
        return torch.zeros(codebook_size, device=weights.device).index_add_(0, ends, weights)


def dither_codebook(codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``lambda ~ U(0,1)^(K-1)`` and return the dithered points and the dithers.

    Args:
        codebook: ``(K, D)`` codewords, ``K >= 2``.

    Returns:
        ``(points, lam)`` of shapes ``(K-1, D)`` and ``(K-1, 1)``.
    """
    lam = torch.rand(codebook.shape[0] - 1, 1, device=codebook.device, dtype=codebook.dtype)
    start, end = codebook[:-1], codebook[1:]
    return start + lam * (end - start), lam


def select_segment(z: torch.Tensor, codebook: torch.Tensor, rule: str) -> SegmentChoice:
    """Dither the codebook and pick the nearest dithered point for every latent."""
    with torch.no_grad():
        points, lam = dither_codebook(codebook.detach())
        index = nearest(z, points, rule, dac_exact=False)
    return SegmentChoice(index=index, lam=lam[index])


def dithered_point(codebook: torch.Tensor, choice: SegmentChoice) -> torch.Tensor:
    """``(N, D)`` the selected dithered points ``(1 - lam) c_i + lam c_{i+1}``, differentiable in the
    codebook: the hard choice of a stage in the authors' residual SF-DiVeQ (joint residual mode)."""
    start, end = gather(codebook, choice.index), gather(codebook, choice.index + 1)
    return start + choice.lam * (end - start)


def _segment_ends(z: torch.Tensor, codebook: torch.Tensor, choice: SegmentChoice
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Errors to both ends ``d_j = c_j - z`` as ``(N, 2, D)`` and their weights ``(1-lam, lam)`` ``(N, 2, 1)``."""
    ends = gather(codebook, torch.stack([choice.index, choice.index + 1], dim=1))
    weights = torch.cat([1 - choice.lam, choice.lam], dim=1).unsqueeze(-1)
    return ends - z.unsqueeze(1), weights


def sf_diveq(z: torch.Tensor, codebook: torch.Tensor, choice: SegmentChoice, noise_var: float
             ) -> torch.Tensor:
    """SF-DiVeQ surrogate (paper eq. 12).

    ``z_q = z + ||c_i - z|| sg[(1-lam) v_i/||v_i||] + ||c_{i+1} - z|| sg[lam v_{i+1}/||v_{i+1}||]``
    with ``v_j = (c_j - z) + v``, ``v ~ N(0, noise_var I)`` drawn independently per term.
    """
    d, weights = _segment_ends(z, codebook, choice)
    # Drawn as (2, N, D): all of the first term's noise, then the second's.
    noise = torch.randn(2, *z.shape, device=z.device, dtype=z.dtype).transpose(0, 1)
    v_d = d.detach() + math.sqrt(noise_var) * noise
    direction = weights * v_d / _norm(v_d).clamp_min(EPS)
    return z + (_norm(d) * direction).sum(1)


def sf_diveq_detach(z: torch.Tensor, codebook: torch.Tensor, choice: SegmentChoice) -> torch.Tensor:
    """SF-DiVeQ-detach (paper eq. 16, second line): the noiseless version of :func:`sf_diveq`.

    The forward value is exactly the dithered point ``(1-lam) c_i + lam c_{i+1}``.
    """
    d, weights = _segment_ends(z, codebook, choice)
    d_norm = _norm(d)
    direction = weights * d.detach() / d_norm.detach().clamp_min(EPS)
    return z + (d_norm * direction).sum(1)


@torch.no_grad()
def project_to_curve(z: torch.Tensor, codebook: torch.Tensor, rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Research option: nearest point on the polyline through the codewords.

    The result is continuous and cannot be stored as a code index alone, which
    is why it is never the default inference of a codec.

    Args:
        z: ``(N, D)`` latents.
        codebook: ``(K, D)``.
        rule: lookup rule used to find the nearest codeword.

    Returns:
        ``(points, codes)``: projections ``(N, D)`` and the nearest codeword indices.
    """
    codes = nearest(z, codebook, rule)
    k = codebook.shape[0]
    best, best_dist = None, None
    for offset in (-1, 0):  # segments [c_{i-1}, c_i] and [c_i, c_{i+1}]
        start_idx = (codes + offset).clamp(0, k - 2)
        a, b = codebook[start_idx], codebook[start_idx + 1]
        ab = b - a
        t = ((z - a) * ab).sum(-1, keepdim=True) / (ab * ab).sum(-1, keepdim=True).clamp_min(EPS)
        p = a + t.clamp(0, 1) * ab
        dist = ((z - p) ** 2).sum(-1)
        if best is None:
            best, best_dist = p, dist
        else:
            closer = (dist < best_dist).unsqueeze(-1)
            best = torch.where(closer, p, best)
            best_dist = torch.minimum(dist, best_dist)
    return best, codes
