"""The comparison recipe's command line (its training/evaluation/report steps are tested in
tests/codec, tests/scripts; the full recipe runs in minutes, see reports/)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args):
    return subprocess.run([sys.executable, "recipes/speech_compare.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_refuses_to_overwrite_an_existing_report(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    result = _run("--report", str(report), "--root", str(tmp_path / "runs"))
    assert result.returncode == 2 and "--force" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing was trained


def test_unknown_method_is_a_one_line_error(tmp_path):
    result = _run("--methods", "ste", "vqvae", "--report", str(tmp_path / "r"), "--root", str(tmp_path / "runs"))
    assert result.returncode == 2 and "unknown methods" in result.stderr and "Traceback" not in result.stderr
