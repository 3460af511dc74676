"""Model-agnostic vector-quantization core: DiVeQ, SF-DiVeQ and the baselines they are compared with.

* :mod:`.estimators`, :mod:`.space_filling` - the gradient surrogates (pure functions)
* :mod:`.methods` - the registry of named methods (:data:`METHODS`)
* :mod:`.codebook` - codebook state and maintenance (replacement, SF init, EMA)
* :mod:`.core` - :class:`Quantizer`, one stage on ``(..., D)`` tensors
* :mod:`.residual` - residual and product wrappers
* :mod:`.dac_layers` - drop-ins for ``dac.nn.quantize``
"""
from .core import Quantizer, QuantizerOutput
from .dac_layers import ResidualVectorQuantize, VectorQuantize
from .methods import METHODS, register
from .residual import ProductQuantizer, ResidualQuantizer

__all__ = [
    "METHODS",
    "ProductQuantizer",
    "Quantizer",
    "QuantizerOutput",
    "ResidualQuantizer",
    "ResidualVectorQuantize",
    "VectorQuantize",
    "register",
]
