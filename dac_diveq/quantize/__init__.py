"""Model-agnostic vector-quantization core: DiVeQ, SF-DiVeQ and the baselines they are compared with.

* :mod:`.estimators`, :mod:`.space_filling` - the gradient surrogates (pure functions)
* :mod:`.methods` - the registry of named methods (:data:`METHODS`)
* :mod:`.codebook` - codebook state and maintenance (replacement, SF init, EMA)
* :mod:`.core` - :class:`Quantizer`, one stage on ``(..., D)`` tensors
* :mod:`.residual` - residual and product wrappers
* :mod:`.dac_layers` - drop-ins for ``dac.nn.quantize``
"""
from .core import QuantizerOutput, Quantizer
from .methods import METHODS, register

__all__ = ["METHODS", "Quantizer", "QuantizerOutput", "register"]
