"""What binds a codec's quality: its STFT magnitudes or its phase.

For each reference file the codec's output (``compress``/``decompress`` at the model's level, as
``encode``) is split into STFT magnitude and phase, and hybrids are rebuilt and scored:

- ``codec``: the codec's output itself;
- ``codec_mag+ref_phase``: the codec's magnitudes with the reference's phase (what perfect phase buys);
- ``codec_mag+gl_phase``: the codec's magnitudes with Griffin-Lim phase (is its phase self-consistent?);
- ``ref_mag+codec_phase``: the reference's magnitudes with the codec's phase (what perfect magnitudes buy);
- ``ref_mag+gl_phase``: the reference's magnitudes with Griffin-Lim phase (the phase-free ceiling).

Without a model, :func:`oracle_conditions` gives what PESQ needs of magnitudes and phase on any set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

N_FFT, HOP = 512, 128
GRIFFIN_LIM_ITERS = 32
HYBRIDS = ("codec", "codec_mag+ref_phase", "codec_mag+gl_phase", "ref_mag+codec_phase", "ref_mag+gl_phase")


def _stft(x: np.ndarray) -> torch.Tensor:
    return torch.stft(torch.from_numpy(np.asarray(x, dtype=np.float32)), N_FFT, HOP,
                      window=torch.hann_window(N_FFT), return_complex=True)


def _istft(spec: torch.Tensor, length: int) -> np.ndarray:
    return torch.istft(spec, N_FFT, HOP, window=torch.hann_window(N_FFT), length=length).numpy()


def griffin_lim(magnitude: torch.Tensor, length: int, iters: int = GRIFFIN_LIM_ITERS, seed: int = 0) -> np.ndarray:
    """A waveform whose STFT magnitude approaches ``magnitude`` (Griffin-Lim, random initial phase)."""
    import torchaudio.functional as AF

    with torch.random.fork_rng(devices=[]):  # its random initial phase, without touching the caller's RNG
        torch.manual_seed(seed)
        return AF.griffinlim(magnitude, torch.hann_window(N_FFT), N_FFT, HOP, N_FFT, 1.0, iters, 0.99, length,
                             True).numpy()


def hybrids(reference: np.ndarray, decoded: np.ndarray) -> Dict[str, np.ndarray]:
    """The signals of :data:`HYBRIDS` for one (reference, codec output) pair of equal length."""
    n = min(len(reference), len(decoded))
    ref, dec = reference[:n], decoded[:n]
    r, d = _stft(ref), _stft(dec)
    return {
        "codec": dec,
        "codec_mag+ref_phase": _istft(d.abs() * torch.exp(1j * r.angle()), n),
        "codec_mag+gl_phase": griffin_lim(d.abs(), n),
        "ref_mag+codec_phase": _istft(r.abs() * torch.exp(1j * d.angle()), n),
        "ref_mag+gl_phase": griffin_lim(r.abs(), n),
    }


def oracle_conditions(reference: np.ndarray, sample_rate: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Signals built from the reference alone: exact magnitudes with random or Griffin-Lim phase, an
    80-band mel spectrogram inverted (pseudo-inverse + Griffin-Lim), and exact phase with magnitudes
    scaled by a random N(0, 6 dB) or N(0, 10 dB) gain per bin."""
    import torchaudio.functional as AF

    n = len(reference)
    r = _stft(reference)
    rng = np.random.default_rng(seed)
    phase = torch.from_numpy(rng.uniform(-np.pi, np.pi, r.shape).astype(np.float32))
    out = {"exact_mag+random_phase": _istft(r.abs() * torch.exp(1j * phase), n),
           "exact_mag+gl_phase": griffin_lim(r.abs(), n, seed=seed)}
    fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, sample_rate / 2, 80, sample_rate, norm="slaney", mel_scale="slaney")
    mel = fb.T @ r.abs()
    magnitude = torch.clamp(torch.linalg.pinv(fb.T) @ mel, min=0.0)
    out["mel80+gl_phase"] = griffin_lim(magnitude, n, seed=seed)
    for db in (6, 10):
        gain = torch.from_numpy((10 ** (rng.normal(0, db, r.shape) / 20)).astype(np.float32))
        out[f"exact_phase+mag_x_N(0,{db}dB)"] = _istft(r * gain, n)
    return out


def diagnose(model, files: Sequence[Path], score: Optional[Callable] = None, level="model",
             window: Optional[float] = None) -> list[dict]:
    """PESQ-WB and STOI of every hybrid of every file (rows: ``file, signal, pesq_wb, stoi``).

    Args:
        model: a :class:`~dac_diveq.codec.model.DiVeQDAC` in eval mode.
        files: reference audio files at the model's sample rate.
        score: ``(reference, degraded, sample_rate) -> {metric: value}`` (default PESQ-WB and STOI).
        level: what ``compress`` normalises to (see :func:`~dac_diveq.codec.model.parse_level`).
        window: the compression window in seconds (default: ``encode``'s).
    """
    from audiotools import AudioSignal

    from ..metrics import speech
    from . import codec_io
    from .model import WINDOW_S

    def default_score(ref, deg, sr):
        return {"pesq_wb": speech.pesq_wb(ref, deg, sr), "stoi": speech.stoi(ref, deg, sr)}

    score = score or default_score
    rows = []
    for path in files:
        audio, sr = codec_io.read_audio(path)
        ref = audio.mean(0)
        with torch.no_grad():
            artifact = model.compress(AudioSignal(torch.from_numpy(audio)[None], sr), window or WINDOW_S,
                                      normalize_db=level)
            model.padding = True
            decoded = model.decompress(artifact).audio_data[0].mean(0).cpu().numpy()
        for name, signal in hybrids(ref, decoded).items():
            rows.append({"file": Path(path).name, "signal": name, **score(ref[:len(signal)], signal, sr)})
    return rows


def mean_table(rows: Sequence[dict], order: Sequence[str], metrics: Sequence[str] = ("pesq_wb", "stoi")) -> str:
    """A Markdown table of each signal's mean over files."""
    lines = ["| signal | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name in order:
        group = [r for r in rows if r["signal"] == name]
        if group:
            lines.append(f"| {name} | " + " | ".join(f"{np.mean([r[m] for r in group]):.3f}" for m in metrics) + " |")
    return "\n".join(lines)
