"""How many code frames a ``.dac`` file needs so that stock DAC's ``decompress`` can decode it.

Stock DAC (1.0) compresses a file no longer than the window (5 s on the command line) in one piece
with padded convolutions: ``preprocess`` pads the input to ``ceil(n / hop)`` frames. Its decoder,
however, returns fewer samples than ``frames * hop`` when a decoder stride is odd: a transposed
convolution of stride ``s``, kernel ``2s`` and padding ``ceil(s / 2)`` turns ``L`` frames into
``L * s - (s % 2)`` samples, so DAC's 16 and 24 kHz layouts (decoder rates 8, 5, 4, 2) decode
``frames * 320 - 8`` samples. ``decompress`` then crops to ``original_length`` and reshapes to it,
which fails (``shape '[-1, 1, 64000]' is invalid for input of size 63992``) whenever the right pad
was shorter than that deficit: at the model's own rate, every length ``n`` with ``n % 320`` in
``{0, 313, ..., 319}``; at another input rate, wherever the two ``floor`` resamplings land short.
The 44.1 kHz layouts (all strides even) lose nothing. Chunked files (longer than the window)
decode unpadded and are not affected.

:func:`stock_decodable_frames` gives the frame count for which DAC's arithmetic works, and
``DiVeQDAC.compress`` encodes that many (the input padded with zeros, as DAC's own padding),
so our ``.dac`` files decode with ``python -m dac decode`` at every length.
"""
from __future__ import annotations

import math

import torch

#: Most frames added beyond ``ceil(n / hop)`` (one covers an 8-sample deficit; the bound only
#: stops a model with a pathological decoder from looping).
MAX_EXTRA_FRAMES = 4


def decoder_length(model: torch.nn.Module, frames: int, padded: bool = True) -> int:
    """Samples ``model.decoder`` returns for ``frames`` code frames.

    Args:
        model: a DAC-shaped model (its ``decoder`` holds the convolutions).
        frames: code frames in.
        padded: with the layers' own padding (unchunked files) or without it (chunked files).

    Returns:
        The output length (torch's formulas for ``Conv1d`` and ``ConvTranspose1d``).
    """
    length = frames
    for layer in model.decoder.modules():
        if not isinstance(layer, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            continue
        d, k, s = layer.dilation[0], layer.kernel_size[0], layer.stride[0]
        # A model switched to unpadded mode keeps the padding in ``original_padding``.
        p = getattr(layer, "original_padding", layer.padding)[0] if padded else 0
        if isinstance(layer, torch.nn.ConvTranspose1d):
            length = (length - 1) * s - 2 * p + d * (k - 1) + layer.output_padding[0] + 1
        else:
            length = (length + 2 * p - d * (k - 1) - 1) // s + 1
    return length


def resampled_length(length: int, old_rate: int, new_rate: int) -> int:
    """Samples after audiotools' (julius') resampling, which floors: ``floor(length * new / old)``."""
    if old_rate == new_rate:
        return length
    return math.floor(new_rate * length / old_rate)


def stock_decodable_frames(model: torch.nn.Module, original_length: int, original_rate: int) -> int:
    """Frames an unchunked ``.dac`` file needs for stock ``decompress`` to return ``original_length``.

    Args:
        model: the DAC-shaped model (``hop_length``, ``sample_rate``, ``decoder``).
        original_length: the input's samples at ``original_rate`` (what the file records).
        original_rate: the input's sample rate.

    Returns:
        The fewest frames, from ``ceil(n / hop)`` up (``n``: the length at the model's rate), whose
        padded decoding, resampled back to ``original_rate``, covers ``original_length``.

    Raises:
        RuntimeError: no count within :data:`MAX_EXTRA_FRAMES` extra frames does (a bug in a model).
    """
    hop, rate = int(model.hop_length), int(model.sample_rate)
    samples = resampled_length(original_length, original_rate, rate)
    first = -(-samples // hop)
    for frames in range(first, first + MAX_EXTRA_FRAMES + 1):
        if resampled_length(decoder_length(model, frames), rate, original_rate) >= original_length:
            return frames
    raise RuntimeError(f"no frame count from {first} covers {original_length} samples at {original_rate} Hz")
