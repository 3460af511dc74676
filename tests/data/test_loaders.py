"""Training data folders: every listed file's header is checked when the dataset is built."""
import numpy as np
import pytest
import soundfile as sf

from dac_diveq.data import bounds, loaders
from dac_diveq.errors import DataError


def _speech_folder(root, n=2):
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    for i in range(n):
        sf.write(root / f"ok{i}.wav", (0.3 * np.sin(2 * np.pi * (150 + 20 * i) * t)).astype(np.float32), 16000)
    return root


def test_a_folder_of_good_files_builds(tmp_path):
    dataset = loaders.build_dataset({"speech": [str(_speech_folder(tmp_path / "speech"))]}, 16000)
    assert len(dataset) > 0


@pytest.mark.parametrize("rate, needle", [
    (8, "sample rate 8 Hz is outside 1000..384000 Hz"),
    (383993, "resampling 383993 Hz to 16000 Hz would take"),
])
def test_a_header_out_of_bounds_is_refused_when_the_dataset_is_built(tmp_path, rate, needle):
    folder = _speech_folder(tmp_path / "speech")
    sf.write(folder / "odd.wav", np.zeros(8000, np.float32) + 0.1, rate)
    with pytest.raises(DataError) as err:
        loaders.build_dataset({"speech": [str(folder)]}, 16000)
    message = str(err.value)
    assert message.startswith(f"{folder / 'odd.wav'} (speech): ") and needle in message and "\n" not in message


def test_a_corrupt_audio_file_is_refused_when_the_dataset_is_built(tmp_path):
    folder = _speech_folder(tmp_path / "speech")
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all")
    with pytest.raises(DataError, match=r"broken\.wav \(speech\) cannot be read as audio"):
        loaders.build_dataset({"speech": [str(folder)]}, 16000)


def test_the_header_bounds_agree_with_a_hand_count():
    # 44.1 kHz -> 16 kHz: gcd 100, 441 -> 160; width ceil(24 * 441 / (160 * 0.945)) = 70; 160 * (140 + 441).
    assert bounds.resampling_taps(44100, 16000) == 92960
    assert bounds.header_problem(16000, bounds.MAX_SAMPLES, 1) is None
    assert "exceed" in bounds.header_problem(16000, bounds.MAX_SAMPLES + 1, 1)
    assert "exceed" in bounds.header_problem(8000, bounds.MAX_SAMPLES // 2 + 1, 1, model_rate=16000)
