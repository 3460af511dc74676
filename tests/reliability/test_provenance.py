"""Figures reproduce only in the environment they were measured in: every checkpoint records the
thread count, the torch and numpy versions and the processor it was trained with (each change of them on a
resume), evaluations copy that into ``summary.json`` with their own, and reports show it."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dac_diveq.report.eval_io import new_summary
from dac_diveq.report.markdown import trained_on, training_threads
from dac_diveq.training import checkpoint
from tests.training.test_loop import ToyTrainer, _config


@pytest.fixture
def threads():
    """Set torch's thread count for a test, then restore it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _environments(run):
    return torch.load(run / "latest" / "trainer.pth", weights_only=True)["environment"]


def test_checkpoints_record_every_environment_the_run_trained_in(tmp_path, threads):
    threads(1)
    ToyTrainer(_config(tmp_path)).run(until=4)
    versions = {"torch": str(torch.__version__), "numpy": str(np.__version__), "processor": checkpoint.processor()}
    assert _environments(tmp_path) == [{"step": 0, "threads": 1, **versions}]
    threads(2)
    resumed = ToyTrainer(_config(tmp_path))
    assert resumed.resume()
    resumed.run()
    assert _environments(tmp_path) == [{"step": 0, "threads": 1, **versions}, {"step": 4, "threads": 2, **versions}]


def test_evaluation_summaries_carry_the_training_and_their_own_environment(tmp_path, threads):
    threads(1)
    ToyTrainer(_config(tmp_path, num_iters=2)).run()
    summary = new_summary("speech", tmp_path / "latest" / "line" / "weights.pth", "sgd", {}, "cpu")
    assert summary["threads"] == 1 and summary["numpy"] == np.__version__ and summary["torch"] == torch.__version__
    assert summary["training"] == _environments(tmp_path) and summary["seed"] is None  # the toy records no config
    assert summary["step"] == 2  # the checkpoint's step: a curve over steps needs it
    assert training_threads(summary) == "1"
    mixed = {"training": [{"step": 0, "threads": 1}, {"step": 400, "threads": 2}]}
    assert training_threads(mixed) == "1 from step 0, 2 from step 400"
    assert training_threads({"training": None}) == "n/a"
    assert summary["processor"] == checkpoint.processor() == trained_on(summary)
    moved = {"training": [{"step": 0, "processor": "A (2 cores)"}, {"step": 300, "processor": "B (2 cores)"}]}
    assert trained_on(moved) == "A (2 cores) from step 0, B (2 cores) from step 300"
    assert trained_on({"training": [{"step": 0, "threads": 1}]}) == "n/a"  # recorded before processors were


def test_environment_is_plain_data():
    env = checkpoint.environment()
    assert type(env["torch"]) is str and type(env["numpy"]) is str and type(env["threads"]) is int
    assert type(env["processor"]) is str and f"({os.cpu_count()} cores" in env["processor"]


def test_the_processor_is_the_cpu_model_linux_names():
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.is_file() else []
    if models:  # Linux on x86 names its CPU model there (CI and this project's machines)
        assert checkpoint.processor().startswith(models[0])
    else:
        assert f"({os.cpu_count()} cores" in checkpoint.processor()
    # whether bf16 is native decides what amp: auto does and how fast a step is
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert checkpoint.processor().endswith(f"({os.cpu_count()} cores{', native bf16' if native else ''})")
