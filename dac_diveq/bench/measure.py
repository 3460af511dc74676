"""Timing and memory of training steps, shared by the benchmarks.

Times are per training step (forward + backward); the cases of one table are timed round-robin
(one step of each per round, in a shuffled order) so that a background load affects them alike.
Memory is the peak allocated during one step on CUDA, and "autograd-saved bytes" on CPU.
"""
from __future__ import annotations

import gc
import math
import platform
import random
import statistics
import time
import weakref
from fractions import Fraction
from typing import Callable

import torch

#: One training forward; returns the loss that ``backward()`` is called on.
Forward = Callable[[], torch.Tensor]


def resolve_device(name: str) -> torch.device:
    """The device a benchmark runs on.

    Args:
        name: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.

    Returns:
        The device.

    Raises:
        ConfigError: ``"cuda"`` asked for on a machine without CUDA.
    """
    from ..errors import ConfigError

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (``/proc/cpuinfo``; the platform's where absent)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def frames(duration: float, sample_rate: int, hop: int) -> int:
    """Latent frames of ``duration`` seconds (exact rational arithmetic, then ceil: 0.38 s at
    16 kHz and hop 320 is exactly 19 frames, not a float round-up to 20)."""
    return math.ceil(Fraction(str(duration)) * sample_rate / hop)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA launches are asynchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_round_robin(cases: dict[str, Forward], repeats: int, warmup: int,
                     device: torch.device) -> dict[str, list[float]]:
    """Seconds per training step (forward + backward) of every case.

    Each round runs every case once, in a freshly shuffled (seeded) order, so that a background
    load or the position in the round favours no case.

    Args:
        cases: name -> one training forward.
        repeats: timed rounds.
        warmup: untimed steps of each case first.
        device: where the cases run (synchronised around each step).

    Returns:
        name -> the ``repeats`` step times in seconds, in round order.
    """
    for forward in cases.values():
        for _ in range(warmup):
            forward().backward()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    rng = random.Random(0)
    gc.collect()
    gc.disable()  # a collection inside one case's step would charge it alone
    try:
        for _ in range(repeats):
            rng.shuffle(order)
            for name in order:
                forward = cases[name]
                sync(device)
                start = time.perf_counter()
                forward().backward()
                sync(device)
                times[name].append(time.perf_counter() - start)
    finally:
        gc.enable()
    return times


def step_memory(forward: Forward, device: torch.device) -> int:
    """Bytes of one training step.

    CUDA: peak allocated above the pre-step baseline during forward + backward.
    CPU: autograd-saved bytes, i.e. the unique storages that tensors saved for backward still hold
    when backward starts (saved tensors of graph branches that are already freed, such as DAC's
    distance graph, do not count). Deterministic, and what a step keeps alive between forward and
    backward.
    """
    gc.collect()
    if device.type == "cuda":
        sync(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        forward().backward()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    saved: list[weakref.ref] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    storages = {}
    for ref in saved:
        t = ref()
        if t is not None:
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    loss.backward()
    return sum(storages.values())


def median_ms(samples: list[float]) -> float:
    """The median of step times in seconds, in milliseconds."""
    return 1e3 * statistics.median(samples)


def spread_ms(samples: list[float]) -> str:
    """``"p25-p75"`` in milliseconds (``"-"`` under 4 samples)."""
    if len(samples) < 4:
        return "-"
    q = statistics.quantiles(samples, n=4)
    return f"{1e3 * q[0]:.2f}-{1e3 * q[2]:.2f}"


def mib(n: int) -> str:
    """Bytes as MiB with two decimals."""
    return f"{n / 2**20:.2f}"
