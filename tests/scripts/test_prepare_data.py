"""scripts/prepare_data.py --corpus end to end (local copy, download), its one-line errors, and what
scripts/train.py does with the GPU confs' real-corpus data: one line naming the command when it is
missing, two training steps on a tiny prepared corpus, never a held-out test set."""
import json
from pathlib import Path

import argbind
import pytest
import yaml

from tests.conftest import ROOT, load_script, make_fake_corpus, run_python

#: Tiny model, losses and budget over a GPU conf (its data keys untouched: they are under test).
TINY_OVER_GPU_CONF = {
    "DiVeQDAC.encoder_dim": 8, "DiVeQDAC.decoder_dim": 32, "DiVeQDAC.n_codebooks": 3, "DiVeQDAC.codebook_size": 64,
    "Discriminator.rates": [], "Discriminator.periods": [2], "Discriminator.fft_sizes": [256],
    "Discriminator.bands": [[0.0, 0.5], [0.5, 1.0]],
    "MelSpectrogramLoss.n_mels": [20, 40], "MelSpectrogramLoss.window_lengths": [128, 512],
    "MelSpectrogramLoss.mel_fmin": [0, 0], "MelSpectrogramLoss.mel_fmax": [None, None],
    "MultiScaleSTFTLoss.window_lengths": [512, 128],
    "batch_size": 2, "val_batch_size": 2, "num_iters": 2, "valid_freq": 2, "sample_freq": 0, "log_freq": 1,
    "save_iters": [], "num_workers": 0, "amp": "none", "val_idx": [0], "save_every": 0, "allow_cpu": True,
    "train/AudioDataset.duration": 0.2, "val/AudioDataset.duration": 0.4, "val/AudioDataset.n_examples": 2,
}


def _main(argv, capsys):
    status = load_script("prepare_data").main([str(a) for a in argv])
    return status, capsys.readouterr().err


