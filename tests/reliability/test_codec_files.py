"""The codec command line's inputs and outputs: a FIFO named ``*.wav`` is skipped (never read, which
would block forever), six channels are refused in one line, a ``.dac`` file of another quantizer
method warns (``--strict`` refuses it), and every output respects the umask."""
import os
import stat

import pytest
import torch

from dac_diveq.codec.model import DiVeQDAC
from dac_diveq.report.eval_io import write_outputs
from dac_diveq.training.checkpoint import atomic_path
from tests.codec.test_cli import cli, write
from tests.conftest import TINY_DAC, run_python


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """DiVeQ and STE weights of the same shapes."""
    folder = tmp_path_factory.mktemp("models")
    for method in ("diveq", "ste"):
        torch.manual_seed(0)
        DiVeQDAC(**{**TINY_DAC, "method": method}).save(str(folder / f"{method}.pth"), package=False)
    return folder


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.slow  # a subprocess, so that a regression blocks a child with a timeout, not the suite
def test_a_fifo_in_an_input_folder_is_skipped_and_named(tmp_path, weights):
    src = tmp_path / "in"
    write(src / "one.wav")
    os.mkfifo(src / "pipe.wav")
    result = run_python(["-m", "dac_diveq", "encode", src, "--output", tmp_path / "out", "--weights_path",
                         weights / "diveq.pth"], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"note: {src / 'pipe.wav'}: not a regular file (a named pipe): skipped" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one.dac"]
    alone = run_python(["-m", "dac_diveq", "encode", src / "pipe.wav", "--output", tmp_path / "out2",
                        "--weights_path", weights / "diveq.pth"], timeout=120)
    assert alone.returncode == 1 and alone.stderr.strip() == f"error: {src / 'pipe.wav'}: not a regular file (a named pipe)"


def test_six_channels_are_refused_in_one_line_and_five_are_encoded(tmp_path, weights, capsys):
    five, six = write(tmp_path / "five.wav", channels=5), write(tmp_path / "six.wav", channels=6)
    status, _, err = cli(capsys, "encode", six, "--output", tmp_path / "out", "--weights_path", weights / "diveq.pth")
    assert status == 1 and len(err) == 1
    assert err[0].startswith(f"error: {six}: 6 channels: at most 5 can be encoded")
    assert not (tmp_path / "out" / "six.dac").exists()
    status, _, err = cli(capsys, "encode", five, "--output", tmp_path / "out", "--weights_path", weights / "diveq.pth")
    assert status == 0 and (tmp_path / "out" / "five.dac").is_file()


def test_decoding_codes_of_another_method_warns_and_strict_refuses(tmp_path, weights, capsys):
    wav = write(tmp_path / "x.wav")
    assert cli(capsys, "encode", wav, "--output", tmp_path / "codes", "--weights_path", weights / "diveq.pth")[0] == 0
    codes = tmp_path / "codes" / "x.dac"
    status, _, err = cli(capsys, "decode", codes, "--output", tmp_path / "same", "--weights_path", weights / "diveq.pth")
    assert status == 0 and err == []
    status, _, err = cli(capsys, "decode", codes, "--output", tmp_path / "other", "--weights_path", weights / "ste.pth")
    assert status == 0 and (tmp_path / "other" / "x.wav").is_file()
    assert err == [f"warning: {codes}: encoded by a diveq model, decoding with ste weights: the codes index "
                   "another model's codebooks"]
    status, _, err = cli(capsys, "decode", codes, "--output", tmp_path / "strict", "--weights_path",
                         weights / "ste.pth", "--strict")
    assert status == 1 and len(err) == 1 and err[0].startswith(f"error: {codes}: encoded by a diveq model")
    assert err[0].endswith("(refused: --strict)") and not (tmp_path / "strict").exists()


def test_dac_and_wav_outputs_respect_the_umask(tmp_path, weights, capsys, umask_022):
    wav = write(tmp_path / "x.wav")
    assert cli(capsys, "encode", wav, "--output", tmp_path / "codes", "--weights_path", weights / "diveq.pth")[0] == 0
    assert cli(capsys, "decode", tmp_path / "codes", "--output", tmp_path / "decoded", "--weights_path",
               weights / "diveq.pth")[0] == 0
    assert _mode(tmp_path / "codes" / "x.dac") == 0o644
    assert _mode(tmp_path / "decoded" / "x.wav") == 0o644


def test_evaluation_outputs_and_atomic_files_respect_the_umask(tmp_path, umask_022):
    write_outputs(tmp_path / "eval", [{"file": "a.wav", "pesq_wb": 1.0}], ["file", "pesq_wb"], {"domain": "speech"})
    assert _mode(tmp_path / "eval" / "per_file.csv") == 0o644 and _mode(tmp_path / "eval" / "summary.json") == 0o644
    os.umask(0o027)
    with atomic_path(tmp_path / "private.txt") as tmp:
        tmp.write_text("x")
    assert _mode(tmp_path / "private.txt") == 0o640
    with atomic_path(tmp_path / "explicit.txt", mode=0o600) as tmp:
        tmp.write_text("x")
    assert _mode(tmp_path / "explicit.txt") == 0o600
