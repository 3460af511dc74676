"""Model-agnostic vector-quantization core: DiVeQ, SF-DiVeQ and the baselines they are compared with.

* :mod:`.estimators`, :mod:`.space_filling` - the gradient surrogates (pure functions)
* :mod:`.methods` - the registry of named methods (the paper's :data:`METHODS`, then :data:`BASELINES`: FSQ, SimVQ)
* :mod:`.fsq` - finite scalar quantization's bound, rounding and mixed-radix codes (pure functions)
* :mod:`.codebook` - codebook state and maintenance (replacement, SF init, k-means init, EMA)
* :mod:`.core` - :class:`Quantizer`, one stage on ``(..., D)`` tensors (the one declaration of its options)
* :mod:`.options` - the quantizer options models expose as their own constructor arguments
* :mod:`.residual` - residual and product wrappers

This package imports torch (and numpy) only, so DiVeQ can be used in any model without DAC.
``VectorQuantize`` / ``ResidualVectorQuantize``, the drop-ins for ``dac.nn.quantize``, live with the
codec (:mod:`dac_diveq.codec.dac_layers`); they stay importable from here for existing code, and only
that access imports DAC.
"""
from .core import Quantizer, QuantizerOutput
from .methods import BASELINES, METHODS, register
from .residual import ProductQuantizer, ResidualQuantizer

#: Names resolved lazily from the codec (they need ``dac``): see :func:`__getattr__`.
_DAC_LAYERS = ("ResidualVectorQuantize", "VectorQuantize")

__all__ = [
    "BASELINES",
    "METHODS",
    "ProductQuantizer",
    "Quantizer",
    "QuantizerOutput",
    "ResidualQuantizer",
    "ResidualVectorQuantize",
    "VectorQuantize",
    "register",
]


def __getattr__(name: str):
    # The one import from quantize into another package (declared in the import-linter contract):
    # a compatibility re-export, run only when the DAC layers are asked for.
    if name in _DAC_LAYERS:
        from ..codec import dac_layers

        return getattr(dac_layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