def _workdir(tmp_path: Path) -> Path:
    """A working directory with the repository's confs and no prepared data (``data/`` is relative)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "conf").symlink_to(ROOT / "conf")
    return work


def test_a_local_copy_is_prepared_through_the_script(tmp_path, capsys):
    source = make_fake_corpus("vctk", tmp_path / "VCTK-Corpus-0.92")
    status, err = _main(["--corpus", "vctk", "--source", source, "--sample_rate", "16000", "24000",
                         "--output", tmp_path / "out", "--workers", "1", "--no_progress"], capsys)
    assert status == 0, err
    for rate in (16000, 24000):
        assert sorted(p.name for p in (tmp_path / "out" / "vctk" / str(rate)).iterdir()) == [
            "manifest.json", "test", "train", "val"]
    assert json.loads((tmp_path / "out" / "vctk" / "provenance.json").read_text())["licence"] == "CC BY 4.0"
    again, err = _main(["--corpus", "vctk", "--source", source, "--output", tmp_path / "out", "--no_progress"], capsys)
    assert again == 0 and "already prepared" in err


def test_the_download_path_through_the_script(fake_daps_server, tmp_path, capsys):
    status, err = _main(["--corpus", "daps", "--download", "--output", tmp_path / "out", "--workers", "1",
                         "--no_progress"], capsys)
    assert status == 0, err
    assert "to download" in err.splitlines()[0]  # the sizes come first
    assert (tmp_path / "out" / ".downloads" / "daps" / "daps.tar.gz").is_file()
    assert len(list((tmp_path / "out" / "daps" / "16000" / "train").rglob("*.flac"))) == 4


@pytest.mark.parametrize("argv, message", [
    (["--corpus", "librispeech", "--source", "nowhere"], "--source nowhere is not a folder"),
    (["--corpus", "librispeech", "--source", ".", "--sample_rate", "48000"], "librispeech is recorded at 16000 Hz"),
    (["--corpus", "vctk"], "give either --source PATH"),
    (["--source", "somewhere"], "--source, --download and --subsets need --corpus NAME"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, argv, message):
    result = run_python(["scripts/prepare_data.py", *argv, "--output", tmp_path / "out"], timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"prepare_data: error: {message}")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # launches the training script
@pytest.mark.parametrize("conf, command", [
    ("conf/diveq.yml", "python scripts/prepare_data.py --corpus libritts --download`"),
    ("conf/24khz/ste.yml", "python scripts/prepare_data.py --corpus libritts --download --sample_rate 24000`"),
    ("conf/44khz/sf_diveq.yml", "python scripts/prepare_data.py --corpus vctk --download --sample_rate 44100`"),
])
def test_a_gpu_conf_without_its_corpus_says_what_to_run_in_one_line(tmp_path, conf, command):
    work = _workdir(tmp_path)
    result = run_python([ROOT / "scripts" / "train.py", "--args.load", conf, "--allow_cpu", "true",
                         "--save_path", tmp_path / "run"], cwd=work, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert lines[0].startswith("error: data folder 'data/corpora/") and command in lines[0]
    assert "GB to download" in lines[0] and not (tmp_path / "run").exists()
    assert not (work / "data").exists()  # no fall-back preparation of the embedded speech either


@pytest.mark.slow  # prepares a corpus and trains through the script
def test_two_training_steps_of_the_gpu_conf_on_a_tiny_prepared_corpus(tmp_path):
    work = _workdir(tmp_path)
    source = make_fake_corpus("libritts", tmp_path / "src", seconds=1.0)
    prepared = run_python([ROOT / "scripts" / "prepare_data.py", "--corpus", "libritts", "--source", source,
                           "--subsets", "train-clean-100", "dev-clean", "test-clean", "--workers", "1",
                           "--no_progress"], cwd=work, timeout=300)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    conf = tmp_path / "tiny_gpu.yml"
    conf.write_text(yaml.safe_dump({"$include": ["conf/diveq.yml"], **TINY_OVER_GPU_CONF}, sort_keys=False))
    result = run_python([ROOT / "scripts" / "train.py", "--args.load", conf, "--save_path", tmp_path / "run"],
                        cwd=work, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "latest" / "diveqdac" / "weights.pth").is_file()
    import torch

    state = torch.load(tmp_path / "run" / "latest" / "trainer.pth", weights_only=False)
    # Two steps, on the GPU conf's own data: the prepared corpus.
    assert state["step"] == 2 and "data/corpora/libritts/16000/train" in state["config"]
    assert "data/speech" not in state["config"]


@pytest.mark.slow  # launches the training script
def test_training_on_a_held_out_test_set_is_refused(tmp_path):
    work = _workdir(tmp_path)
    source = make_fake_corpus("libritts", tmp_path / "src")
    assert run_python([ROOT / "scripts" / "prepare_data.py", "--corpus", "libritts", "--source", source,
                       "--subsets", "train-clean-100", "dev-clean", "test-clean", "--no_progress"],
                      cwd=work, timeout=300).returncode == 0
    result = run_python([ROOT / "scripts" / "train.py", "--args.load", "conf/diveq.yml", "--allow_cpu", "true",
                         "--save_path", tmp_path / "run", "--train/build_dataset.folders",
                         "{speech: [data/corpora/libritts/16000/test]}"], cwd=work, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "held-out test set" in lines[0], result.stderr[-2000:]


def test_no_shipped_conf_trains_or_validates_on_a_test_set(monkeypatch):
    monkeypatch.chdir(ROOT)  # $include paths are relative to the repository root
    confs = sorted(p for p in (ROOT / "conf").rglob("*.yml") if "image" not in p.parts)
    assert len(confs) > 40
    for conf in confs:
        args = argbind.load_args(str(conf))
        for key in ("train/build_dataset.folders", "val/build_dataset.folders"):
            for folders in (args.get(key) or {}).values():
                for folder in folders:
                    parts = Path(folder).parts
                    assert not {"test", "test_list", "test_real", "dev"} & set(parts), (conf, key, folder)
