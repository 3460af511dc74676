"""scripts/train_image.py end to end: argbind confs, VQ-VAE + GPT stages, resume, torchrun DDP (gloo,
CPU), LPIPS with user-provided weights, and one-line errors."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import WEIGHT_VARIABLES, python_tool, run_python

pytestmark = pytest.mark.slow  # trains through the script (and torchrun)

SCRIPT = "scripts/train_image.py"
CONF = "conf/image/quickstart/vqvae_diveq.yml"
SIZE = 16
TINY = ["--VQVAE.channels", "16", "--VQVAE.res_channels", "8", "--VQVAE.n_down", "2", "--VQVAE.n_res_blocks", "1",
        "--VQVAE.codebook_dim", "8", "--VQVAE.codebook_size", "16",
        "--train/build_image_dataset.image_size", str(SIZE), "--val/build_image_dataset.image_size", str(SIZE),
        "--val/build_image_dataset.n_items", "4", "--num_iters", "4", "--valid_freq", "2", "--batch_size", "4",
        "--log_freq", "1", "--sample_freq", "2"]
TINY_GPT = ["--GPT.n_layer", "1", "--GPT.n_head", "2", "--GPT.n_embd", "16",
            "--train/build_image_dataset.image_size", str(SIZE), "--val/build_image_dataset.image_size", str(SIZE),
            "--val/build_image_dataset.n_items", "4", "--num_iters", "4", "--valid_freq", "2", "--batch_size", "4",
            "--log_freq", "1", "--sample_freq", "2"]


def _run(args, torch_home: Path, launcher=None):
    """Run the training script (or ``launcher``) hermetically: no VGG16/Inception weights anywhere
    except those passed explicitly."""
    torch_home.mkdir(parents=True, exist_ok=True)
    return run_python(args if launcher else [SCRIPT, *args], env={"TORCH_HOME": str(torch_home)},
                      unset=WEIGHT_VARIABLES, launcher=launcher)


def _assert_one_line_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr[-3000:]
    assert sum(line.startswith("error:") for line in result.stderr.splitlines()) == 1
    for needle in needles:
        assert needle in last, last


def _trainer_step(run: Path) -> int:
    return torch.load(run / "latest" / "trainer.pth", map_location="cpu", weights_only=False)["step"]


def _copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, symlinks=True)  # the tags are relative symlinks into .checkpoints
    return to


@pytest.fixture(scope="module")
def vqvae_run(tmp_path_factory):
    """A 4-step tiny VQ-VAE run (shared read-only; tests that modify it work on a copy)."""
    tmp = tmp_path_factory.mktemp("train_image")
    run = tmp / "vqvae"
    result = _run(["--args.load", CONF, *TINY, "--save_path", run], tmp / "torch_home")
    assert result.returncode == 0, result.stderr[-3000:]
    return run, result


@pytest.fixture
def torch_home(tmp_path):
    return tmp_path / "torch_home"  # empty: no cached weights


@pytest.mark.timeout(300)
def test_vqvae_trains_writes_checkpoints_and_logs_and_resumes(vqvae_run, tmp_path, torch_home):
    run, result = vqvae_run
    assert "validation:" in result.stdout and "psnr" in result.stdout and "codebook/usage" in result.stdout
    assert "no VGG16 weights found" in result.stderr  # LPIPS off, said once
    for tag in ("latest", "best"):
        assert (run / tag / "vqvae" / "weights.pth").is_file()
        assert (run / tag / "vqvae" / "optimizer.pth").is_file()
    assert _trainer_step(run) == 4
    from dac_diveq.image import VQVAE
    from dac_diveq.report.tensorboard import read_scalars

    model = VQVAE.load(str(run / "latest" / "vqvae" / "weights.pth"))
    assert model.method == "diveq" and model.codebook_size == 16 and model.channels == 16
    assert list((run / "logs").glob("events.out.tfevents.*"))
    scalars = read_scalars(run / "logs", ["train/loss", "val/psnr", "val/codebook/usage"])
    assert set(scalars) == {"train/loss", "val/psnr", "val/codebook/usage"}
    assert list(scalars["val/psnr"][0]) == [2, 4] and np.isfinite(scalars["val/psnr"][1]).all()

    resumed = _copy_run(run, tmp_path / "resumed")
    again = _run(["--args.load", CONF, *TINY, "--save_path", resumed, "--num_iters", "6", "--resume", "true"],
                 torch_home)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "at step 4" in again.stderr
    state = torch.load(resumed / "latest" / "trainer.pth", map_location="cpu", weights_only=False)
    assert state["step"] == 6
    assert [h["step"] for h in state["history"]] == [2, 4, 6]  # continued, not restarted


@pytest.mark.timeout(300)
def test_gpt_stage_trains_on_the_stage1_run(vqvae_run, tmp_path, torch_home):
    run, _ = vqvae_run
    save = tmp_path / "gpt"
    result = _run(["--args.load", "conf/image/quickstart/gpt.yml", *TINY_GPT, "--stage1_path", run,
                   "--save_path", save], torch_home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bits_per_code" in result.stdout
    from dac_diveq.image import CodeGPT

    weights = save / "latest" / "codegpt" / "weights.pth"
    assert weights.is_file() and (save / "best" / "codegpt" / "weights.pth").is_file()
    prior = CodeGPT.load(str(weights))
    assert prior.vocab_size == 16 and prior.block_size == (SIZE // 4) ** 2 and prior.n_layer == 1
    assert _trainer_step(save) == 4


WRAPPER = """
import sys
sys.path.insert(0, "scripts")
import argbind
import torch
import train_image
from dac_diveq.training.distributed import unwrap

