"""The compressed spectral loss and the gradient-norm measurement."""
import numpy as np
import pytest
import torch
from audiotools import AudioSignal

from dac_diveq.codec.losses import CompressedSpectralLoss, gradient_norms

SR = 16000


def _signal(seed=0, batch=2, seconds=0.5):
    g = torch.Generator().manual_seed(seed)
    return AudioSignal(torch.randn(batch, 1, int(SR * seconds), generator=g) * 0.1, SR)


def test_zero_for_identical_signals_and_positive_otherwise():
    loss = CompressedSpectralLoss()
    x, y = _signal(0), _signal(1)
    assert float(loss(x, x.clone())) == pytest.approx(0.0, abs=1e-10)
    assert float(loss(x, y)) > 0


def test_the_complex_term_sees_phase_and_the_magnitude_term_does_not():
    x = _signal(0)
    flipped = AudioSignal(-x.audio_data, SR)  # same magnitudes, phase shifted by pi
    magnitude_only = CompressedSpectralLoss(complex_weight=0.0)
    with_phase = CompressedSpectralLoss(complex_weight=1.0)
    assert float(magnitude_only(x, flipped)) == pytest.approx(0.0, abs=1e-8)
    assert float(with_phase(x, flipped)) > 1e-3


def test_compression_by_hand_at_one_bin():
    loss = CompressedSpectralLoss(window_lengths=[256], power=0.3, eps=0.0)
    audio = torch.randn(1, 1, 4096)
    compressed = loss.compressed(audio, 256)
    spec = torch.stft(audio.reshape(1, -1), 256, 64, window=torch.hann_window(256), return_complex=True)
    k = spec.abs().argmax()
    assert compressed.flatten()[k].abs() == pytest.approx(float(spec.flatten()[k].abs() ** 0.3), rel=1e-4)
    assert torch.angle(compressed.flatten()[k]) == pytest.approx(float(torch.angle(spec.flatten()[k])), abs=1e-5)


def test_bad_arguments_are_value_errors():
    for kwargs in ({"window_lengths": []}, {"power": 0}, {"complex_weight": 2}):
        with pytest.raises(ValueError):
            CompressedSpectralLoss(**kwargs)


def test_gradient_norms_match_autograd_on_a_quadratic():
    class Squared(torch.nn.Module):
        def forward(self, x, y):
            return ((x.audio_data - y.audio_data) ** 2).sum()

    x, y = _signal(0).audio_data, _signal(1).audio_data
    found = gradient_norms({"sq": Squared()}, x, y, SR)
    value, norm = found["sq"]
    assert value == pytest.approx(float(((x - y) ** 2).sum()), rel=1e-5)
    assert norm == pytest.approx(float((2 * (x - y)).norm()), rel=1e-5)  # d/dx (x - y)^2 = 2 (x - y)


@pytest.mark.slow  # launches the script
def test_loss_gradients_script_prints_every_term_and_its_share(tmp_path):
    import soundfile as sf

    from dac_diveq.codec.model import DiVeQDAC
    from tests.conftest import TINY_DAC, run_python

    torch.manual_seed(0)
    DiVeQDAC(**TINY_DAC).save(str(tmp_path / "w.pth"), package=False)
    (tmp_path / "dev").mkdir()
    for i in range(2):
        sf.write(tmp_path / "dev" / f"{i}.wav", _signal(i, 1, 1.0).audio_data[0, 0].numpy(), SR)
    result = run_python(["scripts/loss_gradients.py", "--conf", "conf/cpu/diveq.yml", "--weights_path",
                         tmp_path / "w.pth", "--input", tmp_path / "dev"])
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [l for l in result.stdout.splitlines() if l.startswith("| ") and "/loss" in l]
    assert [r.split("|")[1].strip() for r in rows] == ["mel/loss", "stft/loss", "waveform/loss", "spectral/loss"]
    shares = [float(r.split("|")[5].strip().rstrip("%")) for r in rows]
    assert sum(shares) == pytest.approx(100.0, abs=0.5) and shares[1] == 0.0  # stft/loss has weight 0 in conf/cpu
