"""DDP wrapping for one process and for a gloo process group."""
import pytest
import torch

from dac_diveq.training.distributed import distributed_context, end_rank, gather_objects, unwrap, wrap
from tests.conftest import python_tool, run_python


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
import atexit
import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from dac_diveq.training.distributed import distributed_context, end_rank, gather_objects, unwrap, wrap


def main():
    # As the training entry points: the DDP wrapper goes out of scope on return, then end_rank
    # leaves the group and ends the rank (without it, one run in five aborted at exit).
    rank, world, device = distributed_context()
    model = torch.nn.Linear(2, 2)
    wrapped = wrap(model, device, world)
    assert isinstance(wrapped, DistributedDataParallel) and unwrap(wrapped) is model
    gathered = gather_objects(rank * 10, world)
    # One file per rank: the ranks' stdout streams interleave under torchrun.
    Path(sys.argv[1], f"rank{rank}.txt").write_text(repr(gathered))
    atexit.register(lambda: Path(sys.argv[1], f"atexit{rank}.txt").write_text("ran"))
    print(f"unflushed output of rank {rank}", end="")
    return 0


sys.exit(end_rank(main()))
"""


@pytest.mark.slow  # launches torchrun
def test_two_processes_wrap_in_ddp_and_gather_every_rank(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    result = run_python([script, tmp_path], launcher=[python_tool("torchrun"), "--standalone", "--nproc_per_node", "2"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["[0, 10]", "[0, 10]"]
    # Each rank ends without the interpreter's finalisation: its at-exit handlers ran and its output
    # was flushed all the same.
    assert [(tmp_path / f"atexit{r}.txt").read_text() for r in (0, 1)] == ["ran", "ran"]
    assert "unflushed output of rank 0" in result.stdout and "unflushed output of rank 1" in result.stdout


def test_one_process_ends_with_its_status():
    assert end_rank(0) == 0 and end_rank(2) == 2
