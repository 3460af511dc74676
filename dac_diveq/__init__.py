"""dac-diveq: DiVeQ / SF-DiVeQ vector quantizers for the Descript Audio Codec (DAC)."""

__version__ = "0.1.0"

from .codec.compat import patch_audiotools

patch_audiotools()

from .quantize import METHODS, Quantizer, QuantizerOutput  # noqa: E402  (after the shim)

__all__ = ["METHODS", "Quantizer", "QuantizerOutput", "__version__", "patch_audiotools"]
