"""A named pipe (or anything that is not a regular file) where a user's file is expected is refused
in one line before it is opened: opening a FIFO blocks until something writes to it, so each probe
runs in a child with a timeout (a regression fails the test, it does not hang the suite). Also: a
regular file named ``latest`` is named as such (not "does not exist"), a data folder holding a FIFO
is refused before training, and a newline in a file name keeps the error one line."""
import os
import shutil
from pathlib import Path

import pytest
import torch

from dac_diveq.codec.model import DiVeQDAC
from tests.codec.test_cli import write
from tests.conftest import TINY_DAC, run_python, tiny_codec_conf
from tests.reliability.test_entry_points import assert_one_line_error, codec_run, speech  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow  # launches the entry points

TIMEOUT = 120  # far above what any refusal takes; a blocked open would run into it


def fifo(path: Path) -> Path:
    """A named pipe at ``path`` (what replaced the file), parents created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)
    return path


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a run folder whose checkpoint folders are real copies (a FIFO put in one does not
    change the fixture's)."""
    shutil.copytree(run, to, symlinks=True)
    return to


def train(speech_root: Path, *args, timeout=TIMEOUT):
    return run_python(["scripts/train.py", "--args.load", speech_root / "diveq.yml", *args], timeout=timeout)


def test_info_refuses_a_fifo_named_dac_or_pth_at_once(tmp_path):
    for name in ("codes.dac", "weights.pth"):
        pipe = fifo(tmp_path / name)
        result = run_python(["-m", "dac_diveq", "info", pipe], timeout=TIMEOUT)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {pipe}: ") and "a named pipe" in lines[0], lines


def test_decode_refuses_a_fifo_as_weights_inside_a_run_folder(tmp_path):
    run = tmp_path / "run"
    fifo(run / "latest" / "diveqdac" / "weights.pth")
    codes = tmp_path / "x.dac"
    codes.write_bytes(b"")
    result = run_python(["-m", "dac_diveq", "decode", codes, "--output", tmp_path / "out", "--weights_path", run],
                        timeout=TIMEOUT)
    assert result.returncode == 1 and "is not a regular file (a named pipe)" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_resume_refuses_a_fifo_as_trainer_state(speech, codec_run, tmp_path):  # noqa: F811
    run = copy_run(codec_run, tmp_path / "run")
    before = os.path.realpath(run / "latest")
    fifo(run / "latest" / "trainer.pth")
    result = train(speech, "--save_path", run, "--num_iters", "3", "--resume", "true")
    assert_one_line_error(result, "trainer.pth", "not a regular file: a named pipe")
    assert os.path.realpath(run / "latest") == before  # nothing trained, nothing saved


@pytest.mark.parametrize("resume", ["true", "auto", "false"])
def test_a_regular_file_named_latest_is_named_before_training(speech, tmp_path, resume):  # noqa: F811
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest").write_text("my notes\n")
    result = train(speech, "--save_path", run, "--resume", resume)
    assert_one_line_error(result, f"{run / 'latest'} is a regular file, not a checkpoint")
    assert (run / "latest").read_text() == "my notes\n" and not (run / ".checkpoints").exists()


def test_a_fifo_in_a_training_data_folder_is_refused_before_training(speech, tmp_path):  # noqa: F811
    data = tmp_path / "train"
    shutil.copytree(speech / "train", data)
    pipe = fifo(data / "stuck.wav")
    conf = tmp_path / "conf.yml"
    conf.write_text(tiny_codec_conf("diveq", data, speech / "val"))
    result = run_python(["scripts/train.py", "--args.load", conf, "--save_path", tmp_path / "run"], timeout=TIMEOUT)
    assert_one_line_error(result, f"{pipe} (speech) is not a regular file (a named pipe)")
    assert not (tmp_path / "run" / ".checkpoints").exists()


def test_a_fifo_as_configuration_file_is_refused(tmp_path):
    pipe = fifo(tmp_path / "conf.yml")
    result = run_python(["scripts/train.py", "--args.load", pipe, "--save_path", tmp_path / "run"], timeout=TIMEOUT)
    assert_one_line_error(result, f"configuration file {pipe} is not a regular file (a named pipe)")


def test_evaluate_refuses_a_fifo_trainer_state_beside_the_weights(speech, codec_run, tmp_path):  # noqa: F811
    run = copy_run(codec_run, tmp_path / "run")
    for tag in ("best", "latest"):
        fifo(Path(os.path.realpath(run / tag)) / "trainer.pth")
    result = run_python(["scripts/evaluate.py", "--weights_path", run, "--input", speech / "val",
                         "--output", tmp_path / "eval", "--device", "cpu"], timeout=TIMEOUT)
    assert_one_line_error(result, "trainer.pth", "not a regular file: a named pipe")
    assert not (tmp_path / "eval").exists()


def test_evaluate_image_refuses_a_fifo_trainer_state_beside_the_weights(tmp_path):
    from dac_diveq.image.vqvae import VQVAE

    run = tmp_path / "run"
    (run / "latest" / "vqvae").mkdir(parents=True)
    VQVAE(channels=16, res_channels=8, n_down=2, n_res_blocks=1, codebook_dim=8, codebook_size=16).save(
        str(run / "latest" / "vqvae" / "weights.pth"), package=False)
    fifo(run / "latest" / "trainer.pth")
    result = run_python(["scripts/evaluate_image.py", "--weights_path", run, "--output", tmp_path / "eval",
                         "--device", "cpu"], timeout=TIMEOUT)
    assert_one_line_error(result, "trainer.pth", "not a regular file: a named pipe")
    assert not (tmp_path / "eval").exists()


def test_a_newline_in_a_file_name_keeps_the_error_one_line(tmp_path):
    torch.manual_seed(0)
    DiVeQDAC(**TINY_DAC).save(str(tmp_path / "w.pth"), package=False)
    odd = write(tmp_path / "two\nlines.wav", channels=6)
    result = run_python(["-m", "dac_diveq", "encode", odd, "--output", tmp_path / "out", "--weights_path",
                         tmp_path / "w.pth"], timeout=TIMEOUT)
    errors = [line for line in result.stderr.splitlines() if "6 channels" in line]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith(f"error: {tmp_path}/two\\nlines.wav: 6 channels"), errors
    missing = tmp_path / "no\nsuch.yml"
    result = run_python(["scripts/train.py", "--args.load", missing, "--save_path", tmp_path / "run"], timeout=TIMEOUT)
    assert_one_line_error(result, "no\\nsuch.yml")


def test_score_decoded_refuses_a_fifo_among_the_decoded_files(tmp_path):
    """The scoring helper of ``make quickstart`` reads through the same checked reader as encode."""
    import numpy as np
    import soundfile

    reference, decoded = tmp_path / "ref", tmp_path / "dec"
    reference.mkdir()
    tone = 0.1 * np.sin(np.linspace(0, 2000, 16000)).astype("float32")
    soundfile.write(reference / "a.wav", tone, 16000)
    pipe = fifo(decoded / "a.wav")
    result = run_python(["scripts/score_decoded.py", reference, decoded], timeout=TIMEOUT)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {pipe}: ") and "named pipe" in lines[0], lines
