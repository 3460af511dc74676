"""Gradient surrogates: how a hard codeword choice is made differentiable.

Every function here is pure: it takes the latents ``z`` and the selected
codewords ``c`` (both ``(N, D)``, ``c`` gathered from the codebook *with*
gradient) and returns ``z_q`` whose forward value is (close to) ``c`` and whose
backward pass defines the method. ``sg[.]`` in the docstrings is ``.detach()``.
The space-filling variants live in :mod:`dac_diveq.quantize.space_filling`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Guards divisions by a vector norm; only matters when z sits exactly on c.
EPS = 1e-12


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def straight_through(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """STE (van den Oord et al. 2017): ``z_q = z + sg[c - z]``; gradient copied to ``z``."""
    return z + (c - z).detach()


def rotation(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Rotation trick (Fifty et al. 2025): ``z_q = sg[rho R] z``.

    ``R = I - 2 r r^T + 2 c_hat z_hat^T`` rotates ``z_hat`` onto ``c_hat`` with
    ``r = (z_hat + c_hat) / ||z_hat + c_hat||`` and ``rho = ||c|| / ||z||``.
    Applied without forming ``R``: ``R z = z - 2 r (r.z) + 2 c_hat (z_hat.z)``.
    """
    with torch.no_grad():
        z_norm = _norm(z).clamp_min(EPS)
        c_norm = _norm(c).clamp_min(EPS)
        z_hat = z / z_norm
        c_hat = c / c_norm
        r = F.normalize(z_hat + c_hat, dim=-1, eps=EPS)
        scale = c_norm / z_norm
    rz = z - 2 * r * (r * z).sum(-1, keepdim=True) + 2 * c_hat * (z_hat * z).sum(-1, keepdim=True)
    return scale * rz


def nsvq(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """NSVQ (Vali & Bäckström 2022): ``z_q = z + ||z - c|| v / ||v||`` with ``v ~ N(0, I)``.

    The forward value is a random point at the quantization-error distance, so
    it does not equal ``c``; gradients reach ``c`` through the error norm.
    """
    v = torch.randn_like(z)
    return z + _norm(c - z) * (v / _norm(v).clamp_min(EPS))


def diveq(z: torch.Tensor, c: torch.Tensor, noise_var: float) -> torch.Tensor:
    """DiVeQ (paper eq. 8): ``z_q = z + ||d|| sg[v_d / ||v_d||]``, ``d = c - z``.

    ``v_d = d + v`` with ``v ~ N(0, noise_var * I)``: ``noise_var`` is the
    *variance* sigma^2 (the authors' package passes it as a standard deviation).
    The output lies on the sphere of radius ``||d||`` around ``z``, pointing to
    ``c`` up to the directional noise; it tends to :func:`diveq_detach` as
    ``noise_var -> 0``.
    """
    d = c - z
    v_d = d.detach() + math.sqrt(noise_var) * torch.randn_like(z)
    return z + _norm(d) * (v_d / _norm(v_d).clamp_min(EPS))


def diveq_detach(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """DiVeQ-detach (paper eq. 16): ``z_q = z + ||d|| sg[d / ||d||]``.

    Forward value is exactly ``c`` up to rounding. With ``u = d/||d||`` and
    ``g = dL/dz_q``: ``dL/dz = g - u (u.g)`` and ``dL/dc = u (u.g)``.
    """
    d = c - z
    d_norm = _norm(d)
    return z + d_norm * (d.detach() / d_norm.detach().clamp_min(EPS))


def gumbel_softmax(logits: torch.Tensor, codebook: torch.Tensor, temperature: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through Gumbel-softmax selection over ``logits``.

    Args:
        logits: ``(N, K)`` scores, higher = closer.
        codebook: ``(K, D)`` codewords.
        temperature: softmax temperature tau > 0.

    Returns:
        ``(z_q, codes)``: the hard one-hot choice in the forward pass (so
        ``z_q`` equals a codeword) with the soft relaxation's gradient.
    """
    gumbels = -torch.empty_like(logits).exponential_().log()
    soft = ((logits + gumbels) / temperature).softmax(-1)
    codes = soft.argmax(-1)
    hard = F.one_hot(codes, logits.shape[-1]).to(soft.dtype)
    weights = hard - soft.detach() + soft
    return weights @ codebook, codes
