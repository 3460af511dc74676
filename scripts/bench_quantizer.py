#!/usr/bin/env python
"""Speed and memory of the quantizer stages, printed as Markdown tables.

1. DAC stage shapes: every method of :data:`dac_diveq.quantize.METHODS` as a
   ``dac_diveq.codec.dac_layers.VectorQuantize`` stage against DAC's own
   ``dac.nn.quantize.VectorQuantize`` (same weights, same input), training mode,
   forward + backward of ``z_q.sum() + commitment.mean() + codebook.mean()``.
2. Core vs the authors' ``diveq`` package on flat ``(N, 8)`` latents.

Times are medians over ``--repeats`` steps after ``--warmup`` steps; the cases
of one table are timed round-robin (one step of each per round, in a shuffled
order) so that a background load affects them alike. Memory is the peak
allocated during one step on CUDA, and "autograd-saved bytes" on CPU: the unique
storages that tensors saved for backward (seen through
``torch.autograd.graph.saved_tensors_hooks``) still hold when backward starts,
which is deterministic and is what a training step keeps alive between forward
and backward.

Usage::

    python scripts/bench_quantizer.py                 # CUDA when available, else CPU
    python scripts/bench_quantizer.py --device cpu --repeats 20 --warmup 5
    python scripts/bench_quantizer.py --quick --repeats 1 --warmup 0   # smoke run
"""
from __future__ import annotations

import argparse
import gc
import math
import platform
import random
import statistics
import sys
import time
import warnings
import weakref
from fractions import Fraction
from typing import Callable, Optional, Sequence

import torch

STAGE_TARGET = 1.10  # DiVeQ-family stage time / DAC's native STE stage time, at most
CORE_TARGET = 2.0  # diveq package time / our core time, at least (DiVeQ)
DIVEQ_FAMILY = ("diveq", "diveq_detach", "sf_diveq", "sf_diveq_detach")
CORE_PAIRS = (  # our method, the package's class, its extra constructor arguments
    ("diveq", "DIVEQ", dict(codebook_reset=False, allow_warning=False, verbose=False)),
    ("diveq_detach", "DIVEQDetach", dict(codebook_reset=False, allow_warning=False, verbose=False)),
    ("sf_diveq", "SFDIVEQ", dict(skip_iters=0, avg_iters=0, allow_warning=False)),
    ("sf_diveq_detach", "SFDIVEQDetach", dict(skip_iters=0, avg_iters=0, allow_warning=False)),
)
# (label, sample rate, hop) of the DAC stage shapes; latent dim 1024 for both models.
DAC_SHAPES = (("DAC 44.1 kHz", 44100, 512), ("DAC 16 kHz", 16000, 320))

Forward = Callable[[], torch.Tensor]  # one training forward, returns the loss


