"""The magnitude/phase diagnostics: hybrids that must be exact where the algebra says so."""
import numpy as np
import pytest
import torch

from dac_diveq.codec import diagnostics
from dac_diveq.codec.model import DiVeQDAC
from tests.conftest import TINY_DAC, run_python

SR = 16000


def _speechlike(seconds=1.0, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in range(1, 10))
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.01
    return (0.2 * wave * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) + noise).astype(np.float32)


def test_hybrids_of_a_signal_with_itself_are_the_signal():
    x = _speechlike()
    out = diagnostics.hybrids(x, x.copy())
    for name in ("codec", "codec_mag+ref_phase", "ref_mag+codec_phase"):
        assert np.abs(out[name] - x).max() < 1e-4, name
    # Griffin-Lim keeps the magnitudes but not the waveform
    assert np.abs(out["ref_mag+gl_phase"] - x).max() > 1e-2
    gl = diagnostics._stft(out["ref_mag+gl_phase"]).abs()
    ref = diagnostics._stft(x).abs()
    assert float((gl - ref).norm() / ref.norm()) < 0.5


def test_hybrids_take_the_magnitude_and_the_phase_from_where_their_names_say():
    x, y = _speechlike(seed=0), _speechlike(seed=1)[::-1].copy()
    out = diagnostics.hybrids(x, y)
    sx, sy = diagnostics._stft(x), diagnostics._stft(y)
    mixed = diagnostics._stft(out["codec_mag+ref_phase"])
    # istft then stft is a projection: the hybrid's spectrum is close to, not equal to, the target
    target = sy.abs() * torch.exp(1j * sx.angle())
    assert float((mixed - target).norm() / target.norm()) < 0.8
    assert float((mixed.abs() - sy.abs()).norm()) < float((mixed.abs() - sx.abs()).norm())


def test_oracle_conditions_order_as_the_review_measured():
    from dac_diveq.metrics import speech

    x = np.concatenate([_speechlike(1.0, s) for s in range(4)])
    out = diagnostics.oracle_conditions(x, SR)
    pesq = {k: speech.pesq_wb(x, v, SR) for k, v in out.items()}
    assert pesq["exact_mag+gl_phase"] > pesq["exact_mag+random_phase"]
    assert pesq["exact_phase+mag_x_N(0,6dB)"] > pesq["exact_phase+mag_x_N(0,10dB)"]


@pytest.mark.slow  # launches the script
def test_diagnose_script_scores_every_hybrid_of_a_codec(tmp_path):
    import soundfile as sf

    torch.manual_seed(0)
    DiVeQDAC(**TINY_DAC).save(str(tmp_path / "weights.pth"), package=False)
    (tmp_path / "ref").mkdir()
    sf.write(tmp_path / "ref" / "a.wav", _speechlike(1.5), SR)
    result = run_python(["scripts/diagnose.py", "--weights_path", tmp_path / "weights.pth", "--input",
                         tmp_path / "ref", "--output", tmp_path / "d.csv"])
    assert result.returncode == 0, result.stderr[-2000:]
    for name in diagnostics.HYBRIDS:
        assert f"| {name} |" in result.stdout
    assert len((tmp_path / "d.csv").read_text().strip().splitlines()) == 1 + len(diagnostics.HYBRIDS)
