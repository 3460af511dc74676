"""Codes stored in ``ceil(log2 K)`` bits each instead of DAC's 16-bit integers.

A ``.dac`` file of DAC's format stores every code as a ``uint16`` (16 bits for a 1024-word
codebook that needs 10): 1.6x the bitrate the codec is named for. :func:`pack_codes` writes the
codes as one big-endian bit string of ``bits_per_code`` bits per code (a DAC file of ours then
stores ``packed_codes`` instead of ``codes``); :func:`unpack_codes` restores the exact array.
"""
from __future__ import annotations

import math

import numpy as np


def bits_per_code(codebook_size: int) -> int:
    """Bits that hold any index of a ``codebook_size``-word codebook (at least 1)."""
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
    return max(1, math.ceil(math.log2(codebook_size)))


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """``codes`` (any shape, non-negative integers below ``2**bits``) as a ``uint8`` bit string.

    Raises:
        ValueError: a code does not fit in ``bits`` bits, or ``bits`` is outside 1..16.
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    flat = np.asarray(codes).reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= 2 ** bits):
        raise ValueError(f"codes must be in [0, {2 ** bits}) to pack into {bits} bits")
    # Most significant bit first, code after code.
    bit_matrix = (flat[:, None] >> np.arange(bits - 1, -1, -1)) & 1
    return np.packbits(bit_matrix.astype(np.uint8).reshape(-1))


def unpack_codes(packed: np.ndarray, shape: tuple[int, ...], bits: int) -> np.ndarray:
    """The ``int64`` array of ``shape`` that :func:`pack_codes` packed.

    Raises:
        ValueError: ``packed`` is shorter than ``shape`` needs.
    """
    count = int(np.prod(shape, dtype=np.int64))
    needed = math.ceil(count * bits / 8)
    packed = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if packed.size < needed:
        raise ValueError(f"packed codes hold {packed.size} bytes, {needed} needed for {shape} x {bits} bits")
    bit_matrix = np.unpackbits(packed[:needed])[: count * bits].reshape(count, bits).astype(np.int64)
    return (bit_matrix << np.arange(bits - 1, -1, -1)).sum(axis=1).reshape(shape)
