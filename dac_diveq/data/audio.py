"""Small signal helpers for the prepared speech: mono, resampling, trimming, normalising."""
from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF

TARGET_SR = 16000


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels of ``(samples,)`` or ``(samples, channels)`` audio.

    Args:
        audio: Audio as read by ``soundfile`` (channels last).

    Returns:
        A 1-D float32 array.
    """
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def resample(audio: np.ndarray, sr_in: int, sr_out: int = TARGET_SR) -> np.ndarray:
    """Resample 1-D audio with ``torchaudio.functional.resample`` (windowed sinc).

    Args:
        audio: 1-D float audio.
        sr_in: Its sample rate.
        sr_out: The wanted sample rate.

    Returns:
        1-D float32 audio at ``sr_out`` (the input itself when the rates match).
    """
    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    with torch.no_grad():
        out = AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
                          sr_in, sr_out)
    return out.numpy()


def trim_silence(audio: np.ndarray, sr: int, threshold_db: float = -45.0,
                 pad_s: float = 0.08, frame_s: float = 0.01) -> np.ndarray:
    """Lightly trim leading and trailing silence.

    Frames whose RMS is more than ``threshold_db`` below the loudest frame count as silent;
    everything from the first to the last non-silent frame is kept, plus ``pad_s`` of
    context on each side.

    Args:
        audio: 1-D float audio.
        sr: Sample rate.
        threshold_db: Silence threshold relative to the loudest frame, in dB.
        pad_s: Context kept before the first and after the last loud frame, in seconds.
        frame_s: Analysis frame length, in seconds.

    Returns:
        The trimmed audio (unchanged when it is entirely silent).
    """
    frame = max(1, int(frame_s * sr))
    n_frames = len(audio) // frame
    if n_frames == 0:
        return audio
    frames = audio[: n_frames * frame].reshape(n_frames, frame).astype(np.float64)
    rms = np.sqrt((frames ** 2).mean(axis=1) + 1e-20)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    if rms.max() <= 1e-8 or len(loud) == 0:
        return audio
    pad = int(pad_s * sr)
    start = max(0, loud[0] * frame - pad)
    stop = min(len(audio), (loud[-1] + 1) * frame + pad)
    return audio[start:stop]


def peak_normalise(audio: np.ndarray, peak_db: float = -1.0) -> np.ndarray:
    """Scale audio so that its absolute peak is ``peak_db`` dBFS.

    Args:
        audio: 1-D float audio.
        peak_db: Target peak in dB relative to full scale.

    Returns:
        Scaled float32 audio (unchanged when it is all zeros).
    """
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak <= 0.0:
        return np.asarray(audio, dtype=np.float32)
    return (audio * (10.0 ** (peak_db / 20.0) / peak)).astype(np.float32)


def rms_dbfs(audio: np.ndarray) -> float:
    """Return the RMS level of audio in dBFS (``-inf`` for silence).

    Args:
        audio: 1-D float audio in [-1, 1].

    Returns:
        ``20 * log10(rms)``.
    """
    rms = float(np.sqrt(np.mean(np.asarray(audio, dtype=np.float64) ** 2))) if len(audio) else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")
