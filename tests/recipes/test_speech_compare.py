"""The comparison recipe's command line (its training/evaluation/report steps are tested in
tests/codec, tests/scripts; the full recipe runs in minutes, see reports/)."""
import pytest

from tests.conftest import run_python

pytestmark = pytest.mark.slow  # launches the recipe


def _run(*args):
    return run_python(["recipes/speech_compare.py", *args], timeout=120)


def test_refuses_to_overwrite_an_existing_report(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    result = _run("--report", str(report), "--root", str(tmp_path / "runs"))
    assert result.returncode == 2 and "--force" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing was trained


def test_unknown_method_is_a_one_line_error(tmp_path):
    result = _run("--methods", "ste", "vqvae", "--report", str(tmp_path / "r"), "--root", str(tmp_path / "runs"))
    assert result.returncode == 2 and "unknown methods" in result.stderr and "Traceback" not in result.stderr
