"""numpy arrays rebuilt from untrusted pickles, checked before anything is allocated.

Two readers need numpy's pickled arrays: ``trainer.pth`` files written before RNG states were
tensors (numpy's RNG keys were an ``ndarray``) and ``.dac`` files (DAC's format is a pickled dict
of arrays). numpy's own globals would let a 1.4 kB pickle ask for any shape and dtype (10^9
elements of ``object`` dtype: 8 GB) or call ``numpy.ndarray(shape)`` directly. The globals here
stand in for numpy's: an array is first built empty, and its state (shape, dtype, bytes) is
accepted only when the pickle itself holds every byte of it, so an array never takes more memory
than the file spends on it; ``object`` dtype is refused (except the one 0-d object array that
wraps a ``.dac`` file's dict).
"""
from __future__ import annotations

import math
import pickle
from typing import Any, Callable

import numpy as np

#: Most dimensions a rebuilt array may have (numpy's own limit is 64).
MAX_DIMS = 8


class ArrayRefused(pickle.UnpicklingError):
    """A pickled array whose shape, dtype or data do not agree (one-line reason).

    The message starts with :data:`PREFIX`: torch's loader re-raises it inside a longer message
    of its own, where the reason is found again by it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"{PREFIX}{reason}")


#: How every :class:`ArrayRefused` message starts.
PREFIX = "refused numpy data: "


def refusal(message: str) -> str:
    """The reason of an :class:`ArrayRefused` inside ``message`` (another error's text), or ''."""
    start = message.find(PREFIX)
    return message[start + len(PREFIX):].splitlines()[0] if start >= 0 else ""


class _NdarrayName:
    """What ``numpy.ndarray`` resolves to in a checked pickle: only :func:`reconstruct` takes it.

    The real class would let a pickle call ``ndarray(shape)`` and allocate any size.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> None:
        raise ArrayRefused("numpy.ndarray may only be rebuilt from its pickled data")


class CheckedArray(np.ndarray):
    """An array whose pickled state is checked before numpy allocates it (see the module doc).

    Attributes:
        OBJECT_SCALARS: whether a 0-d ``object`` array holding one pickled value is accepted
            (``np.save`` wraps a ``.dac`` file's dict in one).
    """

    OBJECT_SCALARS = False

    def __new__(cls, *args: Any, **kwargs: Any) -> None:
        # Only reconstruct() makes these (through ndarray.__new__): a pickle naming the class
        # cannot call it to allocate.
        raise ArrayRefused("a checked array is only rebuilt from its pickled data")

    def __setstate__(self, state: Any) -> None:
        check_state(state, self.OBJECT_SCALARS)
        super().__setstate__(state)


class CheckedObjectArray(CheckedArray):
    """:class:`CheckedArray` that accepts the 0-d object array wrapping a ``.dac`` file's dict."""

    OBJECT_SCALARS = True


def check_state(state: Any, object_scalars: bool = False) -> None:
    """Refuse an ``ndarray.__setstate__`` state whose data the pickle does not hold.

    Args:
        state: ``(version, shape, dtype, is_fortran, data)`` (or without ``version``).
        object_scalars: accept a 0-d ``object`` array whose data is a one-item list.

    Raises:
        ArrayRefused: a malformed state, an ``object`` dtype, or data of another size than the
            shape and dtype need.
    """
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise ArrayRefused("malformed numpy array state")
    shape, dtype, _, data = state[-4:]
    if not (isinstance(shape, tuple) and len(shape) <= MAX_DIMS
            and all(type(n) is int and n >= 0 for n in shape)):
        raise ArrayRefused(f"numpy array of shape {str(shape)[:80]}")
    if not isinstance(dtype, np.dtype):
        raise ArrayRefused("numpy array without a dtype")
    if dtype.hasobject:
        if object_scalars and shape == () and isinstance(data, list) and len(data) == 1:
            return
        raise ArrayRefused(f"numpy array of object dtype (shape {shape}): only numbers are accepted")
    needed = math.prod(shape) * dtype.itemsize
    held = len(data) if isinstance(data, bytes) else None
    if held != needed:
        raise ArrayRefused(f"numpy array of shape {shape} and dtype {dtype} needs {needed} bytes, "
                           f"the file holds {'no bytes' if held is None else held} for it")


def _reconstructor(kind: type[CheckedArray]) -> Callable[..., CheckedArray]:
    """numpy's ``_reconstruct(ndarray, (0,), b"b")``, which starts every pickled array: an empty
    ``kind`` whose ``__setstate__`` then checks the real shape and data."""

    def reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> CheckedArray:
        if subtype is not _NdarrayName or shape != (0,):
            raise ArrayRefused("numpy _reconstruct of another type or shape than numpy's pickles use")
        return np.ndarray.__new__(kind, (0,), np.uint8)

    return reconstruct


def _scalar(dtype: Any, data: Any = None) -> Any:
    """numpy's pickled scalar (``numpy.float32(1.0)``): the dtype's bytes, no objects."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        raise ArrayRefused("malformed numpy scalar")
    return np.frombuffer(data, dtype=dtype)[0].copy()


def numpy_globals(object_scalars: bool = False) -> dict[str, Any]:
    """The globals a checked unpickler resolves numpy's pickle names to (both ``numpy.core`` and
    numpy 2's ``numpy._core``).

    Args:
        object_scalars: accept the 0-d object array ``np.save`` wraps a pickled dict in.

    Returns:
        ``{"module.name": object}``.
    """
    reconstruct = _reconstructor(CheckedObjectArray if object_scalars else CheckedArray)
    names = {"numpy.ndarray": _NdarrayName, "numpy.dtype": np.dtype}
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        names[f"{core}._reconstruct"] = reconstruct
        names[f"{core}.scalar"] = _scalar
    return names


def plain(value: Any) -> Any:
    """``value`` with every :class:`CheckedArray` in it a plain ``ndarray`` (a view: nothing is
    copied). Dicts and lists are changed in place, so their types and attributes (a state dict's
    ``_metadata``) are kept; a tuple is rebuilt only when an item changed."""
    if isinstance(value, CheckedArray):
        return value.view(np.ndarray)
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = plain(item)
    elif isinstance(value, list):
        value[:] = [plain(item) for item in value]
    elif isinstance(value, tuple):
        items = [plain(item) for item in value]
        if any(new is not old for new, old in zip(items, value)):
            return type(value)(items) if type(value) is tuple else value
    return value


def allowed_classes() -> dict[str, type]:
    """The checked array classes under names of their own, for unpicklers (torch's weights-only
    one) that build an object only when its class is allowed; neither can be called to allocate."""
    return {f"{__name__}.{kind.__name__}": kind for kind in (CheckedArray, CheckedObjectArray)}
