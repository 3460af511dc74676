"""What one audio file may claim in its header: the bounds that the codec's inputs and the
training data share (a tiny file may claim hours, 8 Hz or 10^9 Hz; these refuse it before any
sample is read, resampled or allocated).

Each check returns the one-line reason a file is refused, or None; the caller raises its own
error type (the codec's ``InputError``, the data's ``DataError``) with it.
"""
from __future__ import annotations

import math
from typing import Optional

#: Sample rates (Hz) accepted from an audio file's header or a ``.dac`` file's metadata.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000
#: Most samples (channels x length) of one file's audio, at its own rate and at the model's:
#: 2^28, 1 GiB as float32 (1.5 h of 48 kHz stereo, 4.6 h of 16 kHz mono).
MAX_SAMPLES = 2 ** 28
#: Most filter taps resampling between a file's rate and the model's may take (julius, which
#: audiotools resamples with, builds ``new/g x (old/g + 2 width)`` taps for rates of gcd ``g``):
#: 2^25, 128 MiB (44.1 kHz to 16 kHz takes 92,960; 383,999 Hz to 16 kHz would take 6 x 10^9).
MAX_RESAMPLE_TAPS = 2 ** 25


def sample_rate_problem(sample_rate: int) -> Optional[str]:
    """Why ``sample_rate`` is refused (outside [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`]), or None."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        return f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
    return None


def length_problem(length: int, channels: int, sample_rate: int, model_rate: Optional[int] = None) -> Optional[str]:
    """Why audio of ``length`` samples per channel is refused (more than :data:`MAX_SAMPLES` at its
    rate or, given, the model's ``model_rate``), or None."""
    samples = length * channels * max(1.0, (model_rate or sample_rate) / sample_rate)
    if samples > MAX_SAMPLES:
        return (f"{length} samples x {channels} channel(s) at {sample_rate} Hz"
                f"{f' (resampled to {model_rate} Hz)' if model_rate else ''} exceed the "
                f"{MAX_SAMPLES} samples one file may hold; split it")
    return None


def resampling_taps(old: int, new: int) -> int:
    """Filter taps julius' ``resample_frac(old, new)`` builds (0 when the rates are equal)."""
    gcd = math.gcd(old, new)
    old, new = old // gcd, new // gcd
    if old == new:
        return 0
    width = math.ceil(24 * old / (min(old, new) * 0.945))  # julius' zeros=24, rolloff=0.945
    return new * (2 * width + old)


def resampling_problem(sample_rate: int, model_rate: int) -> Optional[str]:
    """Why resampling between the two rates is refused (filters over :data:`MAX_RESAMPLE_TAPS`), or None."""
    for old, new in ((sample_rate, model_rate), (model_rate, sample_rate)):
        taps = resampling_taps(old, new)
        if taps > MAX_RESAMPLE_TAPS:
            return (f"resampling {old} Hz to {new} Hz would take {taps:,} filter taps "
                    f"(at most {MAX_RESAMPLE_TAPS:,}): resample it to a common rate first")
    return None


def header_problem(sample_rate: int, length: int, channels: int, model_rate: Optional[int] = None) -> Optional[str]:
    """The first of the three problems above for a file's header (rate, then resampling, then length), or None."""
    return (sample_rate_problem(sample_rate)
            or (resampling_problem(sample_rate, model_rate) if model_rate else None)
            or length_problem(length, channels, sample_rate, model_rate))