# ---------------------------------------------------------------------------- setup
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when available, else CPU")
    p.add_argument("--repeats", type=int, default=20, help="timed steps per case (median reported)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per case first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="small shapes for a smoke run")
    p.add_argument("--batch", type=int, default=None, help="DAC-stage batch (default 72; quick: 4)")
    p.add_argument("--duration", type=float, default=0.38, help="seconds per example (DAC: 0.38)")
    p.add_argument("--input-dim", type=int, default=1024, help="latent channels of the stage input")
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--codebook-dim", type=int, default=8)
    p.add_argument("--core-n", type=int, default=None,
                   help="vectors of the core table (default 65536; quick: 4096)")
    p.add_argument("--skip-core", action="store_true", help="omit the core-vs-package table")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    if args.batch is None:
        args.batch = 4 if args.quick else 72
    if args.core_n is None:
        args.core_n = 4096 if args.quick else 65536
    return args


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    return torch.device(name)


def device_name(device: torch.device) -> str:
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
    """Latent frames of ``duration`` seconds (exact rational arithmetic, then ceil)."""
    return math.ceil(Fraction(str(duration)) * sample_rate / hop)


# ---------------------------------------------------------------------------- measuring
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_round_robin(cases: dict[str, Forward], repeats: int, warmup: int,
                     device: torch.device) -> dict[str, list[float]]:
    """Seconds per training step (forward + backward) of every case.

    Each round runs every case once, in a freshly shuffled (seeded) order, so that
    a background load or the position in the round favours no case.
    """
    for forward in cases.values():
        for _ in range(warmup):
            forward().backward()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    rng = random.Random(0)
    gc.collect()
    gc.disable()
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
    CPU: autograd-saved bytes, i.e. the unique storages that tensors saved for backward
    still hold when backward starts (saved tensors of graph branches that are already
    freed, such as DAC's distance graph, do not count).
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
    return 1e3 * statistics.median(samples)


def spread_ms(samples: list[float]) -> str:
    if len(samples) < 4:
        return "-"
    q = statistics.quantiles(samples, n=4)
    return f"{1e3 * q[0]:.2f}-{1e3 * q[2]:.2f}"


def verdict(ok: bool, args: argparse.Namespace) -> str:
    """Targets are defined at the full shapes; a --quick run only smoke-tests."""
    if args.quick:
        return "n/a (quick)"
    return "met" if ok else "MISSED"


def mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


# ---------------------------------------------------------------------------- cases
def dac_stage_steps(args: argparse.Namespace, n_frames: int, device: torch.device
                    ) -> tuple[dict[str, Forward], dict[str, torch.nn.Module]]:
    from dac.nn.quantize import VectorQuantize as DacVectorQuantize

    from dac_diveq.codec.dac_layers import VectorQuantize
    from dac_diveq.quantize import METHODS

    torch.manual_seed(0)
    ref = DacVectorQuantize(args.input_dim, args.codebook_size, args.codebook_dim).to(device).train()
    modules: dict[str, torch.nn.Module] = {"dac": ref}
    for method in METHODS:
        options = {"skip_iters": 0} if method.startswith("sf_") else {}
        stage = VectorQuantize(args.input_dim, args.codebook_size, args.codebook_dim, method=method, **options)
        # Same projections and codebook as DAC's stage, so both see the same codes.
        stage.load_state_dict(ref.state_dict(), strict=False)
        modules[method] = stage.to(device).train()
    z = torch.randn(args.batch, args.input_dim, n_frames, device=device, requires_grad=True)

    def make(module: torch.nn.Module) -> Forward:
        def forward() -> torch.Tensor:
            module.zero_grad(set_to_none=True)
            z.grad = None
            z_q, commitment, codebook, _, _ = module(z)
            return z_q.sum() + commitment.mean() + codebook.mean()
        return forward

    return {name: make(m) for name, m in modules.items()}, modules


def core_steps(args: argparse.Namespace, device: torch.device) -> dict[str, Forward]:
    import diveq

    from dac_diveq.quantize import Quantizer

    torch.manual_seed(0)
    z = torch.randn(args.core_n, args.codebook_dim, device=device, requires_grad=True)
    steps: dict[str, Forward] = {}
    for method, ref_name, ref_options in CORE_PAIRS:
        options = {"skip_iters": 0} if method.startswith("sf_") else {"replace_every": 0}
        ours = Quantizer(args.codebook_size, args.codebook_dim, method, **options).to(device).train()
        ref = getattr(diveq, ref_name)(args.codebook_size, args.codebook_dim, **ref_options).to(device).train()
        with torch.no_grad():
            ref.codebook.copy_(ours.weight)  # same codewords, same assignments
        assert not method.startswith("sf_") or ours.maintenance.quantizing

        def ours_step(q=ours) -> torch.Tensor:
            q.zero_grad(set_to_none=True)
            z.grad = None
            return q(z).z_q.sum()

        def ref_step(q=ref) -> torch.Tensor:
            q.zero_grad(set_to_none=True)
            z.grad = None
            return q(z)[0].sum()

        steps[f"ours:{method}"] = ours_step
        steps[f"ref:{ref_name}"] = ref_step
    return steps


# ---------------------------------------------------------------------------- tables
def dac_stage_table(args: argparse.Namespace, label: str, sample_rate: int, hop: int,
                    device: torch.device) -> tuple[list[str], dict[str, float]]:
    n_frames = frames(args.duration, sample_rate, hop)
    steps, modules = dac_stage_steps(args, n_frames, device)
    times = time_round_robin(steps, args.repeats, args.warmup, device)
    memory = {name: step_memory(step, device) for name, step in steps.items()}
    for name, module in modules.items():
        maintenance = getattr(getattr(module, "codebook", None), "maintenance", None)
        if maintenance is not None and not maintenance.quantizing:
            raise RuntimeError(f"{name} was measured outside its quantizing phase")
    mem_label = "peak MiB" if device.type == "cuda" else "saved MiB"
    base_t, base_m = median_ms(times["dac"]), memory["dac"]
    lines = [
        f"### {label}: input_dim {args.input_dim}, codebook {args.codebook_size} x {args.codebook_dim}, "
        f"batch {args.batch} x {n_frames} frames ({args.batch * n_frames} vectors; hop {hop} at {sample_rate} Hz, "
        f"{args.duration} s)",
        "",
        f"| method | fwd+bwd ms (median) | p25-p75 ms | min ms | time vs DAC | paired vs DAC | {mem_label} "
        f"| memory vs DAC | target (<= {STAGE_TARGET:.2f}x) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    ratios = {}
    for name, samples in times.items():
        t = median_ms(samples)
        ratio = t / base_t
        ratios[name] = ratio
        # Median over rounds of this case's time / DAC's time in the same round: less
        # sensitive to slow phases of a shared machine than the ratio of medians.
        paired = statistics.median(a / b for a, b in zip(samples, times["dac"]))
        target = verdict(ratio <= STAGE_TARGET, args) if name in DIVEQ_FAMILY else ""
        shown = "dac (native `dac.nn.quantize.VectorQuantize`)" if name == "dac" else name
        mem_ratio = memory[name] / base_m if base_m else float("nan")
        lines.append(f"| {shown} | {t:.2f} | {spread_ms(samples)} | {1e3 * min(samples):.2f} | {ratio:.2f}x "
                     f"| {paired:.2f}x | {mib(memory[name])} | {mem_ratio:.2f}x | {target} |")
    return lines, ratios


def core_table(args: argparse.Namespace, device: torch.device) -> tuple[list[str], dict[str, float]]:
    steps = core_steps(args, device)
    times = time_round_robin(steps, args.repeats, args.warmup, device)
    lines = [
        f"### Core vs the authors' `diveq` package: ({args.core_n}, {args.codebook_dim}) latents, "
        f"codebook {args.codebook_size}, euclidean lookup",
        "",
        f"| ours | ms (median) | diveq package | ms (median) | speed-up (package / ours) "
        f"| target (>= {CORE_TARGET:.1f}x) |",
        "|---|---:|---|---:|---:|:---:|",
    ]
    speedups = {}
    for method, ref_name, _ in CORE_PAIRS:
        ours_t = median_ms(times[f"ours:{method}"])
        ref_t = median_ms(times[f"ref:{ref_name}"])
        speedups[method] = ref_t / ours_t
        target = verdict(speedups[method] >= CORE_TARGET, args) if method == "diveq" else ""
        lines.append(f"| `Quantizer(..., \"{method}\")` | {ours_t:.2f} | `diveq.{ref_name}` | {ref_t:.2f} "
                     f"| {speedups[method]:.2f}x | {target} |")
    return lines, speedups


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    with warnings.catch_warnings():
        # DAC's WNConv1d uses the deprecated torch.nn.utils.weight_norm; not our concern here.
        warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)
        return run(args)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    import dac

    from dac_diveq.quantize import METHODS

    out = [
        "## Quantizer benchmark",
        "",
        f"- torch {torch.__version__}, descript-audio-codec {getattr(dac, '__version__', '?')}, "
        f"python {platform.python_version()}",
        f"- device: {device.type} ({device_name(device)}), torch threads: {torch.get_num_threads()}",
        f"- repeats {args.repeats} (median), warm-up {args.warmup}; methods: {', '.join(METHODS)}",
        "- memory: " + ("peak `torch.cuda.max_memory_allocated` above the pre-step baseline"
                        if device.type == "cuda" else
                        "autograd-saved bytes of one step (unique storages, `saved_tensors_hooks`)"),
        "",
    ]
    print("\n".join(out), flush=True)
    for label, sample_rate, hop in DAC_SHAPES:
        lines, _ = dac_stage_table(args, label, sample_rate, hop, device)
        print("\n".join(lines) + "\n", flush=True)
    if not args.skip_core:
        lines, _ = core_table(args, device)
        print("\n".join(lines), flush=True)
        print("\nThe package computes its perplexity with `.item()` every forward (a host sync on CUDA); "
              "that is part of what is compared.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
