"""Drop-in replacements for ``dac.nn.quantize.VectorQuantize`` / ``ResidualVectorQuantize``.

Same constructor arguments, forward tuples, ``from_codes`` / ``from_latents`` and
parameter names as DAC (``in_proj``, ``out_proj``, ``codebook.weight``), so state dicts
load in both directions; ``method`` and its options select the estimator. Here the
``codebook`` attribute is our :class:`~dac_diveq.quantize.core.Quantizer` stage, whose
``weight`` is DAC's embedding table. Maintenance state is extra state a stock DAC ignores
(``strict=False``, as ``dac.model.DAC.load`` loads).

These classes only adapt shapes (``B x D x T`` <-> ``(B*T) x D``); the quantization is the core's.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from dac.nn.layers import WNConv1d
from torch import nn

from ..errors import ConfigError
from ..quantize.core import Quantizer, QuantizerOutput
from ..quantize.residual import check_residual_mode, per_example, residual_pass


class VectorQuantize(nn.Module):
    """One DAC quantizer stage: project to ``codebook_dim``, quantize, project back.

    Args:
        input_dim: channels of the input ``B x input_dim x T``.
        codebook_size: codewords K.
        codebook_dim: dimension of the factorised codes.
        method: estimator (default ``"ste"``, which with ``lookup="cosine"`` is DAC itself).
        lookup: ``"cosine"`` (DAC's native rule, default) or ``"euclidean"``.
        **options: further :class:`Quantizer` options (``noise_var``, ``replace_every``, ...).
    """

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int, method: str = "ste",
                 lookup: str = "cosine", **options) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim
        self.in_proj = WNConv1d(input_dim, codebook_dim, kernel_size=1)
        self.out_proj = WNConv1d(codebook_dim, input_dim, kernel_size=1)
        self.codebook = Quantizer(codebook_size, codebook_dim, method, lookup=lookup, **options)
        self.metrics: dict[str, torch.Tensor] = {}
        self.aux_loss: Union[torch.Tensor, float] = 0  # Gumbel's KL of the last forward

    def forward(self, z: torch.Tensor):
        """DAC's tuple: ``(z_q, commitment_loss (B,), codebook_loss (B,), indices (B, T), z_e)``."""
        out = self.quantize(z)
        batch = z.shape[0]
        return (out.z_q, per_example(out.commitment_loss, batch, z.device),
                per_example(out.codebook_loss, batch, z.device),
                out.codes, out.latents)

    # The residual stack's stage interface (quantize.residual.Stage), in DAC's B x D x T layout.
    def quantize(self, z: torch.Tensor) -> QuantizerOutput:
        """The estimator on ``in_proj(z)``, projected back: ``z_q`` B x D x T, codes and per-vector
        losses B x T, ``latents`` = DAC's ``z_e``; the auxiliary loss is Gumbel's KL only (DAC weighs
        the commitment and codebook terms itself)."""
        z_e = self.in_proj(z)
        return self._projected(z_e, self.codebook(z_e.transpose(1, 2)))

    def assign(self, z: torch.Tensor) -> QuantizerOutput:
        """Hard choice for joint mode (no commitment or codebook terms); the gradient reaches the
        codebook and ``out_proj`` only."""
        z_e = self.in_proj(z)
        out = self._projected(z_e, self.codebook.assign(z_e.transpose(1, 2)))
        out.commitment_loss = out.codebook_loss = None
        return out

    def _projected(self, z_e: torch.Tensor, out: QuantizerOutput) -> QuantizerOutput:
        """The core's output on ``z_e`` (B x d x T) in DAC's layout, back through ``out_proj``."""
        aux = out.aux_loss if self.codebook.spec.aux == "kl" else out.aux_loss.new_zeros(())
        self.metrics, self.aux_loss = out.metrics, aux
        return QuantizerOutput(self.out_proj(out.z_q.transpose(1, 2)), out.codes, aux, out.metrics,
                               out.commitment_loss, out.codebook_loss, z_e)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes B x T -> ``out_proj`` of their codewords, B x D x T."""
        return self.out_proj(self.decode_code(codes))

    @property
    def quantizing(self) -> bool:
        return self.codebook.quantizing

    @property
    def noise_var(self) -> float:
        return self.codebook.noise_var

    def embed_code(self, embed_id: torch.Tensor) -> torch.Tensor:
        # The stage's codeword table: DAC's embedding weight, FSQ's grid or SimVQ's mapped basis.
        return F.embedding(embed_id, self.codebook.codebook)

    def decode_code(self, embed_id: torch.Tensor) -> torch.Tensor:
        return self.embed_code(embed_id).transpose(1, 2)

    def decode_latents(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hard quantization of projected latents ``B x d x T`` -> ``(codewords B x d x T, indices B x T)``."""
        flat = latents.transpose(1, 2).reshape(-1, self.codebook_dim)
        indices = self.codebook.encode(flat).reshape(latents.shape[0], -1)
        return self.decode_code(indices), indices


class ResidualVectorQuantize(nn.Module):
    """DAC's residual VQ (SoundStream) with a selectable estimator per stage.

    Args:
        input_dim, n_codebooks, codebook_size, codebook_dim, quantizer_dropout: as DAC.
        method: estimator of every stage (default ``"ste"`` = DAC).
        residual_mode: ``"stagewise"`` (DAC's structure), ``"stagewise_hard"`` (DiVeQ only:
            DAC's structure with the residual chain valued at the hard codewords, so training
            codes are the codes decoding will see) or ``"joint"`` (DiVeQ and SF-DiVeQ, the
            authors' residual variants: hard stage choices, SF-DiVeQ's on the dithered curve, and
            one reparameterisation of their projected sum; the input projections then only
            select codes and receive no gradient).
        **options: :class:`Quantizer` options shared by every stage (``lookup``, ``noise_var``, ...).
    """

    def __init__(self, input_dim: int = 512, n_codebooks: int = 9, codebook_size: int = 1024,
                 codebook_dim: Union[int, list] = 8, quantizer_dropout: float = 0.0, method: str = "ste",
                 residual_mode: str = "stagewise", **options) -> None:
        super().__init__()
        check_residual_mode(residual_mode, method)
        if isinstance(n_codebooks, bool) or not isinstance(n_codebooks, int) or n_codebooks < 1:
            # else the first training step fails inside quantizer dropout's randint
            raise ConfigError(f"n_codebooks must be a positive integer, got {n_codebooks!r}")
        if isinstance(codebook_dim, int):
            codebook_dim = [codebook_dim] * n_codebooks
        self.n_codebooks = n_codebooks
        self.codebook_dim = codebook_dim
        self.codebook_size = codebook_size
        self.method = method
        self.residual_mode = residual_mode
        seed = options.pop("seed", 0)
        self.quantizers = nn.ModuleList(
            # FSQ stages all round on the unscaled grid: each stage's own learned projections set its
            # scale (residual FSQ's levels ** -i scaling is for stages sharing one space, as in the
            # core's ResidualQuantizer; here it would ask in_proj for weights ~ levels ** -i).
            VectorQuantize(input_dim, codebook_size, codebook_dim[i], method=method, seed=seed + i, **options)
            for i in range(n_codebooks)
        )
        self.quantizer_dropout = quantizer_dropout
        self.metrics: dict[str, torch.Tensor] = {}
        self.extra_losses: dict[str, torch.Tensor] = {}

    def forward(self, z: torch.Tensor, n_quantizers: Optional[int] = None):
        """DAC's tuple ``(z_q, codes B x N x T, latents B x N*d x T, commitment_loss, codebook_loss)``.

        In training every stage runs and quantizer dropout masks stages per example (DAC's
        draw); in eval the first ``n_quantizers`` stages run. Per-stage metrics are left in
        ``self.metrics`` (``stage{i}/usage`` ...).
        """
        out = residual_pass(list(self.quantizers), z, method=self.method, mode=self.residual_mode,
                            training=self.training, n_quantizers=n_quantizers,
                            dropout=self.quantizer_dropout, vector_dim=1)
        self.metrics = out.metrics
        # Losses outside DAC's tuple (Gumbel's KL to uniform, already weighted by kl_weight).
        self.extra_losses = {"vq/kl_loss": out.aux_loss} if self.quantizers[0].codebook.spec.aux == "kl" else {}
        return (out.z_q, torch.stack(out.codes, dim=1), torch.cat(out.latents, dim=1), out.commitment_loss,
                out.codebook_loss)

    def from_codes(self, codes: torch.Tensor):
        """Codes ``B x N x T`` -> ``(z_q B x D x T, codewords B x N*d x T, codes)``."""
        z_q, z_p = 0.0, []
        for i in range(codes.shape[1]):
            z_p_i = self.quantizers[i].decode_code(codes[:, i, :])
            z_p.append(z_p_i)
            z_q = z_q + self.quantizers[i].out_proj(z_p_i)
        return z_q, torch.cat(z_p, dim=1), codes

    def from_latents(self, latents: torch.Tensor):
        """Projected latents ``B x N*d x T`` -> ``(z_q, codewords, codes)`` for as many whole stages as fit."""
        z_q, z_p, codes = 0, [], []
        dims = np.cumsum([0] + [q.codebook_dim for q in self.quantizers])
        n_codebooks = int(np.where(dims <= latents.shape[1])[0].max())
        for i in range(n_codebooks):
            j, k = dims[i], dims[i + 1]
            z_p_i, codes_i = self.quantizers[i].decode_latents(latents[:, j:k, :])
            z_p.append(z_p_i)
            codes.append(codes_i)
            z_q = z_q + self.quantizers[i].out_proj(z_p_i)
        return z_q, torch.cat(z_p, dim=1), torch.stack(codes, dim=1)
