"""Intrusive speech-quality metrics on numpy/torch waveforms (reference vs. degraded)."""
from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF


def _mono(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1) if x.ndim == 1 or x.shape[0] == 1 else x.mean(0).reshape(-1)


def align(reference, degraded) -> tuple[np.ndarray, np.ndarray]:
    """Crop both signals to the shorter length (DAC's output can be a few samples short)."""
    ref, deg = _mono(reference), _mono(degraded)
    n = min(len(ref), len(deg))
    return ref[:n], deg[:n]


def resample(x: np.ndarray, sample_rate: int, target: int) -> np.ndarray:
    if sample_rate == target:
        return x
    return AF.resample(torch.from_numpy(x).float(), sample_rate, target).double().numpy()


def pesq_wb(reference, degraded, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) at 16 kHz, MOS-LQO in [1.04, 4.64]."""
    from pesq import pesq

    ref, deg = align(reference, degraded)
    return float(pesq(16000, resample(ref, sample_rate, 16000), resample(deg, sample_rate, 16000), "wb"))


def pesq_nb(reference, degraded, sample_rate: int) -> float:
    """Narrow-band PESQ (ITU-T P.862) at 8 kHz."""
    from pesq import pesq

    ref, deg = align(reference, degraded)
    return float(pesq(8000, resample(ref, sample_rate, 8000), resample(deg, sample_rate, 8000), "nb"))


def stoi(reference, degraded, sample_rate: int, extended: bool = False) -> float:
    """STOI (Taal et al. 2011), or ESTOI with ``extended=True``, in [0, 1]."""
    from pystoi import stoi as _stoi

    ref, deg = align(reference, degraded)
    return float(_stoi(ref, deg, sample_rate, extended=extended))


def si_sdr(reference, degraded) -> float:
    """Scale-invariant signal-to-distortion ratio in dB."""
    ref, deg = align(reference, degraded)
    ref = ref - ref.mean()
    deg = deg - deg.mean()
    scale = np.dot(deg, ref) / max(np.dot(ref, ref), 1e-12)
    target = scale * ref
    noise = deg - target
    return float(10 * np.log10(max(np.dot(target, target), 1e-12) / max(np.dot(noise, noise), 1e-12)))
