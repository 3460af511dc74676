"""Process-group set-up and DDP wrapping for the training entry points (``torchrun`` or one process)."""
from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import NoReturn, Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def distributed_context() -> tuple[int, int, torch.device]:
    """Initialise ``torch.distributed`` when launched by torchrun.

    Returns:
        ``(rank, world_size, device)``: ``(0, 1, cpu or cuda:0)`` for a single process; under
        torchrun the process group is initialised (NCCL on GPUs, gloo on CPUs) and the device is
        ``cuda:LOCAL_RANK`` when CUDA is available.
    """
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        # A fall-back only: the entry points end a rank with end_rank (see there for why).
        atexit.register(_destroy_process_group)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, device


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shutdown(completed: bool = True) -> None:
    """Leave the process group: free the DDP wrappers no longer referenced, wait for every rank
    (when the run ``completed``; after an error the other ranks may never arrive), destroy the group.

    Nothing to do in a single process. Call it after the last collective, with the models' DDP
    wrappers out of scope.
    """
    if not dist.is_initialized():
        return
    # DDP wrappers sit in reference cycles (their hooks): collect them while the group is alive.
    gc.collect()
    if completed:
        dist.barrier()
    dist.destroy_process_group()


def end_rank(status: int) -> int:
    """How a training entry point ends: ``status`` in a single process; in a rank of a
    distributed run, :func:`shutdown` and then the end of the process with ``status``, without
    the interpreter's finalisation.

    Why: with torch 2.11, a DDP reducer keeps its gloo process group (and the group's worker
    threads) alive past ``destroy_process_group``, and a worker thread may still be releasing the
    tensors of the last collective (a checkpoint's RNG gather), which needs the GIL. Once the
    interpreter is finalising, CPython ends any thread that asks for the GIL with
    ``pthread_exit``, which unwinds through gloo's ``noexcept`` destructor: ``std::terminate``,
    SIGABRT ("terminate called without an active exception"), and torchrun reports the run
    failed. A rank whose group is destroyed has nothing left for finalisation to do, so it
    flushes its output, runs the at-exit handlers and ends with ``os._exit``.
    """
    if not dist.is_initialized():
        return status
    shutdown(completed=status == 0)
    _exit_without_finalisation(status)


def _exit_without_finalisation(status: int) -> NoReturn:
    atexit._run_exitfuncs()  # what a normal exit runs first: TensorBoard writers, logging
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def wrap(module: Optional[torch.nn.Module], device: torch.device,
         world_size: int) -> Optional[torch.nn.Module]:
    """``module`` in :class:`DistributedDataParallel` when ``world_size > 1``, else itself.

    Args:
        module: a model already on ``device`` (None passes through, for optional parts such as
            a discriminator).
        device: this process's device (its index is DDP's ``device_ids`` on CUDA).
        world_size: number of processes.
    """
    if module is None or world_size <= 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a :class:`DistributedDataParallel` wrapper (or the model itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def gather_objects(obj, world_size: int) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` for one process)."""
    if world_size <= 1:
        return [obj]
    gathered = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def any_rank(flag: bool, device: torch.device, world_size: int) -> bool:
    """Whether ``flag`` is true on any rank (a collective: every rank must call it at the same step)."""
    if world_size <= 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
