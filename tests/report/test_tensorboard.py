"""Training curves from real TensorBoard event files and from a trainer checkpoint's history."""
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from dac_diveq.report.tensorboard import history_scalars, read_scalars, training_curves


def test_read_scalars_merges_resumed_runs(tmp_path):
    logs = tmp_path / "logs"
    first = SummaryWriter(str(logs))
    for step in (10, 20, 30):
        first.add_scalar("val/mel/loss", float(step), step)
    first.close()
    resumed = SummaryWriter(str(logs), filename_suffix=".resumed")  # a second event file, same folder
    for step in (30, 40):
        resumed.add_scalar("val/mel/loss", step + 0.5, step)
    resumed.close()
    curves = read_scalars(logs, ["val/mel/loss", "val/pesq_wb"])
    assert set(curves) == {"val/mel/loss"}
    steps, values = curves["val/mel/loss"]
    np.testing.assert_array_equal(steps, [10, 20, 30, 40])
    assert values[2] == 30.5 and values[3] == 40.5  # the newer file wins at the shared step


def test_history_fallback(tmp_path):
    ckpt = tmp_path / "latest" / "trainer.pth"
    ckpt.parent.mkdir()
    torch.save({"step": 20, "history": [{"step": 10, "mel/loss": 2.0, "pesq_wb": 1.5},
                                        {"step": 20, "mel/loss": 1.8, "pesq_wb": 1.7}], "config": "x"}, ckpt)
    curves = history_scalars(ckpt, ["val/mel/loss", "val/pesq_wb", "train/mel/loss"])
    assert set(curves) == {"val/mel/loss", "val/pesq_wb"}
    np.testing.assert_allclose(curves["val/pesq_wb"][1], [1.5, 1.7])
    curves, source = training_curves(tmp_path / "logs", ckpt, ["val/mel/loss"])
    assert source.startswith("checkpoint history") and "val/mel/loss" in curves
    assert training_curves(tmp_path / "none", tmp_path / "none.pth", ["val/mel/loss"]) == ({}, None)


def test_saved_curves_are_the_last_fallback(tmp_path):
    from dac_diveq.report.tensorboard import read_curves, training_curves, write_curves

    curves = {"val/stoi": (np.array([300.0, 600.0]), np.array([0.61, 0.7]))}
    path = write_curves(tmp_path / "curves.json", curves)
    got, source = training_curves(tmp_path / "no_logs", tmp_path / "no.pth", ["val/stoi", "val/pesq_wb"], path)
    assert source.startswith("saved curves") and set(got) == {"val/stoi"}
    assert np.array_equal(got["val/stoi"][0], curves["val/stoi"][0])
    assert np.allclose(got["val/stoi"][1], curves["val/stoi"][1])
    assert training_curves(tmp_path / "no_logs", tmp_path / "no.pth", ["val/stoi"]) == ({}, None)
    assert read_curves(tmp_path / "missing.json", ["val/stoi"]) == {}
