"""DAC integration: the codec model, the DAC drop-in quantizer layers, argbind registration, export to
stock DAC, compat shims, the command line, the codec trainer and its evaluation.

Importing this package installs the audiotools shim (:func:`dac_diveq.data.compat.patch_audiotools`):
every module here reads audio through audiotools, whose ``util.info`` fails with torchaudio >= 2.9
without it. The data loaders apply it themselves (they do not import this package).
"""
from ..data.compat import patch_audiotools

patch_audiotools()
