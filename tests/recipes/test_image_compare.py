"""The image comparison recipe: command-line errors, and one real tiny comparison end to end."""
import pytest

from dac_diveq.image.io import load_stage1
from tests.conftest import run_python

pytestmark = pytest.mark.slow  # launches the recipe (and trains)


def _run(*args, timeout=120):
    return run_python(["recipes/image_compare.py", *args], timeout=timeout)


def test_refuses_to_overwrite_an_existing_report(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    result = _run("--report", str(report), "--root", str(tmp_path / "runs"))
    assert result.returncode == 2 and "--force" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, message", [(["--methods", "ste", "vqgan"], "unknown methods"),
                                           (["--bits", "0", "6"], "--bits")])
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
    result = _run(*args, "--report", str(tmp_path / "r"), "--root", str(tmp_path / "runs"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.timeout(600)
def test_tiny_comparison_end_to_end_and_rerun_skips(tmp_path):
    """Four methods (two baselines) x one bit rate, a few steps each: trains, evaluates, reports; a
    re-run trains nothing."""
    root, report = tmp_path / "runs", tmp_path / "report"
    args = ["--methods", "ste", "diveq", "fsq", "simvq", "--bits", "4", "--root", str(root), "--report", str(report)]
    result = _run(*args, "--num_iters", "6", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    text = (report / "README.md").read_text()
    assert "bits per code" in text and "| ste |" in text and "| diveq |" in text
    assert "PSNR" in text and "SSIM" in text
    assert "## Per-seed means" in text and "| diveq | 4 |" in text
    assert (report / "headline.md").read_text().strip() in result.stdout
    for method in ("ste", "diveq"):
        for figure in ("reconstructions", "codebook_vs_latents"):
            assert (report / f"{figure}_{method}.png").read_bytes()[:4] == b"\x89PNG"
            assert f"]({figure}_{method}.png)" in text
    for method in ("ste", "diveq", "fsq", "simvq"):
        assert (root / method / "bits4" / "seed0" / "eval" / "summary.json").is_file()
        assert f"| {method} | 3 × " not in text and f"| {method} | 1 × " in text  # one row per method, one seed
    # FSQ at 4 bits per code: a grid of exactly 16 points, [4, 4] levels on 2-dimensional latents
    fsq_run = load_stage1(root / "fsq" / "bits4" / "seed0")
    assert list(fsq_run.quantizer.vq.fsq_levels) == [4, 4] and fsq_run.codebook_dim == 2
    again = _run(*args, "--num_iters", "6", "--force", timeout=600)
    assert again.returncode == 0 and "scripts/train_image.py" not in again.stdout
    assert again.stdout.count("skip training") == 4
