"""scripts/gpu_check.py: one line and status 0 without CUDA; its checks' plumbing at smoke sizes on the CPU
(the full check needs a GPU: `make gpu-check`)."""
import pytest

from tests.conftest import run_python


def test_without_cuda_it_fails_in_one_line_unless_allowed(tmp_path):
    """A GPU machine whose driver is broken must not pass: no CUDA is a failure unless --allow-no-gpu."""
    args = ["scripts/gpu_check.py", "--output", tmp_path / "report", "--work", tmp_path / "work"]
    result = run_python(args, env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no CUDA device found") and "--allow-no-gpu" in lines[0]
    allowed = run_python([*args, "--allow-no-gpu"], env={"CUDA_VISIBLE_DEVICES": ""})
    assert allowed.returncode == 0 and allowed.stdout.strip().startswith("gpu-check: no CUDA device")
    assert not (tmp_path / "report").exists() and not (tmp_path / "work").exists()


def test_the_stage_check_and_summary_table_at_smoke_sizes():
    from dac_diveq.bench import gpu_check as check
    settings = check.smoke_settings()
    detail = check.stage_check(settings)
    assert detail.startswith("9 methods finite") and "sf_diveq_detach" in detail
    rows = check.summary_table([check.Check("a", True, 1.2, "x | y"), check.Check("b", False, 3, "boom"),
                                check.Check("c", detail="skipped: budget")])
    assert rows[2] == "| a | ok | 1 s | x / y |" and "| b | FAILED | 3 s | boom |" in rows
    assert rows[4].startswith("| c | skipped |")


@pytest.mark.slow  # the whole check at smoke sizes: a preparation, three short trainings, encode/decode
def test_the_smoke_run_prepares_a_tiny_corpus_and_trains_on_it(tmp_path):
    result = run_python(["scripts/gpu_check.py", "--smoke", "--work", tmp_path / "work", "--output",
                         tmp_path / "report"], timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in result.stdout.splitlines() if line.startswith("| ")}
    assert "| ok |" in rows["prepare a tiny corpus (prepare_data --corpus libritts)"]
    assert "| ok |" in rows["train 16 kHz + discriminator, diveq"]
    prepared = tmp_path / "work" / "corpora" / "libritts" / "16000"
    assert len(list((prepared / "train").rglob("*.flac"))) == 32 and (tmp_path / "work" / "diveq.yml").is_file()
    assert str(prepared / "train") in (tmp_path / "work" / "diveq.yml").read_text()
