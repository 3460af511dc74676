"""The DiVeQ paper's image-compression VQ-VAE (Table 3) around a :class:`SpatialQuantizer`.

Encoder: ``n_down`` strided 4x4 convolutions (each halves the resolution and is followed by a
ReLU, widths doubling up to ``channels``), ``n_res_blocks`` residual blocks, and a 1x1
convolution to the codeword dimension. Decoder: a 3x3 convolution back to ``channels``, the
residual blocks, and ``n_down`` 4x4 transposed convolutions (ReLU between them, none after the
last). A 256x256 image becomes a 16x16 grid of codes with the default ``n_down=4``.
"""

from typing import Sequence, Union

import torch
from audiotools.ml import BaseModel
from torch import nn

from ..errors import ConfigError
from ..quantize.options import takes_quantizer_options
from ..training.checkpoint import SafeLoad
from .quantizer import SpatialQuantizer


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` (van den Oord et al. 2017).

    Args:
        channels: input and output channels.
        hidden: channels between the two convolutions.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        # No biases, as the authors' blocks.
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden, kernel_size=3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResidualStack(nn.Sequential):
    """``n`` :class:`ResidualBlock` followed by a ReLU."""

    def __init__(self, channels: int, hidden: int, n: int) -> None:
        super().__init__(*(ResidualBlock(channels, hidden) for _ in range(n)), nn.ReLU())


def _widths(channels: int, n_down: int) -> list[int]:
    """Channels after each downsampling block: doubling, ending at ``channels``."""
    return [channels // 2 ** (n_down - 1 - i) for i in range(n_down)]


class Encoder(nn.Module):
    """Image ``(B, in_channels, H, W)`` -> features ``(B, channels, H / 2^n_down, W / 2^n_down)``."""

    def __init__(self, in_channels: int, channels: int, res_channels: int, n_down: int, n_res_blocks: int) -> None:
        super().__init__()
        layers, prev = [], in_channels
        for width in _widths(channels, n_down):
            layers += [nn.Conv2d(prev, width, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            prev = width
        self.down = nn.Sequential(*layers)
        self.res = ResidualStack(channels, res_channels, n_res_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.down(x))


class Decoder(nn.Module):
    """Quantized latents ``(B, codebook_dim, h, w)`` -> image ``(B, out_channels, h 2^n_down, w 2^n_down)``."""

    def __init__(self, codebook_dim: int, channels: int, res_channels: int, n_down: int, n_res_blocks: int,
                 out_channels: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(codebook_dim, channels, kernel_size=3, padding=1)
        self.res = ResidualStack(channels, res_channels, n_res_blocks)
        widths = _widths(channels, n_down)[::-1][1:] + [out_channels]
        layers, prev = [], channels
        for i, width in enumerate(widths):
            layers.append(nn.ConvTranspose2d(prev, width, kernel_size=4, stride=2, padding=1))
            if i < len(widths) - 1:  # the output layer stays linear: images live in [-1, 1]
                layers.append(nn.ReLU())
            prev = width
        self.up = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.res(self.conv_in(z)))


@takes_quantizer_options(codebook_init="uniform")
class VQVAE(SafeLoad, BaseModel):
    """VQ-VAE for image compression with a selectable quantizer.

    Images are expected scaled to ``[-1, 1]`` and reconstructions come out on the same scale
    (the last layer is linear: clamp before display or metrics). Defaults follow the authors'
    compression setup (256 hidden channels, 128 in the residual blocks, 6 residual blocks,
    512-dimensional codewords, 2^10 codewords, sigma^2 = 1e-3). Every argument is stored under
    its own name so audiotools' ``save``/``load`` rebuild the same model.

    Args:
        in_channels: image channels (also the output channels).
        channels: encoder/decoder width at the latent resolution; the downsampling blocks use
            ``channels / 2^(n_down-1), ..., channels / 2, channels``. Must be divisible by
            ``2^(n_down-1)``.
        res_channels: hidden channels of the residual blocks.
        n_down: stride-2 downsampling blocks (the code grid is ``2^n_down`` times smaller).
        n_res_blocks: residual blocks in the encoder and in the decoder.
        codebook_dim: codeword dimension D (channels of the quantized latents).
        codebook_size: codewords K per codebook.
        method, structure, n_quantizers, residual_mode: see :class:`SpatialQuantizer`.
        lookup, noise_var, ..., codebook_init: the :class:`~dac_diveq.quantize.Quantizer` options of
            :data:`~dac_diveq.quantize.options.MODEL_OPTIONS`, with the core's defaults except
            ``codebook_init="uniform"`` (the authors' U(0, 1/K); DAC's N(0, 1) is the core's default).
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 256,
        res_channels: int = 128,
        n_down: int = 4,
        n_res_blocks: int = 6,
        codebook_dim: int = 512,
        codebook_size: int = 1024,
        method: str = "diveq",
        structure: str = "single",
        n_quantizers: int = 1,
        residual_mode: str = "stagewise",
        **options,
    ) -> None:
        super().__init__()
        if n_down < 1:
            raise ConfigError(f"n_down must be >= 1, got {n_down}")
        if channels % 2 ** (n_down - 1):
            raise ConfigError(f"channels={channels} must be divisible by 2^(n_down-1)={2 ** (n_down - 1)}")
        # Stored under their argument names: audiotools' save() reads them back as kwargs.
        self.in_channels = in_channels
        self.channels = channels
        self.res_channels = res_channels
        self.n_down = n_down
        self.n_res_blocks = n_res_blocks
        self.codebook_dim = codebook_dim
        self.codebook_size = codebook_size
        self.method = method
        self.structure = structure
        self.n_quantizers = n_quantizers
        self.residual_mode = residual_mode

        self.encoder = Encoder(in_channels, channels, res_channels, n_down, n_res_blocks)
        self.pre_quant = nn.Conv2d(channels, codebook_dim, kernel_size=1)
        self.quantizer = SpatialQuantizer(codebook_dim, codebook_size, method, structure, n_quantizers,
                                          residual_mode, **options)
        self.decoder = Decoder(codebook_dim, channels, res_channels, n_down, n_res_blocks, in_channels)

    @property
    def downsample_factor(self) -> int:
        """Image pixels per code position along each axis."""
        return 2 ** self.n_down

    def latent_shape(self, image_size: Union[int, Sequence[int]]) -> tuple[int, int]:
        """Code grid ``(h, w)`` of an image of ``image_size`` (an int for square images, or ``(H, W)``)."""
        return grid_shape(image_size, self.downsample_factor)

    def set_total_iters(self, total_iters: int) -> None:
        """Tell every quantizer stage the planned training length."""
        self.quantizer.set_total_iters(total_iters)

    def forward(self, x: torch.Tensor) -> dict:
        """Encode, quantize and decode a batch of images in ``[-1, 1]``.

        Returns:
            dict with ``recons`` (like ``x``), ``z_e`` (pre-quantization latents ``(B, D, h, w)``),
            ``z_q`` (quantized latents), ``codes``, ``aux_loss`` (weighted quantizer loss, 0 for the
            DiVeQ family) and ``metrics`` (codebook usage, perplexity, ...).
        """
        z_e = self.pre_quant(self.encoder(x))
        out = self.quantizer(z_e)
        return {"recons": self.decoder(out.z_q), "z_e": z_e, "z_q": out.z_q, "codes": out.codes,
                "aux_loss": out.aux_loss, "metrics": out.metrics}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Hard codes of images ``x`` in ``[-1, 1]``: ``(B, h, w)`` or ``(B, h, w, n_quantizers)``."""
        return self.quantizer.encode(self.pre_quant(self.encoder(x)))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images (in ``[-1, 1]`` scale, not clamped) from codes."""
        return self.decoder(self.quantizer.decode(codes))


def grid_shape(image_size: Union[int, Sequence[int]], factor: int) -> tuple[int, int]:
    """Code grid ``(h, w)`` of an image of ``image_size`` under a downsampling ``factor``."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(s % factor or s < factor for s in size):
        raise ConfigError(f"image size {image_size} must be positive multiples of the downsampling factor {factor}")
    return size[0] // factor, size[1] // factor
