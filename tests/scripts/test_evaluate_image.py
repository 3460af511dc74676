"""scripts/evaluate_image.py end to end on tiny runs trained by scripts/train_image.py: per-file rows,
summary, figures, LPIPS with user-provided weights, FID of a GPT prior's samples, errors, and
scripts/report.py on the results."""
import csv
import json
import math
from pathlib import Path

import pytest
from PIL import Image

from dac_diveq.report.eval_io import SUMMARY_KEYS
from tests.conftest import WEIGHT_VARIABLES, run_python

pytestmark = pytest.mark.slow  # trains and evaluates through the scripts

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE = 16
N_VAL = 4
DATA = ["--train/build_image_dataset.image_size", str(SIZE), "--val/build_image_dataset.image_size", str(SIZE),
        "--val/build_image_dataset.n_items", str(N_VAL), "--num_iters", "4", "--valid_freq", "2",
        "--batch_size", "4", "--log_freq", "1"]
TINY = ["--VQVAE.channels", "16", "--VQVAE.res_channels", "8", "--VQVAE.n_down", "2", "--VQVAE.n_res_blocks", "1",
        "--VQVAE.codebook_dim", "8", "--VQVAE.codebook_size", "16", *DATA]
TINY_GPT = ["--GPT.n_layer", "1", "--GPT.n_head", "2", "--GPT.n_embd", "16", *DATA]


