"""Adversarial-loss helpers for training :class:`~dac_diveq.image.VQGAN` with a discriminator."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss ``(mean relu(1 - real) + mean relu(1 + fake)) / 2``."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def generator_adv_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator loss ``-mean(logits_fake)``: push the discriminator's score of reconstructions up."""
    return -logits_fake.mean()


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4, eps: float = 1e-4) -> torch.Tensor:
    """Weight that balances the adversarial loss against the reconstruction loss (Esser et al. 2021).

    ``||grad_last rec_loss|| / (||grad_last g_loss|| + eps)``, clamped to ``[0, max_weight]`` and
    detached, where ``last`` is the decoder's output layer: both losses then move that layer by
    gradients of the same size.

    Args:
        rec_loss: scalar reconstruction (+ perceptual) loss, still in the graph.
        g_loss: scalar generator adversarial loss, still in the graph.
        last_layer: the parameter both gradients are measured at (``VQGAN.last_layer``).
        max_weight: upper clamp.
        eps: keeps the ratio finite when the adversarial gradient vanishes.

    Returns:
        Scalar tensor without gradient.
    """
    # retain_graph: the caller still backpropagates the total loss through the same graph.
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = torch.linalg.vector_norm(rec_grad) / (torch.linalg.vector_norm(g_grad) + eps)
    return weight.clamp(0.0, max_weight).detach()
