"""DDP wrapping for one process and for a gloo process group."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from dac_diveq.training.distributed import distributed_context, gather_objects, unwrap, wrap

ROOT = Path(__file__).resolve().parents[2]


def test_one_process_leaves_models_unwrapped():
    model = torch.nn.Linear(2, 2)
    assert wrap(model, torch.device("cpu"), 1) is model and unwrap(model) is model
    assert wrap(None, torch.device("cpu"), 2) is None
    assert gather_objects({"rank": 0}, 1) == [{"rank": 0}]


def test_one_process_context_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rank, world, device = distributed_context()
    assert (rank, world) == (0, 1) and device.type in ("cpu", "cuda")


WORKER = """
import torch
from dac_diveq.training.distributed import distributed_context, gather_objects, unwrap, wrap
from torch.nn.parallel import DistributedDataParallel
rank, world, device = distributed_context()
model = torch.nn.Linear(2, 2)
wrapped = wrap(model, device, world)
assert isinstance(wrapped, DistributedDataParallel) and unwrap(wrapped) is model
assert gather_objects(rank * 10, world) == [0, 10]
print("ok", rank)
"""


def test_two_processes_wrap_in_ddp_and_gather_every_rank(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script)], cwd=ROOT,
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(line for line in result.stdout.splitlines() if line.startswith("ok")) == ["ok 0", "ok 1"]
