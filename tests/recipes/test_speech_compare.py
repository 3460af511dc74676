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


def test_kept_evaluations_carry_their_training_curves(tmp_path):
    import importlib
    import sys

    from torch.utils.tensorboard import SummaryWriter

    from tests.conftest import ROOT as REPO

    sys.path.insert(0, str(REPO / "recipes"))
    try:
        recipe = importlib.import_module("speech_compare")
    finally:
        sys.path.remove(str(REPO / "recipes"))
    run, eval_dir = tmp_path / "run", tmp_path / "run" / "eval"
    eval_dir.mkdir(parents=True)
    (eval_dir / "per_file.csv").write_text("file,n_quantizers,stoi\na.wav,12,0.7\n")
    (eval_dir / "summary.json").write_text('{"method": "diveq"}\n')
    writer = SummaryWriter(str(run / "logs"))
    for step, value in ((300, 0.6), (600, 0.7)):
        writer.add_scalar("val/stoi", value, step)
    writer.close()
    kept = recipe.keep_evaluation(eval_dir, run, tmp_path / "report" / "runs" / "diveq" / "seed0" / "eval")
    assert sorted(p.name for p in kept.iterdir()) == ["curves.json", "per_file.csv", "summary.json"]
    assert '"val/stoi"' in (kept / "curves.json").read_text()
