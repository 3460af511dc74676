"""The quantization core on image feature maps: ``(B, C, H, W)`` in, ``(B, C, H, W)`` out."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..quantize.core import Quantizer, QuantizerOutput
from ..quantize.lookup import gather
from ..quantize.residual import ProductQuantizer, ResidualQuantizer

STRUCTURES = ("single", "residual", "product")


class SpatialQuantizer(nn.Module):
    """Quantizes every spatial position of a feature map as one ``C``-dimensional vector.

    It only adapts shapes: the channel axis becomes the vector axis of a
    :class:`~dac_diveq.quantize.Quantizer` (``"single"``), a
    :class:`~dac_diveq.quantize.ResidualQuantizer` (``"residual"``) or a
    :class:`~dac_diveq.quantize.ProductQuantizer` (``"product"``), and back.

    Args:
        dim: channels C of the feature map (the codeword dimension; per group for product VQ
            it is ``dim / n_quantizers``).
        codebook_size: codewords K per codebook.
        method: one of :data:`~dac_diveq.quantize.METHODS`.
        structure: ``"single"``, ``"residual"`` or ``"product"``.
        n_quantizers: residual stages or product groups (must be 1 for ``"single"``).
        residual_mode: ``"stagewise"``, ``"stagewise_hard"`` or ``"joint"`` (residual DiVeQ only).
        **options: forwarded to every core :class:`~dac_diveq.quantize.Quantizer`.
    """

    def __init__(self, dim: int, codebook_size: int, method: str = "diveq", structure: str = "single",
                 n_quantizers: int = 1, residual_mode: str = "stagewise", **options) -> None:
        super().__init__()
        if structure not in STRUCTURES:
            raise ConfigError(f"unknown structure {structure!r}; expected one of {STRUCTURES}")
        if int(n_quantizers) != n_quantizers or n_quantizers < 1:
            raise ConfigError(f"n_quantizers must be a positive integer, got {n_quantizers}")
        if structure == "single" and n_quantizers != 1:
            raise ConfigError(f"structure='single' uses one codebook, got n_quantizers={n_quantizers}; "
                             "use structure='residual' or 'product' for several")
        if structure != "residual" and residual_mode != "stagewise":
            # Silently ignoring it would make a config claim a joint residual model it does not train.
            raise ConfigError(f"residual_mode={residual_mode!r} applies to structure='residual' only")
        self.dim = int(dim)
        self.codebook_size = int(codebook_size)
        self.method = method
        self.structure = structure
        self.n_quantizers = int(n_quantizers)
        if structure == "single":
            self.vq = Quantizer(codebook_size, dim, method, **options)
            self._stages = [self.vq]
        elif structure == "residual":
            self.vq = ResidualQuantizer(n_quantizers, codebook_size, dim, method, residual_mode, **options)
            self._stages = list(self.vq.stages)
        else:
            self.vq = ProductQuantizer(n_quantizers, codebook_size, dim, method, **options)
            self._stages = list(self.vq.groups)

    @property
    def stages(self) -> list[Quantizer]:
        """The core quantizer stages (one, the residual stages, or the product groups)."""
        return self._stages

    @property
    def n_indices(self) -> int:
        """Codeword indices stored per spatial position."""
        return len(self._stages)

    @property
    def bits_per_position(self) -> float:
        """Bits per spatial position: ``n_indices * log2(K)``."""
        return self.n_indices * math.log2(self.codebook_size)

    def codebooks(self) -> list[torch.Tensor]:
        """The ``(K, D)`` codeword table of every stage, in code order."""
        return [stage.codebook for stage in self._stages]

    def set_total_iters(self, total_iters: int) -> None:
        """Tell every stage the planned training length (replacement stops before the end)."""
        for stage in self._stages:
            stage.set_total_iters(total_iters)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize a feature map.

        Args:
            z: ``(B, C, H, W)`` latents with ``C == dim``.

        Returns:
            :class:`~dac_diveq.quantize.QuantizerOutput` with ``z_q`` of shape ``(B, C, H, W)`` and
            ``codes`` of shape ``(B, H, W)`` (single) or ``(B, H, W, n_quantizers)``.
        """
        self._check(z)
        out = self.vq(z.permute(0, 2, 3, 1))
        out.z_q = out.z_q.permute(0, 3, 1, 2).contiguous()
        return out

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Hard codes of ``z`` as the eval forward computes them, whatever the current mode.

        Returns:
            int64 codes, ``(B, H, W)`` or ``(B, H, W, n_quantizers)``.
        """
        was_training = self.training
        # Eval mode: nearest-codeword codes, and no maintenance step or usage accounting.
        self.eval()
        try:
            return self(z).codes
        finally:
            self.train(was_training)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Feature map of the codewords of ``codes``.

        In eval mode ``decode(forward(z).codes)`` equals ``forward(z).z_q`` up to float rounding
        (the eval forward is ``z + sg[c - z]``), except for SF-DiVeQ with ``sf_inference="curve"``,
        whose eval output is a point on the curve, not a codeword.

        Args:
            codes: ``(B, H, W)`` (single) or ``(B, H, W, n)``; residual codes may hold fewer
                than ``n_quantizers`` stages (the leading ones).

        Returns:
            ``(B, C, H, W)`` quantized latents.
        """
        expected = 3 if self.structure == "single" else 4
        if codes.dim() != expected:
            raise ValueError(f"expected codes with {expected} dimensions for structure={self.structure!r}, "
                             f"got shape {tuple(codes.shape)}")
        if self.structure == "single":
            z_q = gather(self.vq.codebook, codes)
        else:
            if self.structure == "product" and codes.shape[-1] != self.n_quantizers:
                raise ValueError(f"product codes need {self.n_quantizers} groups, got {codes.shape[-1]}")
            if codes.shape[-1] > self.n_quantizers:
                raise ValueError(f"codes hold {codes.shape[-1]} stages, the quantizer has {self.n_quantizers}")
            z_q = self.vq.decode(codes)
        return z_q.permute(0, 3, 1, 2).contiguous()

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, codebook_size={self.codebook_size}, method={self.method!r}, "
                f"structure={self.structure!r}, n_quantizers={self.n_quantizers}")

    def _check(self, z: torch.Tensor) -> None:
        if not isinstance(z, torch.Tensor) or z.dim() != 4 or z.shape[1] != self.dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"expected a feature map of shape (B, {self.dim}, H, W), got {shape}")
