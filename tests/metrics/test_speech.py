"""Speech metrics on real speech: identity, heavy noise, and ordering under increasing noise."""
import numpy as np
import pytest

from dac_diveq.metrics import speech as m


def _noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(x)).astype(np.float32)
    return x + noise * np.sqrt(np.mean(x ** 2) / 10 ** (snr_db / 10))


def test_identity_scores_are_maximal(speech):
    x, sr = speech
    assert m.pesq_wb(x, x, sr) == pytest.approx(4.64, abs=0.01)
    assert m.pesq_nb(x, x, sr) > 4.4
    assert m.stoi(x, x, sr) == pytest.approx(1.0, abs=1e-3)
    assert m.stoi(x, x, sr, extended=True) == pytest.approx(1.0, abs=1e-3)
    assert m.visqol(x, x, sr) >= 4.5
    assert m.si_sdr(x, x) > 60
    assert m.mel_distance(x, x, sr) == pytest.approx(0.0, abs=1e-6)
    assert m.stft_distance(x, x, sr) == pytest.approx(0.0, abs=1e-6)


def test_heavy_noise_scores_low(speech):
    x, sr = speech
    y = _noisy(x, -10.0)
    assert m.pesq_wb(x, y, sr) < 1.5
    assert m.pesq_nb(x, y, sr) < 2.0
    assert m.stoi(x, y, sr) < 0.75
    assert m.stoi(x, y, sr, extended=True) < 0.4
    assert m.visqol(x, y, sr) < 2.0
    assert m.si_sdr(x, y) == pytest.approx(-10.0, abs=1.0)
    assert m.mel_distance(x, y, sr) > 1.0


def test_monotone_in_snr(speech):
    # ViSQOL's lattice mapping saturates at MOS 1.0 below about 25 dB SNR of white noise,
    # so the three levels are chosen above that.
    x, sr = speech
    ys = [_noisy(x, snr) for snr in (50.0, 35.0, 25.0)]
    higher_better = {
        "pesq_wb": lambda y: m.pesq_wb(x, y, sr),
        "pesq_nb": lambda y: m.pesq_nb(x, y, sr),
        "stoi": lambda y: m.stoi(x, y, sr),
        "estoi": lambda y: m.stoi(x, y, sr, extended=True),
        "visqol": lambda y: m.visqol(x, y, sr),
        "si_sdr": lambda y: m.si_sdr(x, y),
    }
    for name, fn in higher_better.items():
        values = [fn(y) for y in ys]
        assert values[0] > values[1] > values[2], (name, values)
    for fn in (m.mel_distance, m.stft_distance):
        values = [fn(x, y, sr) for y in ys]
        assert values[0] < values[1] < values[2], (fn.__name__, values)


def test_visqol_mapping_is_reported():
    assert m.visqol_mapping() in ("lattice", "polynomial")


def test_score_collects_errors_instead_of_raising(speech):
    x, sr = speech
    values, errors = m.score(x, x[:100], sr)  # far too short for PESQ / STOI
    assert set(values) == set(m.INTRUSIVE)
    assert "pesq_wb" in errors and np.isnan(values["pesq_wb"])


def test_dnsmos_is_in_range(speech):
    x, sr = speech
    d = m.dnsmos(x, sr)
    assert set(d) == {"ovrl", "sig", "bak", "p808"}
    assert all(1.0 <= v <= 5.0 for v in d.values())


def test_raw_pesq_inverts_the_itu_mappings_by_hand():
    # P.862.2: 0.999 + 4 / (1 + exp(-1.3669 * 1.0 + 3.8224)) = 0.999 + 4 / 12.6526 = 1.31514...
    assert m.mos_lqo(1.0, "wb") == pytest.approx(0.999 + 4 / (1 + np.exp(2.4555)), abs=1e-12)
    assert m.mos_lqo(1.0, "wb") == pytest.approx(1.31515, abs=1e-5)
    # P.862.1 at raw 2.0: 0.999 + 4 / (1 + exp(-2.989 + 4.6607)) = 0.999 + 4 / 6.3208 = 1.6318...
    assert m.mos_lqo(2.0, "nb") == pytest.approx(1.63179, abs=1e-5)
    # The floor: raw -0.5 maps to 1.0427; 1.06 and 1.09, which look alike, are raw -0.253 and 0.046.
    assert m.mos_lqo(-0.5, "wb") == pytest.approx(1.0427, abs=1e-4)
    assert m.raw_pesq(1.06, "wb") == pytest.approx(-0.2527, abs=1e-4)
    assert m.raw_pesq(1.09, "wb") == pytest.approx(0.0455, abs=1e-4)
    for raw in (-0.5, 0.0, 1.7, 4.5):
        for mode in ("nb", "wb"):
            assert m.raw_pesq(m.mos_lqo(raw, mode), mode) == pytest.approx(raw, abs=1e-9)
    with pytest.raises(ValueError):
        m.raw_pesq(0.5, "wb")


def test_score_reports_the_raw_score_behind_each_pesq(speech):
    x, sr = speech
    values, errors = m.score(x, _noisy(x, 10.0), sr)
    assert not errors
    assert m.mos_lqo(values["pesq_wb_raw"], "wb") == pytest.approx(values["pesq_wb"], abs=1e-5)
    assert m.mos_lqo(values["pesq_nb_raw"], "nb") == pytest.approx(values["pesq_nb"], abs=1e-5)
