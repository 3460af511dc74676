"""Every entry point that reads a checkpoint refuses a crafted one in one line, runs none of its
code, and exits non-zero: ``train.py --resume`` (trainer, weights, optimizer), ``train_image.py
--resume``, ``train.py --load_weights`` (and truncated, random and foreign files there),
``evaluate.py --weights_path RUN`` and ``report.py`` (which falls back to ``trainer.pth``)."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from dac_diveq.codec.model import DiVeQDAC
from tests.conftest import TINY_DAC, WEIGHT_VARIABLES, run_python, tiny_codec_conf
from tests.reliability.conftest import crafted_checkpoint

pytestmark = pytest.mark.slow  # launches the scripts

IMAGE_TINY = ["--VQVAE.channels", "16", "--VQVAE.res_channels", "8", "--VQVAE.n_down", "2",
              "--VQVAE.n_res_blocks", "1", "--VQVAE.codebook_dim", "8", "--VQVAE.codebook_size", "16",
              "--train/build_image_dataset.image_size", "16", "--val/build_image_dataset.image_size", "16",
              "--val/build_image_dataset.n_items", "4", "--num_iters", "2", "--valid_freq", "2", "--batch_size", "4"]


def assert_one_line_error(result, *needles, status=2):
    """Exit ``status``, no traceback, and the last stderr line is the one ``error:`` line."""
    assert result.returncode == status, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and sum(line.startswith("error:") for line in result.stderr.splitlines()) == 1
    for needle in needles:
        assert needle in last, last


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    sr = 16000
    for split, n in (("train", 2), ("val", 2)):
        (root / split).mkdir()
        for i in range(n):
            t = np.arange(sr) / sr
            sf.write(root / split / f"{i}.wav", (0.2 * np.sin(2 * np.pi * (110 + 20 * i) * t)).astype(np.float32), sr)
    conf = root / "diveq.yml"
    conf.write_text(tiny_codec_conf("diveq", root / "train", root / "val"))
    return root


@pytest.fixture(scope="module")
def codec_run(speech, tmp_path_factory):
    """A finished 2-step codec run (read-only: tests work on copies)."""
    run = tmp_path_factory.mktemp("codec") / "run"
    result = run_python(["scripts/train.py", "--args.load", speech / "diveq.yml", "--save_path", run])
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, symlinks=True)  # the tags are relative links into .checkpoints
    return to


@pytest.mark.parametrize("target", ["trainer.pth", "diveqdac/weights.pth", "diveqdac/optimizer.pth"])
def test_train_resume_refuses_a_crafted_file(speech, codec_run, tmp_path, marker, target):
    run = _copy(codec_run, tmp_path / "run")
    crafted_checkpoint(run / "latest" / target, marker)
    result = run_python(["scripts/train.py", "--args.load", speech / "diveq.yml", "--save_path", run,
                         "--num_iters", "3", "--resume", "true"])
    assert_one_line_error(result, "refusing to load", target)
    assert not marker.exists()


@pytest.mark.parametrize("case, needle", [
    ("package", "torch.package archive"),
    ("payload", "would import posix.system"),
    ("truncated", "truncated, or not a PyTorch checkpoint"),
    ("random", "not a PyTorch checkpoint"),
    ("foreign", "is a DiVeQDAC checkpoint, not a stock DAC one"),
])
def test_load_weights_refuses_what_is_not_a_stock_dac_file(speech, tmp_path, marker, case, needle):
    path = tmp_path / "stock.pth"
    if case in ("package", "payload"):
        crafted_checkpoint(path, marker, "package" if case == "package" else "torch")
    elif case == "truncated":
        DiVeQDAC(**TINY_DAC).save(str(tmp_path / "full.pth"), package=False)
        path.write_bytes((tmp_path / "full.pth").read_bytes()[:5000])
    elif case == "random":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    else:  # our own model's file is not DAC's
        DiVeQDAC(**TINY_DAC).save(str(path), package=False)
    result = run_python(["scripts/train.py", "--args.load", speech / "diveq.yml", "--save_path", tmp_path / "run",
                         "--load_weights", path])
    assert_one_line_error(result, str(path), needle)
    assert not marker.exists()


def test_train_image_resume_refuses_a_crafted_trainer_state(tmp_path, marker):
    run = tmp_path / "vqvae"
    args = ["scripts/train_image.py", "--args.load", "conf/image/quickstart/vqvae_diveq.yml", "--save_path", run,
            *IMAGE_TINY]
    env = {"TORCH_HOME": str(tmp_path / "torch_home")}
    first = run_python(args, env=env, unset=WEIGHT_VARIABLES)
    assert first.returncode == 0, first.stderr[-3000:]
    crafted_checkpoint(run / "latest" / "trainer.pth", marker)
    result = run_python([*args, "--num_iters", "4", "--resume", "true"], env=env, unset=WEIGHT_VARIABLES)
    assert_one_line_error(result, "refusing to load", "trainer.pth")
    assert not marker.exists()


def test_evaluate_refuses_a_crafted_trainer_state_beside_the_weights(speech, codec_run, tmp_path, marker):
    run = _copy(codec_run, tmp_path / "run")
    crafted_checkpoint(run / "latest" / "trainer.pth", marker)
    result = run_python(["scripts/evaluate.py", "--weights_path", run, "--input", speech / "val",
                         "--output", tmp_path / "eval", "--device", "cpu"])
    assert_one_line_error(result, "refusing to load", "trainer.pth")
    assert not (tmp_path / "eval").exists() and not marker.exists()


def test_report_refuses_a_crafted_trainer_state_when_logs_are_missing(tmp_path, marker):
    from tests.scripts.test_report import write_run

    rng = np.random.default_rng(0)
    dirs = [write_run(tmp_path / "runs", method, 0, [(4, 2.0), (12, 6.0)], quality, rng)
            for method, quality in (("ste", 0.0), ("diveq", 0.5))]
    crafted_checkpoint(dirs[1].parent / "latest" / "trainer.pth", marker)
    result = run_python(["scripts/report.py", "--runs", *dirs, "--output", tmp_path / "report"])
    assert_one_line_error(result, "refusing to load", "trainer.pth")
    assert not marker.exists()


def test_our_own_checkpoints_still_resume_through_the_script(speech, codec_run, tmp_path):
    run = _copy(codec_run, tmp_path / "run")
    result = run_python(["scripts/train.py", "--args.load", speech / "diveq.yml", "--save_path", run,
                         "--num_iters", "3", "--resume", "true"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed" in result.stderr and torch.load(run / "latest" / "trainer.pth", weights_only=True)["step"] == 3
