"""Codebook statistics over a test set, and bitrate arithmetic.

Definitions (per residual stage, over every code vector of every test file):

- ``usage``: fraction of the K codewords chosen at least once.
- ``entropy_bits``: Shannon entropy of the empirical index histogram, in bits (at most log2 K).
- ``perplexity``: ``2 ** entropy_bits`` (the effective number of equally used codewords).
- ``distortion``: mean over vectors of the squared Euclidean distance ``||z_e - c||^2`` between the
  stage's projected latent ``z_e`` (``in_proj`` output, codebook_dim wide) and its chosen codeword
  ``c`` (the raw codebook row, as the decoder receives it) — the same per-vector convention as the
  training logs (:func:`dac_diveq.quantize.stats.codebook_stats`).
- ``distortion_per_bit``: ``distortion / log2(K)``, the distortion divided by the bits each stage
  spends per vector (the paper's eq. 17 normalisation).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch


def bitrate_kbps(frame_rate: float, n_quantizers: int, codebook_size: int) -> float:
    """``frame_rate * n * log2(K) / 1000``: e.g. 50 Hz x 12 stages x 1024 codewords = 6 kbps."""
    return float(frame_rate) * int(n_quantizers) * math.log2(int(codebook_size)) / 1000.0


def entropy_bits(counts) -> float:
    """Entropy in bits of a histogram of code counts (0 for an empty histogram)."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return max(0.0, float(-(p * np.log2(p)).sum()))


def perplexity(counts) -> float:
    """``2 ** entropy_bits(counts)``."""
    return float(2.0 ** entropy_bits(counts))


def usage(counts) -> float:
    """Fraction of codewords with at least one assignment."""
    counts = np.asarray(counts).reshape(-1)
    return float((counts > 0).mean()) if counts.size else 0.0


def code_histogram(codes, codebook_size: int) -> np.ndarray:
    """Counts per codeword of an integer array of codes."""
    codes = torch.as_tensor(codes).reshape(-1).long().cpu()
    return torch.bincount(codes, minlength=codebook_size).numpy()


def distortion_per_bit(distortion: float, codebook_size: int) -> float:
    """Paper eq. 17: distortion divided by the bits per vector, ``log2(K)``."""
    return float(distortion) / math.log2(int(codebook_size))


class CodebookAccumulator:
    """Accumulates per-stage code histograms and squared quantization errors over files."""

    def __init__(self, n_stages: int, codebook_size: int) -> None:
        self.codebook_size = int(codebook_size)
        self.counts = np.zeros((n_stages, self.codebook_size), dtype=np.int64)
        self.sq_error = np.zeros(n_stages, dtype=np.float64)
        self.vectors = np.zeros(n_stages, dtype=np.int64)

    def add(self, stage: int, codes: torch.Tensor, z_e: torch.Tensor, codewords: torch.Tensor) -> None:
        """``codes`` (B, T); ``z_e`` and ``codewords`` (B, d, T)."""
        self.counts[stage] += code_histogram(codes, self.codebook_size)
        err = (z_e.detach().double() - codewords.detach().double()).pow(2).sum(1)  # (B, T)
        self.sq_error[stage] += float(err.sum())
        self.vectors[stage] += err.numel()

    def summary(self) -> dict:
        stages = []
        for i in range(len(self.counts)):
            dist = float(self.sq_error[i] / self.vectors[i]) if self.vectors[i] else float("nan")
            stages.append({
                "stage": i,
                "usage": usage(self.counts[i]),
                "perplexity": perplexity(self.counts[i]),
                "entropy_bits": entropy_bits(self.counts[i]),
                "distortion": dist,
                "distortion_per_bit": distortion_per_bit(dist, self.codebook_size),
                "vectors": int(self.vectors[i]),
            })
        return {
            "stages": stages,
            "mean_usage": float(np.mean([s["usage"] for s in stages])) if stages else None,
            "mean_perplexity": float(np.mean([s["perplexity"] for s in stages])) if stages else None,
            "definitions": {
                "usage": "fraction of codewords used at least once over the test set",
                "entropy_bits": "entropy of the stage's index histogram, bits",
                "perplexity": "2 ** entropy_bits",
                "distortion": "mean over vectors of ||z_e - c||^2 (projected latent vs. chosen codeword, "
                              "summed over codebook_dim)",
                "distortion_per_bit": "distortion / log2(codebook_size) (paper eq. 17)",
            },
        }


@torch.no_grad()
def model_codes(model, audio: torch.Tensor, sample_rate: int, normalize_db: Optional[float] = -16):
    """Full-rate codes and per-stage ``(z_e, codeword)`` pairs of one file, as ``model.compress``
    would see it (resampled to the model's rate, loudness-normalised to ``normalize_db``), but
    encoded in one piece (no 1 s windows).

    Args:
        audio: ``channels x samples`` float tensor.

    Returns:
        ``(codes (C, N, T), [(z_e_i (C, d, T), codeword_i (C, d, T)) for each stage])``.
    """
    from audiotools import AudioSignal

    signal = AudioSignal(audio.unsqueeze(0).float(), sample_rate)
    signal.resample(model.sample_rate)
    if normalize_db is not None:
        signal.normalize(normalize_db)
    signal.ensure_max_of_audio()
    x = signal.audio_data.reshape(-1, 1, signal.signal_length).to(model.device)
    x = model.preprocess(x, model.sample_rate)
    z = model.encoder(x)
    _, codes, latents, _, _ = model.quantizer(z, None)
    pairs, start = [], 0
    for i, vq in enumerate(model.quantizer.quantizers):
        d = vq.codebook_dim
        pairs.append((latents[:, start:start + d], vq.decode_code(codes[:, i])))
        start += d
    return codes, pairs