args = argbind.parse_args()
with argbind.scope(args):
    trainer = train_image.train(args)
codebooks = [c.detach().clone() for c in unwrap(trainer.parts.model).quantizer.codebooks()]
torch.save(codebooks, sys.argv[0] + f".rank{trainer.rank}.pt")
"""


@pytest.mark.timeout(300)
def test_torchrun_two_processes_end_with_identical_codebooks(tmp_path, torch_home):
    torchrun = python_tool("torchrun")
    # The script's own train() under torchrun; each rank also dumps its final codebook.
    wrapper = tmp_path / "train_and_dump.py"
    wrapper.write_text(WRAPPER)
    save = tmp_path / "ddp"
    # SF-DiVeQ initialisation and dead-code replacement inside the run: both must stay in sync.
    maintenance = ["--VQVAE.method", "sf_diveq", "--VQVAE.skip_iters", "2", "--VQVAE.avg_iters", "2",
                   "--VQVAE.latents_per_code", "2", "--VQVAE.replace_every", "1", "--VQVAE.replace_every_after", "1",
                   "--VQVAE.replace_stop_before_end", "0", "--VQVAE.discard_threshold", "0.5"]
    result = _run([wrapper, "--args.load", CONF, *TINY, *maintenance, "--save_path", save], torch_home,
                  launcher=[torchrun, "--standalone", "--nproc_per_node", "2"])
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(f"{wrapper}.rank{r}.pt") for r in (0, 1)]
    from dac_diveq.image import VQVAE

    saved = VQVAE.load(str(save / "latest" / "vqvae" / "weights.pth"))
    assert saved.method == "sf_diveq"
    assert all(stage.maintenance.initialized for stage in saved.quantizer.stages)
    for a, b, c in zip(ranks[0], ranks[1], saved.quantizer.codebooks()):
        assert torch.equal(a, b)
        assert torch.equal(a, c.detach())
    state = torch.load(save / "latest" / "trainer.pth", map_location="cpu", weights_only=False)
    assert state["step"] == 4 and len(state["rng"]) == 2  # one RNG state per rank


def _rgb(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _folder_args(folder: Path) -> list:
    return ["--train/build_image_dataset.source", folder, "--val/build_image_dataset.source", folder]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", ["missing", "grayscale", "corrupt"])
def test_bad_image_data_is_a_one_line_error(case, tmp_path, torch_home):
    folder = tmp_path / "images"
    if case != "missing":
        folder.mkdir()
        for i in range(4):
            _rgb(folder / f"rgb{i}.png", i)
        bad = folder / ("gray.png" if case == "grayscale" else "broken.png")
        if case == "grayscale":
            Image.fromarray(np.full((24, 24), 128, np.uint8), mode="L").save(bad)
        else:
            bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    result = _run(["--args.load", CONF, *TINY, *_folder_args(folder), "--save_path", tmp_path / "run"], torch_home)
    if case == "missing":
        _assert_one_line_error(result, str(folder), "does not exist")
    elif case == "grayscale":
        _assert_one_line_error(result, "gray.png", "grayscale")
    else:
        _assert_one_line_error(result, "broken.png")
    assert not (tmp_path / "run" / "latest").exists()


@pytest.mark.timeout(300)
def test_lpips_loss_without_vgg16_weights_is_a_one_line_error(tmp_path, torch_home):
    conf = tmp_path / "lpips.yml"
    conf.write_text(f"$include:\n  - {CONF}\nlambdas:\n  rec/mse: 1.0\n  perceptual/lpips: 1.0\n  vq/aux: 1.0\n")
    result = _run(["--args.load", conf, *TINY, "--save_path", tmp_path / "run"], torch_home)
    _assert_one_line_error(result, "VGG16", "DAC_DIVEQ_VGG16")
    assert str(torch_home) in result.stderr  # names where it looked


@pytest.mark.timeout(300)
def test_unknown_model_is_a_one_line_error(tmp_path, torch_home):
    result = _run(["--args.load", CONF, *TINY, "--model", "vqvae2", "--save_path", tmp_path / "run"], torch_home)
    _assert_one_line_error(result, "vqvae2")


@pytest.mark.timeout(300)
def test_resuming_with_another_codebook_size_is_refused(vqvae_run, tmp_path, torch_home):
    run = _copy_run(vqvae_run[0], tmp_path / "run")
    result = _run(["--args.load", CONF, *TINY, "--VQVAE.codebook_size", "32", "--save_path", run,
                   "--num_iters", "6", "--resume", "true"], torch_home)
    _assert_one_line_error(result, "codebook_size")
    assert _trainer_step(run) == 4  # the checkpoint was left alone


@pytest.mark.timeout(300)
def test_lpips_with_given_vgg16_weights_trains_and_logs_it(tmp_path, torch_home):
    from dac_diveq.metrics.image import make_random_vgg16_weights
    from dac_diveq.report.tensorboard import read_scalars

    vgg = make_random_vgg16_weights(tmp_path / "vgg16-random.pth")
    conf = tmp_path / "lpips.yml"
    conf.write_text(f"$include:\n  - {CONF}\nlambdas:\n  rec/mse: 1.0\n  perceptual/lpips: 0.5\n  vq/aux: 1.0\n")
    save = tmp_path / "run"
    result = _run(["--args.load", conf, *TINY, "--num_iters", "2", "--lpips_weights", vgg, "--save_path", save],
                  torch_home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lpips" in result.stdout.split("validation:")[-1]
    scalars = read_scalars(save / "logs", ["train/perceptual/lpips", "val/lpips"])
    assert set(scalars) == {"train/perceptual/lpips", "val/lpips"}
    for _, values in scalars.values():
        assert np.isfinite(values).all() and (values >= 0).all()
