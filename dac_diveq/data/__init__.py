"""Embedded default speech data: synthesised train/val speech and real test clips.

See :func:`dac_diveq.data.prepare.prepare` and ``scripts/prepare_data.py``.
"""
from .errors import DataPrepError
from .prepare import DEFAULT_N_TRAIN, DEFAULT_N_VAL, prepare
from .text import generate_sentences

__all__ = ["DEFAULT_N_TRAIN", "DEFAULT_N_VAL", "DataPrepError", "generate_sentences", "prepare"]
