"""dac-diveq: DiVeQ / SF-DiVeQ vector quantizers for the Descript Audio Codec (DAC)."""

__version__ = "0.1.0"

from .codec.compat import patch_audiotools

patch_audiotools()

from .codec.export import export_to_dac  # noqa: E402  (after the shim)
from .codec.model import DiVeQDAC  # noqa: E402
from .codec.register import from_dac, register  # noqa: E402
from .quantize import METHODS, Quantizer, QuantizerOutput  # noqa: E402

__all__ = ["METHODS", "DiVeQDAC", "Quantizer", "QuantizerOutput", "__version__", "export_to_dac", "from_dac",
           "patch_audiotools", "register"]
