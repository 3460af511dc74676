"""The held-out sets' building blocks: the narrowband check and the clip assembly."""
import json

import numpy as np
import pytest
import soundfile as sf

from dac_diveq.data import heldout
from tests.conftest import ROOT

SR = 16000


def _noise(seconds, seed=0):
    return np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32) * 0.1


def _lowpass(x, cutoff_hz):
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(len(x), 1 / SR) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, len(x)).astype(np.float32)


def test_narrowband_audio_is_recognised():
    wide = _noise(2.0)
    assert heldout.is_wideband(wide, SR) and heldout.band_energy_db(wide, SR) > -4
    narrow = _lowpass(wide, 3800)  # a telephone-band recording: nothing above 4 kHz
    assert not heldout.is_wideband(narrow, SR) and heldout.band_energy_db(narrow, SR) < heldout.NARROWBAND_DB
    assert not heldout.is_wideband(wide[::2], 8000)  # 8 kHz audio cannot be wideband
    with pytest.raises(ValueError):
        heldout.band_energy_db(np.zeros(100), SR)


def test_the_narrowband_registry_clip_is_refused_as_a_reference():
    """pyannote's sample (once 81 % of the test audio) has no energy above about 3.9 kHz."""
    clip = ROOT / "data" / "speech" / "test_real" / "pyannote_sample.wav"
    if not clip.is_file():  # prepared by the data tests and by every training or evaluation
        from dac_diveq.data.real import SOURCES, download_archive, extract_clip
        source = next(s for s in SOURCES if s.name == "pyannote_sample")
        out = ROOT / "data" / "speech" / "test_real"
        out.mkdir(parents=True, exist_ok=True)
        extract_clip(source, download_archive(source, ROOT / "data" / ".cache"), out)
    audio, sr = sf.read(str(clip), dtype="float32")
    assert not heldout.is_wideband(audio, sr)


def test_clips_are_8_to_12_seconds_of_one_speakers_utterances_in_order():
    rng = np.random.default_rng(0)
    utterances = [(f"u{i}", _noise(float(rng.uniform(0.4, 3.0)), i)) for i in range(60)]
    utterances.insert(5, ("too_long", _noise(13.0)))
    clips = heldout.make_clips(utterances, count=5)
    assert len(clips) == 5
    seen = []
    for audio, names in clips:
        assert heldout.CLIP_MIN_S <= audio.size / SR <= heldout.CLIP_MAX_S
        pauses = (len(names) - 1) * int(heldout.PAUSE_S * SR)
        assert audio.size == sum(dict(utterances)[n].size for n in names) + pauses
        seen += names
    assert "too_long" not in seen and seen == sorted(seen, key=lambda n: int(n[1:]))
    assert heldout.make_clips(utterances[:2], count=3) == []  # under 8 s in all: no clip


def test_every_speaker_is_in_one_set_and_the_ktuberling_lists_agree():
    from dac_diveq.data import ktuberling

    ids = [s.id for s in heldout.SPEAKERS]
    assert len(ids) == len(set(ids))
    assert {s.split for s in heldout.SPEAKERS} == set(heldout.SPLITS)
    assert set(heldout.KTUBERLING_TEST) == set(ktuberling.TEST_LANGUAGES)
    assert set(heldout.KTUBERLING_DEV) == set(ktuberling.DEFAULT_VAL_LANGUAGES)
    assert not set(ktuberling.TEST_LANGUAGES) & set(ktuberling.DEFAULT_VAL_LANGUAGES)
    from dac_diveq.data import asterisk
    held = {s.key for s in heldout.SPEAKERS if s.source == "asterisk"}
    assert not held & set(asterisk.TRAIN_FOLDERS)
    assert not {asterisk.VOICES[f].speaker for f in held} & {asterisk.VOICES[f].speaker for f in asterisk.TRAIN_FOLDERS}
