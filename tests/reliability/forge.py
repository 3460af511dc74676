"""Tiny files that ask a reader for gigabytes: numpy arrays whose pickled shape is not backed by
the file's bytes, ``.dac`` metadata out of bounds, weights files whose constructor arguments do not
fit their tensors. Used by ``test_tiny_files.py``."""
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dac_diveq.codec.model import DiVeQDAC
from tests.conftest import TINY_DAC

_RECONSTRUCT = getattr(np, "_core", None) or np.core
_RECONSTRUCT = _RECONSTRUCT.multiarray._reconstruct


class _Dtype:
    """Pickles as ``numpy.dtype(code)`` without the state a real dtype carries (as a crafted
    file would: no BUILD for an allow-list to refuse)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (np.dtype, (self.code,))


class ForgedArray:
    """Pickles as numpy pickles an array (``_reconstruct`` then ``__setstate__``), with a shape and
    dtype of the forger's choosing and only ``data`` behind them."""

    def __init__(self, shape: tuple, dtype: str, data: Any) -> None:
        self.state = (1, shape, _Dtype(dtype), False, data)

    def __reduce__(self):
        return (_RECONSTRUCT, (np.ndarray, (0,), b"b"), self.state)


class DirectArray:
    """Pickles as ``numpy.ndarray(shape, dtype)``: a call that allocates at once."""

    def __init__(self, shape: tuple, dtype: str) -> None:
        self.shape, self.dtype = shape, dtype

    def __reduce__(self):
        return (np.ndarray, (self.shape, _Dtype(self.dtype)))


#: Forged arrays, each under 100 bytes of data, that would take 8 GB or more.
FORGED = {
    "object": ForgedArray((10 ** 9,), "O", [None]),
    "bytes": ForgedArray((10 ** 10,), "u1", b"x"),
    "direct": DirectArray((10 ** 10,), "u1"),
}


def forged_weights(path: Path, forged: Any) -> Path:
    """A DiVeQDAC weights file (``info`` reads it) with ``forged`` in its metadata."""
    torch.save({"state_dict": {}, "metadata": {"kwargs": {**TINY_DAC, "method": "diveq"}, "extra": forged}}, path)
    return path


def forged_dac(path: Path, source: Path, **changes: Any) -> Path:
    """``source`` (a ``.dac`` file) with artifacts replaced: ``codes=...``, ``metadata={...}``
    (merged into the file's metadata), or removed (``codes=None``)."""
    artifacts = np.load(source, allow_pickle=True)[()]
    for key, value in changes.items():
        if value is None:
            artifacts.pop(key)
        else:
            artifacts[key] = {**artifacts[key], **value} if key == "metadata" else value
    with open(path, "wb") as handle:
        np.save(handle, artifacts)
    return path


def small_weights(path: Path, state: str = "real", **kwargs: Any) -> Path:
    """A DiVeQDAC weights file whose recorded constructor arguments are ``TINY_DAC | kwargs``.

    Args:
        path: where to write it.
        state: ``"real"`` (the tiny model's tensors: a few hundred kB) or ``"empty"`` (no tensors:
            about a kilobyte).
        **kwargs: the arguments the file claims.
    """
    torch.manual_seed(0)
    tensors = DiVeQDAC(**TINY_DAC).state_dict() if state == "real" else {}
    torch.save({"state_dict": tensors, "metadata": {"kwargs": {**TINY_DAC, "method": "diveq", **kwargs}}}, path)
    return path
