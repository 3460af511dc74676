"""scripts/residual_modes.py: training codes against stored codes per residual mode, on a saved codec."""
import numpy as np
import soundfile as sf
import torch

from dac_diveq.codec.model import DiVeQDAC
from tests.conftest import TINY_DAC, load_script


def _saved(tmp_path, method, **options):
    torch.manual_seed(0)
    DiVeQDAC(**TINY_DAC, method=method, **options).save(str(tmp_path / f"{method}.pth"), package=False)
    (tmp_path / "clips").mkdir(exist_ok=True)
    noise = 0.1 * np.random.default_rng(0).standard_normal(16000)
    sf.write(tmp_path / "clips" / "a.wav", noise.astype(np.float32), 16000)
    return tmp_path / f"{method}.pth"


def test_a_saved_diveq_codec_gets_one_row_per_mode(tmp_path, capsys):
    weights = _saved(tmp_path, "diveq")
    script = load_script("residual_modes")
    assert script.main(["--weights_path", str(weights), "--input", str(tmp_path / "clips"), "--draws", "2"]) == 0
    rows = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert sorted(rows) == ["joint", "stagewise", "stagewise_hard"]
    assert "| stagewise_hard | 0.00 % | 0.00 |" in rows["stagewise_hard"]


def test_a_saved_sf_diveq_codec_gets_stagewise_and_joint(tmp_path, capsys):
    weights = _saved(tmp_path, "sf_diveq", skip_iters=0)
    script = load_script("residual_modes")
    assert script.main(["--weights_path", str(weights), "--input", str(tmp_path / "clips"), "--draws", "2"]) == 0
    rows = [line.split(" | ")[0].strip("| ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == ["stagewise", "joint"]


def test_other_methods_and_missing_files_are_one_line_errors(tmp_path, capsys):
    script = load_script("residual_modes")
    assert script.main(["--weights_path", str(_saved(tmp_path, "ste")), "--input", str(tmp_path / "clips")]) == 2
    assert script.main(["--weights_path", str(tmp_path / "none.pth")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("error: the run's method is ste") and err[1].startswith("error:")
