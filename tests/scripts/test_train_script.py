"""scripts/train.py end to end: argbind confs, one process and torchrun DDP (gloo, CPU), resume, errors."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import load_script, python_tool, run_python, tiny_codec_conf

pytestmark = pytest.mark.slow  # trains through the script (and torchrun)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    sr = 16000
    for split, n in (("train", 4), ("val", 2)):
        (root / split).mkdir()
        for i in range(n):
            t = np.arange(sr) / sr
            wave = sum(np.sin(2 * np.pi * k * (110 + 20 * i) * t) / k for k in range(1, 6))
            sf.write(root / split / f"{i}.wav", (0.2 * wave).astype(np.float32), sr)
    return root


def _conf(tmp_path, data, method="diveq"):
    path = tmp_path / f"{method}.yml"
    path.write_text(tiny_codec_conf(method, Path(data) / "train", Path(data) / "val",
                                    **{"DiVeQDAC.skip_iters": 1, "DiVeQDAC.avg_iters": 1}))
    return path


def _run(args, launcher=None):
    return run_python(args, launcher=launcher, timeout=600)


def test_train_script_trains_saves_and_resumes(tmp_path, data):
    save = tmp_path / "run"
    conf = _conf(tmp_path, data, "sf_diveq")
    first = _run(["scripts/train.py", "--args.load", str(conf), "--save_path", str(save)])
    assert first.returncode == 0, first.stderr[-3000:]
    assert "pesq_wb" in first.stdout
    weights = save / "latest" / "diveqdac" / "weights.pth"
    assert weights.exists() and (save / "best" / "diveqdac" / "weights.pth").exists()
    assert any((save / "logs").iterdir())
    again = _run(["scripts/train.py", "--args.load", str(conf), "--save_path", str(save),
                  "--num_iters", "3", "--resume"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed" in again.stderr and "at step 2" in again.stderr
    state = torch.load(save / "latest" / "trainer.pth", weights_only=False)
    assert state["step"] == 3


def test_train_script_runs_under_torchrun_with_two_processes(tmp_path, data):
    torchrun = python_tool("torchrun")
    save = tmp_path / "ddp"
    result = _run(["scripts/train.py", "--args.load", str(_conf(tmp_path, data, "diveq")), "--save_path", str(save)],
                  launcher=[torchrun, "--standalone", "--nproc_per_node", "2"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert (save / "latest" / "diveqdac" / "weights.pth").exists()
    state = torch.load(save / "latest" / "trainer.pth", weights_only=False)
    assert state["step"] == 2 and len(state["rng"]) == 2  # one RNG state per rank


def test_missing_data_folder_is_a_one_line_error(tmp_path, data):
    conf = _conf(tmp_path, tmp_path / "nowhere", "ste")
    result = _run(["scripts/train.py", "--args.load", str(conf), "--save_path", str(tmp_path / "r")])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr


def test_resuming_with_another_method_is_refused(tmp_path, data):
    save = tmp_path / "run"
    assert _run(["scripts/train.py", "--args.load", str(_conf(tmp_path, data, "diveq")),
                 "--save_path", str(save)]).returncode == 0
    result = _run(["scripts/train.py", "--args.load", str(_conf(tmp_path, data, "ste")),
                   "--save_path", str(save), "--resume"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "another configuration" in result.stderr or "method" in result.stderr


def test_training_can_start_from_stock_dac_weights(tmp_path, data):
    import dac

    torch.manual_seed(0)
    stock = dac.model.DAC(encoder_dim=8, encoder_rates=[2, 4, 5, 8], decoder_dim=32, decoder_rates=[8, 5, 4, 2],
                          n_codebooks=3, codebook_size=64, sample_rate=16000)
    stock_path = tmp_path / "stock.pth"
    stock.save(str(stock_path), package=False)
    save = tmp_path / "finetune"
    result = _run(["scripts/train.py", "--args.load", str(_conf(tmp_path, data, "sf_diveq")),
                   "--save_path", str(save), "--num_iters", "1", "--load_weights", str(stock_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    from dac_diveq.codec.model import DiVeQDAC

    tuned = DiVeQDAC.load(str(save / "latest" / "diveqdac" / "weights.pth"))
    assert tuned.method == "sf_diveq"
    # Every quantizer option of the conf reached the fine-tuned model (conf/quickstart/base.yml's
    # replacement schedule, the tiny conf's SF-DiVeQ initialisation), not DiVeQDAC's defaults.
    config = tuned.quantizer_config()
    assert {k: config[k] for k in ("replace_every", "replace_every_after", "replace_slowdown_at",
                                   "replace_stop_before_end", "skip_iters", "avg_iters")} == dict(
        replace_every=50, replace_every_after=100, replace_slowdown_at=200, replace_stop_before_end=50,
        skip_iters=1, avg_iters=1)
    # The pretrained codebooks were kept (one small step away), not re-initialised from latents.
    for ours, theirs in zip(tuned.quantizer.quantizers, stock.quantizer.quantizers):
        assert (ours.codebook.weight - theirs.codebook.weight).abs().max() < 0.05
        assert ours.codebook.maintenance.initialized


def test_the_gpu_recipe_is_refused_on_a_cpu_in_one_line(tmp_path):
    result = run_python(["scripts/train.py", "--args.load", "conf/diveq.yml", "--save_path", str(tmp_path / "r")],
                        env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: conf/diveq.yml is DAC's GPU recipe") and "--size cpu" in line
    assert "--allow_cpu true" in line and not (tmp_path / "r").exists()


def test_resume_true_with_nothing_to_resume_is_a_one_line_error(tmp_path, data):
    result = _run(["scripts/train.py", "--args.load", str(_conf(tmp_path, data, "ste")),
                   "--save_path", str(tmp_path / "empty"), "--resume", "true"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--resume true but" in result.stderr.strip().splitlines()[-1]


def test_ctrl_c_saves_latest_and_the_run_resumes_from_it(tmp_path, data):
    """SIGINT in the middle of a long run: the step finishes, latest/ is saved (no validation had
    come yet), the exit code is 130 and --resume continues from that step."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    from tests.conftest import ROOT

    save = tmp_path / "run"
    conf = _conf(tmp_path, data, "diveq")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "scripts/train.py", "--args.load", str(conf), "--save_path", str(save),
                              "--num_iters", "100000", "--valid_freq", "100000"],
                             cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: child.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while "step, loss=" not in "".join(err) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)  # a logged step: the loop (and its signal handlers) is running
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=300) == 130
    reader.join(timeout=10)
    text = "".join(err)
    assert "Traceback" not in text and "SIGINT: finishing step" in text
    step = torch.load(save / "latest" / "trainer.pth", weights_only=False)["step"]
    assert step >= 1 and f"interrupted (SIGINT) after step {step}: saved {save / 'latest'}" in text
    again = _run(["scripts/train.py", "--args.load", str(conf), "--save_path", str(save),
                  "--num_iters", str(step + 1), "--valid_freq", "100000", "--resume"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"at step {step}" in again.stderr and "steps: " + f"{step} -> {step + 1}" in again.stderr


@pytest.mark.parametrize("conf", ["conf/recipe.yml", "conf/diveq.yml", "conf/cpu/diveq.yml",
                                  "conf/quickstart/ste.yml"])
def test_the_transforms_normalise_to_the_models_level(conf):
    """The training level is the model's ``loudness_db`` (DAC's -16 LUFS unless a conf sets it):
    every VolumeNorm of the pipeline uses it, whatever argbind lists as audiotools' default."""
    import argbind

    from dac_diveq.training.config import parse_args

    script = load_script("train")
    args = parse_args(["--args.load", conf])
    with argbind.scope(args):
        level = script.DiVeQDAC(encoder_dim=8, decoder_dim=32, n_codebooks=2, codebook_size=16).loudness_db
    assert level == -16.0
    for scope in ("train", "val"):
        with argbind.scope(args, scope):
            transform = script.build_transform(loudness_db=level)
        norms = [t for t in transform.transforms[2].transforms if type(t).__name__ == "VolumeNorm"]
        assert len(norms) == 1 and tuple(norms[0].db) == ("const", level)


def test_a_conf_that_sets_volumenorm_is_refused_in_one_line(tmp_path, data):
    conf = _conf(tmp_path, data)
    result = _run(["scripts/train.py", "--args.load", str(conf), "--save_path", str(tmp_path / "r"),
                   "--VolumeNorm.db", "[const, -20]"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "DiVeQDAC.loudness_db" in lines[0]
    assert not (tmp_path / "r" / "latest").exists()


def test_the_compressed_spectral_loss_trains_when_weighted(tmp_path, data):
    conf = _conf(tmp_path, data)
    save = tmp_path / "run"
    result = _run(["scripts/train.py", "--args.load", str(conf), "--save_path", str(save),
                   "--lambdas", "{mel/loss: 15.0, spectral/loss: 5.0, vq/commitment_loss: 0.25}",
                   "--CompressedSpectralLoss.window_lengths", "[128, 256]"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "spectral/loss" in result.stdout  # validated beside the mel loss
