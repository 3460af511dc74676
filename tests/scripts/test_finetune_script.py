"""``scripts/train.py --load_weights`` with stock DAC checkpoints of every released layout (made here, tiny
widths, their rates and codebook counts) and ``conf/finetune``: train, save, resume, export back; a conf
of another layout is refused in one line."""
from pathlib import Path

import dac
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from dac.model.discriminator import Discriminator

from dac_diveq.codec.layouts import LAYOUTS
from tests.codec.test_finetune import stock_checkpoint
from dac_diveq.codec.cli import main as cli_main
from tests.conftest import load_script, run_python, tiny_codec_conf

pytestmark = pytest.mark.slow  # trains through the script

#: A discriminator small enough for a CPU step (the conf's Discriminator keys build it).
SMALL_DISCRIMINATOR = {"Discriminator.rates": [], "Discriminator.periods": [2], "Discriminator.fft_sizes": [256],
                       "Discriminator.bands": [[0.0, 0.5], [0.5, 1.0]]}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Harmonic tones at 16 kHz (the loaders resample them to each checkpoint's rate)."""
    root = tmp_path_factory.mktemp("speech")
    for split, n in (("train", 3), ("val", 2)):
        (root / split).mkdir()
        t = np.arange(16000) / 16000
        for i in range(n):
            wave = sum(np.sin(2 * np.pi * k * (110 + 20 * i) * t) / k for k in range(1, 6))
            sf.write(root / split / f"{i}.wav", (0.2 * wave).astype(np.float32), 16000)
    return root


def finetune_conf(tmp_path: Path, data: Path, method: str = "diveq", adversarial: bool = False,
                  include: str = "") -> Path:
    """``conf/finetune/<method>.yml`` with the tiny test's losses, data and budget, on a CPU."""
    settings = yaml.safe_load(tiny_codec_conf(method, data / "train", data / "val"))
    settings = {k: v for k, v in settings.items() if not k.startswith("DiVeQDAC.")}  # the checkpoint decides
    settings["$include"] = [include or f"conf/finetune/{method}.yml"]
    settings.update({"allow_cpu": True, "amp": "none", "num_workers": 0, "val_idx": [0], "save_every": 0,
                     "valid_freq": 2})
    if adversarial:
        settings.update(SMALL_DISCRIMINATOR)
    else:
        settings["lambdas"] = {"mel/loss": 15.0, "vq/commitment_loss": 0.25, "vq/codebook_loss": 1.0}
    path = tmp_path / f"{method}.yml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def _train(conf: Path, save: Path, *extra):
    return run_python(["scripts/train.py", "--args.load", conf, "--save_path", save, *extra], timeout=600)


def _train_here(conf: Path, save: Path, *extra, monkeypatch, capsys) -> tuple[int, str]:
    """``scripts/train.py`` in this process (a fresh interpreter per run costs more than the run):
    ``(exit status, stderr)``."""
    monkeypatch.setattr("sys.argv", ["scripts/train.py", "--args.load", str(conf), "--save_path", str(save),
                                     *map(str, extra)])
    status = load_script("train").main()
    return status, capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_finetune_each_layout_trains_resumes_and_exports_back(name, tmp_path, data, monkeypatch, capsys):
    stock, weights = stock_checkpoint(name, tmp_path)
    adversarial = name == "44khz"  # the README's case: with a stock discriminator to start from
    extra = []
    if adversarial:
        torch.manual_seed(2)
        Discriminator(sample_rate=44100, **{k.split(".")[1]: v for k, v in SMALL_DISCRIMINATOR.items()}).save(
            str(tmp_path / "disc.pth"), package=False)
        extra = ["--load_discriminator", tmp_path / "disc.pth"]
    conf, save = finetune_conf(tmp_path, data, adversarial=adversarial), tmp_path / "run"
    status, err = _train_here(conf, save, "--load_weights", weights, *extra, monkeypatch=monkeypatch, capsys=capsys)
    assert status == 0, err[-3000:]
    assert f"DAC layout {name}, {LAYOUTS[name]['sample_rate']} Hz" in err
    assert "quantizer dropout 0.5" in err  # the recipe's, said in the start-up summary
    assert (save / "latest" / "discriminator" / "weights.pth").exists() == adversarial
    status, err = _train_here(conf, save, "--load_weights", weights, *extra, "--num_iters", "3", "--resume", "true",
                              monkeypatch=monkeypatch, capsys=capsys)
    assert status == 0, err[-3000:]
    assert "at step 2" in err
    assert torch.load(save / "latest" / "trainer.pth", weights_only=False)["step"] == 3

    exported = tmp_path / "exported.pth"
    assert cli_main(["export", str(save), "--format", "dac", "--output", str(exported)]) == 0
    back = dac.model.DAC.load(str(exported)).eval()
    assert (back.sample_rate, list(back.encoder_rates), back.n_codebooks, back.latent_dim) == (
        stock.sample_rate, list(stock.encoder_rates), stock.n_codebooks, stock.latent_dim)
    # Fine-tuned: three small steps away from the stock weights (codebooks included), not re-initialised.
    for part in ("quantizer.quantizers.0.codebook.weight", "encoder.block.0.weight_v", "decoder.model.0.weight_v"):
        moved = (back.state_dict()[part] - stock.state_dict()[part]).abs().max().item()
        assert 0 < moved < 0.05, (part, moved)


def test_a_conf_of_another_layout_is_refused_by_the_script(tmp_path, data):
    _, weights = stock_checkpoint("16khz", tmp_path)
    conf = finetune_conf(tmp_path, data, include="conf/44khz/diveq.yml")
    result = _train(conf, tmp_path / "run", "--load_weights", weights)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: --load_weights {weights} is DAC's 16khz layout with sample_rate 16000")
    assert "DiVeQDAC.sample_rate: 44100" in line and not (tmp_path / "run").exists()


def test_a_finetune_conf_without_weights_is_refused(tmp_path, data, monkeypatch, capsys):
    status, err = _train_here(finetune_conf(tmp_path, data), tmp_path / "run", monkeypatch=monkeypatch, capsys=capsys)
    assert status == 2 and "pass its weights with --load_weights" in err.strip().splitlines()[-1]
