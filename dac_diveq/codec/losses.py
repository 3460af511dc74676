"""Reconstruction losses beside DAC's (mel, multi-scale STFT, waveform L1): terms aimed at what PESQ
hears, the audible STFT magnitudes and a self-consistent phase.

:class:`CompressedSpectralLoss` compares power-law compressed spectra at several resolutions:
``|X|^c`` (magnitude) and ``|X|^c e^{i angle X}`` (the complex spectrum with compressed magnitude, which
also constrains phase), the compression ``c = 0.3`` of speech enhancement's losses. It plugs into
``lambdas`` as ``spectral/loss`` (``scripts/train.py``); a weight of 0 (the default) skips it.

No postponed annotations here: argbind reads the constructor's annotations to parse the command line.
"""
import torch
from audiotools import AudioSignal
from torch import nn

from ..errors import ConfigError


class CompressedSpectralLoss(nn.Module):
    """Multi-resolution compressed-magnitude and compressed-complex STFT loss.

    Args:
        window_lengths: STFT windows (Hann), hop a quarter of each.
        power: magnitude compression ``c`` (1: none).
        complex_weight: weight of the complex term against the magnitude term (1 - complex_weight).
        eps: added to magnitudes before compression (keeps its gradient finite at 0).
    """

    def __init__(self, window_lengths: list = [256, 512, 1024, 2048], power: float = 0.3,
                 complex_weight: float = 0.3, eps: float = 1e-8) -> None:
        super().__init__()
        if not window_lengths or any(int(w) < 16 for w in window_lengths):
            raise ConfigError(f"window_lengths must be STFT windows of at least 16 samples, got {list(window_lengths)}")
        if not 0 < power <= 1:
            raise ConfigError(f"power must lie in (0, 1], got {power}")
        if not 0 <= complex_weight <= 1:
            raise ConfigError(f"complex_weight must lie in [0, 1], got {complex_weight}")
        self.window_lengths = [int(w) for w in window_lengths]
        self.power, self.complex_weight, self.eps = float(power), float(complex_weight), float(eps)

    def compressed(self, audio: torch.Tensor, window: int) -> torch.Tensor:
        """``|X|^c e^{i angle X}`` of ``audio`` (``... x T``) at one resolution: ``... x F x frames`` complex."""
        flat = audio.reshape(-1, audio.shape[-1]).float()
        spec = torch.stft(flat, window, window // 4, window=torch.hann_window(window, device=audio.device),
                          return_complex=True)
        magnitude = spec.abs()
        scale = (magnitude + self.eps) ** self.power / (magnitude + self.eps)
        return spec * scale

    def forward(self, x: AudioSignal, y: AudioSignal) -> torch.Tensor:
        """The mean over resolutions of ``(1 - w) MSE(|X|^c, |Y|^c) + w MSE(X_c, Y_c)``.

        Args:
            x: the estimate (reconstruction).
            y: the reference.
        """
        total = x.audio_data.new_zeros(())
        for window in self.window_lengths:
            cx, cy = self.compressed(x.audio_data, window), self.compressed(y.audio_data, window)
            magnitude = torch.mean((cx.abs() - cy.abs()) ** 2)
            complex_term = torch.mean((cx - cy).abs() ** 2)
            total = total + (1 - self.complex_weight) * magnitude + self.complex_weight * complex_term
        return total / len(self.window_lengths)


def gradient_norms(terms: dict, estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int) -> dict:
    """Each loss term's value and the norm of its gradient at the decoder output.

    What an EnCodec-style balancer equalises: weights that give the terms comparable gradient norms
    at the output, rather than comparable values.

    Args:
        terms: ``{name: loss module taking (estimate, reference) AudioSignals}``.
        estimate: the decoder output (``B x 1 x T``; detached here).
        reference: the reference (same shape).
        sample_rate: of both.

    Returns:
        ``{name: (value, gradient norm)}``.
    """
    out = {}
    for name, loss in terms.items():
        leaf = estimate.detach().clone().requires_grad_(True)
        value = loss(AudioSignal(leaf, sample_rate), AudioSignal(reference.detach(), sample_rate))
        (grad,) = torch.autograd.grad(value, leaf)
        out[name] = (float(value), float(grad.norm()))
    return out
