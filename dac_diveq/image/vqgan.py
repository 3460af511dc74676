"""VQGAN stage 1 (Esser et al. 2021) with a selectable quantizer, and its PatchGAN discriminator.

The autoencoder is the usual convolutional U-Net half without skips: GroupNorm + Swish residual
blocks, single-head self-attention at chosen resolutions, stride-2 convolutions down and
nearest-neighbour upsampling back. The paper's setting (256x256 images, ``ch_mult`` of five
levels, attention at 16x16, 256-dimensional codewords, 2^10 codewords) is the default.
"""

from typing import List, Sequence, Union

import torch
import torch.nn.functional as F
from audiotools.ml import BaseModel
from torch import nn

from ..errors import ConfigError
from ..quantize.options import takes_quantizer_options
from ..training.checkpoint import SafeLoad
from .quantizer import SpatialQuantizer
from .vqvae import grid_shape


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups, or the largest divisor of ``channels`` below 32 for thin models."""
    groups = next(g for g in range(min(32, channels), 0, -1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """``x + conv(drop(swish(norm(conv(swish(norm(x)))))))``, with a 1x1 shortcut when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions, added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # (B, 3C, H, W) -> three (B, 1, HW, C): one head whose tokens are the positions.
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution; padding only right/bottom so even sizes halve exactly."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution (no checkerboard artefacts of transposed convs)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution of the encoder or decoder: residual blocks, each optionally followed by
    attention, then an optional resampling layer."""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int, attention: bool, dropout: float,
                 resample: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels, dropout) for i in range(n_blocks)
        )
        self.attn = nn.ModuleList(AttnBlock(out_channels) for _ in range(n_blocks)) if attention else None
        self.resample = resample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if self.attn is not None:
                x = self.attn[i](x)
        return self.resample(x)


def _mid(channels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(ResnetBlock(channels, channels, dropout), AttnBlock(channels),
                         ResnetBlock(channels, channels, dropout))


class Encoder(nn.Module):
    """Image ``(B, in_channels, R, R)`` -> ``(B, z_channels, R / 2^(L-1), R / 2^(L-1))`` for
    ``L = len(ch_mult)`` levels."""

    def __init__(self, in_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], dropout: float, resolution: int, z_channels: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        levels, width, res = [], ch, resolution
        for i, mult in enumerate(ch_mult):
            last = i == len(ch_mult) - 1
            levels.append(Level(width, ch * mult, num_res_blocks, res in attn_resolutions, dropout,
                                nn.Identity() if last else Downsample(ch * mult)))
            width = ch * mult
            res = res if last else res // 2
        self.levels = nn.Sequential(*levels)
        self.mid = _mid(width, dropout)
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.levels(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """``(B, z_channels, r, r)`` -> image ``(B, out_channels, r 2^(L-1), r 2^(L-1))``; the mirror
    of :class:`Encoder` with one more residual block per level."""

    def __init__(self, out_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_resolutions: Sequence[int], dropout: float, resolution: int, z_channels: int) -> None:
        super().__init__()
        width = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, width, 3, padding=1)
        self.mid = _mid(width, dropout)
        levels = []
        for i in reversed(range(len(ch_mult))):
            levels.append(Level(width, ch * ch_mult[i], num_res_blocks + 1, res in attn_resolutions, dropout,
                                Upsample(ch * ch_mult[i]) if i > 0 else nn.Identity()))
            width = ch * ch_mult[i]
            res = res * 2 if i > 0 else res
        self.levels = nn.Sequential(*levels)
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.levels(self.mid(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))


@takes_quantizer_options(noise_var=1e-2, codebook_init="uniform")
class VQGAN(SafeLoad, BaseModel):
    """VQGAN autoencoder (stage 1) with a selectable quantizer.

    Images are expected in ``[-1, 1]``; reconstructions are on the same scale (linear output).
    Train with a reconstruction + perceptual loss, :class:`PatchDiscriminator` and the helpers
    in :mod:`dac_diveq.image.losses`. Every argument is stored under its own name so
    audiotools' ``save``/``load`` rebuild the same model.

    Args:
        in_channels: image channels (also the output channels).
        ch: base width; level ``i`` has ``ch * ch_mult[i]`` channels.
        ch_mult: width multipliers, one per level; ``len(ch_mult) - 1`` downsamplings.
        num_res_blocks: residual blocks per encoder level (decoder levels have one more).
        attn_resolutions: feature-map sizes at which self-attention follows each residual block.
        dropout: dropout inside the residual blocks.
        z_channels: encoder output channels.
        resolution: nominal image size (only locates ``attn_resolutions``; other sizes run).
        embed_dim: codeword dimension D (``quant_conv`` maps ``z_channels`` to it).
        codebook_size: codewords K per codebook.
        method, structure, n_quantizers, residual_mode: see :class:`SpatialQuantizer`.
        lookup, noise_var, ..., codebook_init: the :class:`~dac_diveq.quantize.Quantizer` options of
            :data:`~dac_diveq.quantize.options.MODEL_OPTIONS`, with the core's defaults except
            ``noise_var=1e-2`` (the paper's VQGAN value) and ``codebook_init="uniform"``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        ch: int = 128,
        ch_mult: List[int] = [1, 1, 2, 2, 4],
        num_res_blocks: int = 2,
        attn_resolutions: List[int] = [16],
        dropout: float = 0.0,
        z_channels: int = 256,
        resolution: int = 256,
        embed_dim: int = 256,
        codebook_size: int = 1024,
        method: str = "diveq",
        structure: str = "single",
        n_quantizers: int = 1,
        residual_mode: str = "stagewise",
        **options,
    ) -> None:
        super().__init__()
        if not ch_mult:
            raise ConfigError("ch_mult needs at least one level")
        # Stored under their argument names: audiotools' save() reads them back as kwargs.
        self.in_channels = in_channels
        self.ch = ch
        self.ch_mult = list(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.attn_resolutions = list(attn_resolutions)
        self.dropout = dropout
        self.z_channels = z_channels
        self.resolution = resolution
        self.embed_dim = embed_dim
        self.codebook_size = codebook_size
        self.method = method
        self.structure = structure
        self.n_quantizers = n_quantizers
        self.residual_mode = residual_mode

        arch = dict(ch=ch, ch_mult=self.ch_mult, num_res_blocks=num_res_blocks,
                    attn_resolutions=self.attn_resolutions, dropout=dropout, resolution=resolution,
                    z_channels=z_channels)
        self.encoder = Encoder(in_channels, **arch)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.quantizer = SpatialQuantizer(embed_dim, codebook_size, method, structure, n_quantizers,
                                          residual_mode, **options)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.decoder = Decoder(in_channels, **arch)

    @property
    def downsample_factor(self) -> int:
        """Image pixels per code position along each axis."""
        return 2 ** (len(self.ch_mult) - 1)

    def latent_shape(self, image_size: Union[int, Sequence[int]]) -> tuple[int, int]:
        """Code grid ``(h, w)`` of an image of ``image_size`` (an int for square images, or ``(H, W)``)."""
        return grid_shape(image_size, self.downsample_factor)

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight of the decoder's output convolution, where the adaptive GAN weight is measured."""
        return self.decoder.conv_out.weight

    def set_total_iters(self, total_iters: int) -> None:
        """Tell every quantizer stage the planned training length."""
        self.quantizer.set_total_iters(total_iters)

    def forward(self, x: torch.Tensor) -> dict:
        """Encode, quantize and decode images in ``[-1, 1]``.

        Returns:
            dict with ``recons``, ``z_e`` (``(B, embed_dim, h, w)`` before quantization), ``z_q``,
            ``codes``, ``aux_loss`` (weighted quantizer loss) and ``metrics``.
        """
        z_e = self.quant_conv(self.encoder(x))
        out = self.quantizer(z_e)
        return {"recons": self.decoder(self.post_quant_conv(out.z_q)), "z_e": z_e, "z_q": out.z_q,
                "codes": out.codes, "aux_loss": out.aux_loss, "metrics": out.metrics}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Hard codes of images ``x``: ``(B, h, w)`` or ``(B, h, w, n_quantizers)``."""
        return self.quantizer.encode(self.quant_conv(self.encoder(x)))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images (``[-1, 1]`` scale, not clamped) from codes."""
        return self.decoder(self.post_quant_conv(self.quantizer.decode(codes)))


class PatchDiscriminator(SafeLoad, BaseModel):
    """PatchGAN discriminator (Isola et al. 2017): one real/fake logit per overlapping patch.

    Args:
        in_channels: image channels.
        ndf: width of the first layer; doubles per layer up to ``8 * ndf``.
        n_layers: stride-2 layers (3 gives 70x70 receptive fields).

    Returns (forward):
        logits ``(B, 1, h, w)``; ``h = H / 2^n_layers - 2`` for inputs divisible by ``2^n_layers``.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.ndf = ndf
        self.n_layers = n_layers
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        width = ndf
        for n in range(1, n_layers + 1):
            # The last of these keeps the resolution (stride 1), widening the receptive field only.
            out = ndf * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            # No bias: BatchNorm's shift replaces it.
            layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.LeakyReLU(0.2)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(_init_discriminator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def _init_discriminator(module: nn.Module) -> None:
    # DCGAN initialisation, as the PatchGAN papers train with.
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
