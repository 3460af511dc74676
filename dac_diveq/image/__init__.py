"""Image models around the quantization core: the DiVeQ paper's image experiments.

* :mod:`.quantizer` - :class:`SpatialQuantizer`, the core on ``(B, C, H, W)`` feature maps
* :mod:`.vqvae` - :class:`VQVAE`, the compression VQ-VAE (paper Table 3)
* :mod:`.vqgan` - :class:`VQGAN` (stage 1) and :class:`PatchDiscriminator`
* :mod:`.losses` - adversarial losses, adaptive GAN weight, discriminator warm-up
* :mod:`.gpt` - :class:`CodeGPT`, an autoregressive prior over code grids (stage 2)
"""
from .gpt import CodeGPT
from .quantizer import SpatialQuantizer
from .vqgan import VQGAN, PatchDiscriminator
from .vqvae import VQVAE

__all__ = ["VQGAN", "VQVAE", "CodeGPT", "PatchDiscriminator", "SpatialQuantizer"]
