"""Bugs are bugs, user errors are user errors: a training entry point prints a
:class:`~dac_diveq.errors.UserError` as one line (exit 2) and lets anything else raise with its
traceback; ``--debug`` / ``DAC_DIVEQ_DEBUG=1`` show a user error's traceback too."""
import io
import sys

import pytest

from dac_diveq import errors
from dac_diveq.codec.finetune import FinetuneError
from dac_diveq.codec.codec_io import InputError
from dac_diveq.data.corpora import CorpusError
from dac_diveq.data.images import ImageDataError
from dac_diveq.data.loaders import DataError
from dac_diveq.metrics.image import WeightsFormatError, WeightsNotFoundError
from dac_diveq.quantize import Quantizer
from dac_diveq.report.eval_io import EvalError
from dac_diveq.training import config
from dac_diveq.training.checkpoint import CheckpointError, UntrustedFileError
from dac_diveq.training.entry import run_training
from tests.conftest import run_python, tiny_codec_conf

BUG = "too many values to unpack (expected 2)"


@pytest.mark.parametrize("error", [config.ConfigError, DataError, ImageDataError, CorpusError, CheckpointError,
                                   UntrustedFileError, FinetuneError, InputError, EvalError,
                                   WeightsFormatError, WeightsNotFoundError])
def test_every_typed_error_is_a_user_error(error):
    assert issubclass(error, errors.UserError)


def test_typed_errors_keep_the_builtin_type_callers_catch():
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.DataError, ValueError)
    assert issubclass(WeightsNotFoundError, FileNotFoundError) and issubclass(CheckpointError, RuntimeError)


def test_a_bad_quantizer_option_is_a_config_error():
    with pytest.raises(errors.ConfigError, match="noise_var"):
        Quantizer(16, 4, "diveq", noise_var=-1.0)


def test_debug_flag_is_taken_out_of_the_command_line(monkeypatch):
    monkeypatch.delenv(errors.DEBUG_VARIABLE, raising=False)
    argv = ["train.py", "--debug", "--num_iters", "2"]
    assert errors.pop_debug_flag(argv) is True
    assert argv == ["train.py", "--num_iters", "2"]
    assert errors.pop_debug_flag(argv) is False


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_debug_variable(monkeypatch, value, expected):
    monkeypatch.setenv(errors.DEBUG_VARIABLE, value)
    assert errors.debug_requested([]) is expected


def test_report_is_one_line_unless_debugging():
    try:
        raise errors.ConfigError("--amp must be 'none', 'bf16' or 'auto'")
    except errors.ConfigError as exc:
        quiet, loud = io.StringIO(), io.StringIO()
        assert errors.report(exc, False, quiet) == errors.report(exc, True, loud) == 2
    assert quiet.getvalue() == "error: --amp must be 'none', 'bf16' or 'auto'\n"
    assert "Traceback" in loud.getvalue() and loud.getvalue().endswith(quiet.getvalue())


def test_run_training_lets_a_bug_raise_and_reports_a_user_error(monkeypatch, capsys):
    monkeypatch.delenv(errors.DEBUG_VARIABLE, raising=False)
    monkeypatch.setattr(sys, "argv", ["train.py"])

    def buggy(args):
        raise ValueError(BUG)

    with pytest.raises(ValueError, match="too many values"):
        run_training(buggy)

    def refused(args):
        raise errors.DataError("data folder 'x' does not exist")

    assert run_training(refused) == 2
    assert capsys.readouterr().err == "error: data folder 'x' does not exist\n"


# --- Through scripts/train.py, as a user runs it ---

@pytest.fixture(scope="module")
def conf(tmp_path_factory):
    root = tmp_path_factory.mktemp("conf")
    for split in ("train", "val"):
        (root / split).mkdir()
    path = root / "diveq.yml"
    path.write_text(tiny_codec_conf("diveq", root / "train", root / "val"))
    return path


def _inject_bug_and_train(conf, save_path) -> list:
    """``python -c`` that makes a function of the training path raise a programming error, then
    runs ``scripts/train.py`` as ``__main__``."""
    code = ("import sys, runpy\n"
            "from dac_diveq.data import loaders\n"
            "def check_folders(*args, **kwargs):\n"
            f"    raise ValueError({BUG!r})\n"
            "loaders.check_folders = check_folders\n"
            f"sys.argv = ['scripts/train.py', '--args.load', {str(conf)!r}, '--save_path', {str(save_path)!r}]\n"
            "runpy.run_path('scripts/train.py', run_name='__main__')\n")
    return ["-c", code]


@pytest.mark.slow
def test_an_injected_bug_shows_its_traceback(conf, tmp_path):
    result = run_python(_inject_bug_and_train(conf, tmp_path / "run"), unset=[errors.DEBUG_VARIABLE])
    assert result.returncode not in (0, 2), result.stderr[-2000:]
    assert "Traceback" in result.stderr and f"ValueError: {BUG}" in result.stderr
    assert "error: " + BUG not in result.stderr


@pytest.mark.slow
def test_a_bad_option_stays_one_line(conf, tmp_path):
    result = run_python(["scripts/train.py", "--args.load", conf, "--save_path", tmp_path / "run", "--amp", "fp8"],
                        unset=[errors.DEBUG_VARIABLE])
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: amp must be")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["variable", "flag"])
def test_debugging_shows_a_user_errors_traceback(conf, tmp_path, how):
    args = ["scripts/train.py", "--args.load", conf, "--save_path", tmp_path / "run", "--amp", "fp8"]
    if how == "flag":
        result = run_python([*args, "--debug"], unset=[errors.DEBUG_VARIABLE])
    else:
        result = run_python(args, env={errors.DEBUG_VARIABLE: "1"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: amp must be")
