"""The audiotools <-> torchaudio shim, exercised on real files with real audiotools code."""
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from audiotools import AudioSignal
from audiotools.core import util as at_util
from audiotools.data.datasets import AudioDataset, AudioLoader

from dac_diveq.data import compat
from tests.conftest import run_python

TORCHAUDIO_HAS_INFO = hasattr(torchaudio, "info")
compat.patch_audiotools()  # as the data loaders and the codec package do before reading audio


def speech_like(sample_rate, seconds, seed, channels=1):
    """Voiced 'syllables': harmonic tone with gliding F0 and a ~4 Hz envelope, separated by silences."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 16) if k * 150 < sample_rate / 2)
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 0.5
    gate = np.ones(n)
    for start in np.arange(0.6, seconds, 1.1):  # 0.25 s pauses
        gate[int(start * sample_rate): int((start + 0.25) * sample_rate)] = 0.0
    x = 0.3 * voiced * envelope * gate + 1e-3 * rng.standard_normal(n)
    x = x / np.abs(x).max() * 0.5
    if channels > 1:
        x = np.stack([x * (1.0 - 0.3 * c) for c in range(channels)], axis=1)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    files = {
        "a16k.wav": (16000, 3.0, 1),
        "b16k.wav": (16000, 2.5, 1),
        "c44k.wav": (44100, 3.2, 1),
        "d44k_stereo.wav": (44100, 2.0, 2),
    }
    for i, (name, (sr, sec, ch)) in enumerate(files.items()):
        sf.write(root / name, speech_like(sr, sec, seed=i, channels=ch), sr, subtype="PCM_16")
    return root, files


def test_premise_and_idempotence(audio_dir):
    root, _ = audio_dir
    if TORCHAUDIO_HAS_INFO:
        # torchaudio re-added info: the shim must stay out of the way.
        assert not getattr(at_util.info, "_dac_diveq_shim", False)
        assert compat.patch_audiotools() is False
        assert not compat.shim_active()
        return
    # The premise: audiotools' own info cannot work with this torchaudio.
    assert compat._ORIGINAL_INFO is not None
    with pytest.raises(AttributeError):
        compat._ORIGINAL_INFO(str(root / "a16k.wav"))
    assert at_util.info is compat.audio_info
    assert compat.shim_active()
    assert compat.patch_audiotools() is True
    assert compat.patch_audiotools() is True
    assert at_util.info is compat.audio_info


@pytest.mark.parametrize(
    "name,sr,sec,ch",
    [("a16k.wav", 16000, 3.0, 1), ("c44k.wav", 44100, 3.2, 1), ("d44k_stereo.wav", 44100, 2.0, 2)],
)
def test_info_values(audio_dir, name, sr, sec, ch):
    root, _ = audio_dir
    info = at_util.info(root / name)  # a Path, as AudioLoader may pass
    assert info.sample_rate == sr
    assert info.num_frames == int(sec * sr)
    assert math.isclose(info.duration, int(sec * sr) / sr)
    if not TORCHAUDIO_HAS_INFO:
        assert info.num_channels == ch
        assert compat.audio_info(str(root / name)) == info


def test_info_errors(tmp_path):
    missing = tmp_path / "nope" / "missing.wav"
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        compat.audio_info(missing)
    bogus = tmp_path / "not_audio.wav"
    bogus.write_text("this is not a wav file\n")
    with pytest.raises(RuntimeError, match="not_audio.wav"):
        compat.audio_info(bogus)
    with pytest.raises(RuntimeError, match="directory"):
        compat.audio_info(tmp_path)


def test_excerpt_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        AudioSignal.excerpt(str(tmp_path / "missing.wav"), duration=0.5)


@pytest.mark.parametrize("name,sr", [("a16k.wav", 16000), ("c44k.wav", 44100), ("d44k_stereo.wav", 44100)])
def test_salient_excerpt(audio_dir, name, sr):
    root, _ = audio_dir
    path = str(root / name)
    sig = AudioSignal.salient_excerpt(path, loudness_cutoff=-40, num_tries=None, duration=0.5, state=0)
    n = int(0.5 * sr)
    assert sig.sample_rate == sr
    assert sig.signal_length == n
    assert math.isclose(sig.signal_duration, 0.5, rel_tol=1e-6)
    assert sig.loudness().item() > -40
    # The excerpt is the file's content at the reported offset.
    data, file_sr = sf.read(path, dtype="float32", always_2d=True)
    start = int(sig.metadata["offset"] * sr)
    expected = torch.from_numpy(data[start: start + n].T)
    assert torch.allclose(sig.audio_data[0], expected, atol=1e-6)


def test_excerpt_bounds(audio_dir):
    root, _ = audio_dir
    path = str(root / "b16k.wav")
    offsets = []
    for seed in range(20):
        sig = AudioSignal.excerpt(path, offset=1.0, duration=0.5, state=seed)
        assert sig.sample_rate == 16000
        assert sig.signal_length == 8000
        offsets.append(sig.metadata["offset"])
    assert min(offsets) >= 1.0 and max(offsets) <= 2.5 - 0.5
    assert len(set(offsets)) > 1  # actually random, i.e. the total duration was read


@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_loader_dataset_batch(audio_dir, sample_rate):
    root, files = audio_dir
    loader = AudioLoader(sources=[str(root)], ext=[".wav"])
    assert sum(len(x) for x in loader.audio_lists) == len(files)
    dataset = AudioDataset(loader, sample_rate, n_examples=6, duration=0.5, loudness_cutoff=-40)
    dl = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=0, collate_fn=AudioDataset.collate)
    batches = list(dl)
    assert len(batches) == 2
    for batch in batches:
        signal = batch["signal"]
        assert isinstance(signal, AudioSignal)
        assert signal.sample_rate == sample_rate
        assert tuple(signal.audio_data.shape) == (3, 1, int(0.5 * sample_rate))
        assert torch.isfinite(signal.audio_data).all()
        assert signal.audio_data.abs().amax(dim=-1).min() > 0.01  # real audio, not zero padding
        assert all(Path(p).parent == root for p in signal.path_to_file)


def test_the_loaders_apply_the_shim_without_the_codec(audio_dir):
    """``data/loaders.py`` needs the shim and applies it itself: a fresh interpreter that imports
    neither ``dac_diveq.codec`` nor the shim builds a dataset and draws an excerpt."""
    root, _ = audio_dir
    code = ("import sys\n"
            "from audiotools.data.datasets import AudioDataset, AudioLoader\n"
            "from dac_diveq.data import loaders\n"
            f"data = loaders.build_dataset({{'speech': [{str(root)!r}]}}, 16000, None, AudioLoader,\n"
            "                              lambda loader, sr, transform: AudioDataset(loader, sr, n_examples=2,\n"
            "                                                                         duration=0.5, transform=transform))\n"
            "assert data[0]['signal'].signal_length == 8000\n"
            "assert 'dac_diveq.codec' not in sys.modules, 'the codec was imported'\n")
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr[-2000:]
