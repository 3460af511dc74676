"""Atomic file writes (temporary file + rename) and hashing.

A file written here either exists complete under its final name or not at all, so an
interrupted preparation never leaves a half-written file that a later run would count as done.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Union

import numpy as np
import soundfile as sf

from ..training.checkpoint import atomic_path

PathLike = Union[str, "os.PathLike[str]"]


FILE_MODE = 0o644  # mkstemp creates 0600 files; published data files are world-readable


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: Destination file.
        data: Content.

    Returns:
        The destination path.
    """
    with atomic_path(path, FILE_MODE) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically.

    Args:
        path: Destination file.
        obj: JSON-serialisable object.

    Returns:
        The destination path.
    """
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_wav(path: PathLike, audio: np.ndarray, sr: int) -> Path:
    """Write 1-D float audio as a 16-bit PCM WAV file atomically.

    Args:
        path: Destination ``.wav`` file.
        audio: 1-D float audio in [-1, 1].
        sr: Sample rate.

    Returns:
        The destination path.
    """
    with atomic_path(path, FILE_MODE) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    return Path(path)


def sha256_bytes(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``.

    Args:
        data: Bytes to hash.

    Returns:
        64 hex digits.
    """
    return hashlib.sha256(data).hexdigest()