def _run(script, *args, torch_home: Path):
    """Run a script hermetically: no VGG16/Inception weights anywhere except those passed explicitly."""
    torch_home.mkdir(parents=True, exist_ok=True)
    return run_python([f"scripts/{script}", *args], env={"TORCH_HOME": str(torch_home)}, unset=WEIGHT_VARIABLES)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny diveq and ste VQ-VAE runs (4 bits per code, 4x4 codes on 16 px) and a GPT prior on diveq."""
    tmp = tmp_path_factory.mktemp("evaluate_image")
    home = tmp / "torch_home"
    out = {"tmp": tmp, "home": home}
    for method in ("diveq", "ste"):
        out[method] = tmp / method
        result = _run("train_image.py", "--args.load", f"conf/image/quickstart/vqvae_{method}.yml", *TINY,
                      "--save_path", out[method], torch_home=home)
        assert result.returncode == 0, result.stderr[-3000:]
    out["gpt"] = tmp / "gpt"
    result = _run("train_image.py", "--args.load", "conf/image/quickstart/gpt.yml", *TINY_GPT,
                  "--stage1_path", out["diveq"], "--save_path", out["gpt"], torch_home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _valid_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()


def _read(out: Path) -> tuple[list[dict], dict]:
    with open(out / "per_file.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["file", "bits", "bpp", "psnr", "ssim", "lpips"]
    rows = list(csv.DictReader(open(out / "per_file.csv", newline="")))
    return rows, json.loads((out / "summary.json").read_text())


def _check_common(rows, summary, method):
    assert list(summary)[:len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
    assert summary["domain"] == "image" and summary["method"] == method
    bits = math.log2(16)
    grid = SIZE // 4
    assert summary["bits"] == bits and summary["codebook_size"] == 16
    assert summary["bpp"] == pytest.approx(bits * grid * grid / SIZE ** 2)
    assert summary["image_size"] == SIZE and summary["seed"] == 0 and summary["failed"] == []
    assert len(rows) == N_VAL and summary["files"] == [r["file"] for r in rows]
    for row in rows:
        assert int(row["bits"]) == bits and float(row["bpp"]) == pytest.approx(summary["bpp"])
        assert math.isfinite(float(row["psnr"])) and -1 <= float(row["ssim"]) <= 1
    assert 0 < summary["codebook"]["mean_usage"] <= 1


@pytest.mark.timeout(300)
def test_evaluation_without_lpips_weights(runs):
    out = runs["tmp"] / "eval_diveq"
    result = _run("evaluate_image.py", "--weights_path", runs["diveq"], "--output", out, "--device", "cpu",
                  torch_home=runs["home"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows, summary = _read(out)
    _check_common(rows, summary, "diveq")
    assert all(row["lpips"] == "" for row in rows)
    assert summary["lpips_weights"].startswith("none")
    assert summary["by_setting"]["4"]["lpips"] is None
    assert summary["by_setting"]["4"]["psnr"] == pytest.approx(sum(float(r["psnr"]) for r in rows) / N_VAL)
    _valid_png(out / "reconstructions.png")
    _valid_png(out / "codebook_vs_latents.png")
    assert "fid" not in summary and not (out / "generated.png").exists()


@pytest.mark.timeout(300)
def test_evaluation_with_given_vgg16_weights_fills_lpips(runs, tmp_path):
    from dac_diveq.metrics.image import make_random_vgg16_weights

    vgg = make_random_vgg16_weights(tmp_path / "vgg16-random.pth")
    out = tmp_path / "eval"
    result = _run("evaluate_image.py", "--weights_path", runs["diveq"], "--output", out, "--device", "cpu",
                  "--lpips_weights", vgg, torch_home=runs["home"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows, summary = _read(out)
    _check_common(rows, summary, "diveq")
    values = [float(row["lpips"]) for row in rows]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert summary["by_setting"]["4"]["lpips"] == pytest.approx(sum(values) / len(values))
    assert str(vgg) in summary["lpips_weights"] and "NOT the official" in summary["lpips_weights"]


@pytest.mark.timeout(300)
def test_evaluation_with_a_prior_computes_fid(runs, tmp_path):
    from dac_diveq.metrics.image import make_random_inception_weights

    inception = make_random_inception_weights(tmp_path / "inception-random.pth")
    out = tmp_path / "eval"
    result = _run("evaluate_image.py", "--weights_path", runs["diveq"], "--output", out, "--device", "cpu",
                  "--prior_path", runs["gpt"], "--inception_weights", inception, "--n_generate", 6,
                  "--top_k", 8, torch_home=runs["home"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows, summary = _read(out)
    _check_common(rows, summary, "diveq")
    assert summary["fid"] is not None and math.isfinite(summary["fid"]) and summary["fid"] >= 0
    assert summary["fid_n_generated"] == 6 and summary["fid_n_real"] == N_VAL
    assert str(inception) in summary["inception_weights"] and "NOT the official" in summary["inception_weights"]
    assert "codegpt" in summary["prior"]
    _valid_png(out / "generated.png")


def _assert_one_line_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and sum(line.startswith("error:") for line in lines) == 1
    for needle in needles:
        assert needle in lines[-1], lines[-1]


@pytest.mark.timeout(300)
def test_truncated_weights_and_missing_run_are_one_line_errors(runs, tmp_path):
    source = runs["diveq"] / "latest" / "vqvae" / "weights.pth"
    truncated = tmp_path / "run" / "latest" / "vqvae" / "weights.pth"
    truncated.parent.mkdir(parents=True)
    blob = source.read_bytes()
    truncated.write_bytes(blob[: len(blob) // 2])
    result = _run("evaluate_image.py", "--weights_path", truncated, "--output", tmp_path / "out", "--device", "cpu",
                  torch_home=runs["home"])
    _assert_one_line_error(result, str(truncated))
    missing = tmp_path / "no_such_run"
    result = _run("evaluate_image.py", "--weights_path", missing, "--output", tmp_path / "out", "--device", "cpu",
                  torch_home=runs["home"])
    _assert_one_line_error(result, str(missing))
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(300)
def test_report_on_evaluated_ste_and_diveq_runs(runs, tmp_path):
    evals = []
    for method in ("ste", "diveq"):
        # Default output: <run>/eval, next to the run's logs (the report's training curves).
        result = _run("evaluate_image.py", "--weights_path", runs[method], "--device", "cpu",
                      torch_home=runs["home"])
        assert result.returncode == 0, result.stderr[-3000:]
        assert (runs[method] / "eval" / "summary.json").is_file()
        evals.append(runs[method] / "eval")
    report = tmp_path / "report"
    result = _run("report.py", "--runs", *evals, "--output", report, torch_home=runs["home"])
    assert result.returncode == 0, result.stderr[-3000:]
    readme = (report / "README.md").read_text()
    assert "bits per code" in readme
    assert "ste" in readme and "diveq" in readme and "PSNR" in readme.upper()
    assert "no TensorBoard scalars" not in readme  # the runs' training curves were found
