"""dac-diveq: DiVeQ / SF-DiVeQ vector quantizers for the Descript Audio Codec (DAC).

Importing the package loads nothing heavy: the quantizer core (:mod:`dac_diveq.quantize`, torch only)
and the DAC integration (:mod:`dac_diveq.codec`, which needs ``dac`` and ``audiotools``) are loaded
on first access of their names here.
"""

__version__ = "0.1.0"

#: Public name -> module that defines it (imported on first access).
_EXPORTS = {
    "METHODS": "dac_diveq.quantize",
    "Quantizer": "dac_diveq.quantize",
    "QuantizerOutput": "dac_diveq.quantize",
    "DiVeQDAC": "dac_diveq.codec.model",
    "from_dac": "dac_diveq.codec.register",
    "register": "dac_diveq.codec.register",
    "export_to_dac": "dac_diveq.codec.export",
    "export_to_hf": "dac_diveq.codec.hf_export",
    "patch_audiotools": "dac_diveq.data.compat",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later accesses skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
