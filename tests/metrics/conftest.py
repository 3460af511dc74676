"""Real speech for the metric tests: CMU ARCTIC a0007 from data/ when present, else espeak-ng."""
import shutil

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT

ARCTIC = ROOT / "data" / "speech" / "test_real" / "arctic_a0007.wav"


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> tuple[np.ndarray, int]:
    """``(16 kHz mono float32 speech, 16000)``."""
    if ARCTIC.is_file():
        audio, sr = sf.read(ARCTIC, dtype="float32")
        if sr == 16000 and audio.ndim == 1:
            return audio, sr
    if shutil.which("espeak-ng") is None:
        pytest.fail("needs data/speech/test_real/arctic_a0007.wav or espeak-ng (apt-get install espeak-ng)")
    from dac_diveq.data.synth import synthesize
    from dac_diveq.data.voices import VoiceSetting

    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    synthesize("The quick brown fox jumps over the lazy dog, then rests beside the river bank.",
               VoiceSetting(engine="espeak-ng", voice="en-us", rate=150), path)
    audio, sr = sf.read(path, dtype="float32")
    return audio, sr
