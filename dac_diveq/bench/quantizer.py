"""Speed and memory of the quantizer stages, as Markdown tables (``scripts/bench_quantizer.py``).

1. DAC stage shapes: every method of :data:`dac_diveq.quantize.METHODS` as a
   ``dac_diveq.codec.dac_layers.VectorQuantize`` stage against DAC's own
   ``dac.nn.quantize.VectorQuantize`` (same weights, same input), training mode,
   forward + backward of ``z_q.sum() + commitment.mean() + codebook.mean()``.
2. Core vs the authors' ``diveq`` package on flat ``(N, 8)`` latents.

Times are medians over ``repeats`` steps after ``warmup`` steps, timed round-robin
(:func:`~dac_diveq.bench.measure.time_round_robin`); memory is
:func:`~dac_diveq.bench.measure.step_memory`.
"""
from __future__ import annotations

import platform
import statistics
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .measure import Forward, device_name, frames, median_ms, mib, resolve_device, spread_ms, step_memory
from .measure import time_round_robin

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


@dataclass
class Settings:
    """What one benchmark run measures (the script's options).

    Attributes:
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.
        repeats: timed steps per case (the median is reported).
        warmup: untimed steps per case first.
        threads: torch CPU threads (None: torch's).
        quick: small shapes for a smoke run (the targets are then not judged).
        batch: DAC-stage batch (None: 72; quick: 4).
        duration: seconds per example (DAC's recipe: 0.38).
        input_dim: latent channels of the stage input.
        codebook_size, codebook_dim: the codebook.
        core_n: vectors of the core table (None: 65536; quick: 4096).
        skip_core: omit the core-vs-package table.
    """

    device: str = "auto"
    repeats: int = 20
    warmup: int = 5
    threads: Optional[int] = None
    quick: bool = False
    batch: Optional[int] = None
    duration: float = 0.38
    input_dim: int = 1024
    codebook_size: int = 1024
    codebook_dim: int = 8
    core_n: Optional[int] = None
    skip_core: bool = False

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        if self.repeats < 1 or self.warmup < 0:
            raise ConfigError("--repeats must be >= 1 and --warmup >= 0")
        if self.batch is None:
            self.batch = 4 if self.quick else 72
        if self.core_n is None:
            self.core_n = 4096 if self.quick else 65536


def verdict(ok: bool, settings: Settings) -> str:
    """Targets are defined at the full shapes; a quick run only smoke-tests."""
    if settings.quick:
        return "n/a (quick)"
    return "met" if ok else "MISSED"


# ---------------------------------------------------------------------------- cases
def dac_stage_steps(settings: Settings, n_frames: int, device: torch.device
                    ) -> tuple[dict[str, Forward], dict[str, torch.nn.Module]]:
    """DAC's stage and ours for every method, sharing weights and one input.

    Returns:
        ``(name -> training forward, name -> module)``; DAC's is named ``"dac"``.
    """
    from dac.nn.quantize import VectorQuantize as DacVectorQuantize

    from ..codec.dac_layers import VectorQuantize
    from ..quantize import METHODS

    torch.manual_seed(0)
    s = settings
    ref = DacVectorQuantize(s.input_dim, s.codebook_size, s.codebook_dim).to(device).train()
    modules: dict[str, torch.nn.Module] = {"dac": ref}
    for method in METHODS:
        options = {"skip_iters": 0} if method.startswith("sf_") else {}
        stage = VectorQuantize(s.input_dim, s.codebook_size, s.codebook_dim, method=method, **options)
        # Same projections and codebook as DAC's stage, so both see the same codes.
        stage.load_state_dict(ref.state_dict(), strict=False)
        modules[method] = stage.to(device).train()
    z = torch.randn(s.batch, s.input_dim, n_frames, device=device, requires_grad=True)

    def make(module: torch.nn.Module) -> Forward:
        def forward() -> torch.Tensor:
            module.zero_grad(set_to_none=True)
            z.grad = None
            z_q, commitment, codebook, _, _ = module(z)
            return z_q.sum() + commitment.mean() + codebook.mean()
        return forward

    return {name: make(m) for name, m in modules.items()}, modules


def core_steps(settings: Settings, device: torch.device) -> dict[str, Forward]:
    """Our core ``Quantizer`` and the authors' ``diveq`` class for each pair of :data:`CORE_PAIRS`,
    with the same codewords (so the same assignments).

    Returns:
        ``ours:<method>`` and ``ref:<class>`` -> training forward.
    """
    import diveq

    from ..quantize import Quantizer

    torch.manual_seed(0)
    z = torch.randn(settings.core_n, settings.codebook_dim, device=device, requires_grad=True)
    steps: dict[str, Forward] = {}
    for method, ref_name, ref_options in CORE_PAIRS:
        options = {"skip_iters": 0} if method.startswith("sf_") else {"replace_every": 0}
        ours = Quantizer(settings.codebook_size, settings.codebook_dim, method, **options).to(device).train()
        ref = getattr(diveq, ref_name)(settings.codebook_size, settings.codebook_dim, **ref_options)
        ref = ref.to(device).train()
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
def dac_stage_table(settings: Settings, label: str, sample_rate: int, hop: int,
                    device: torch.device) -> tuple[list[str], dict[str, float]]:
    """The table of one DAC shape.

    Returns:
        ``(Markdown lines, method -> median time / DAC's median time)``.

    Raises:
        RuntimeError: a stage was measured outside its quantizing phase (a benchmark bug).
    """
    n_frames = frames(settings.duration, sample_rate, hop)
    steps, modules = dac_stage_steps(settings, n_frames, device)
    times = time_round_robin(steps, settings.repeats, settings.warmup, device)
    memory = {name: step_memory(step, device) for name, step in steps.items()}
    for name, module in modules.items():
        maintenance = getattr(getattr(module, "codebook", None), "maintenance", None)
        if maintenance is not None and not maintenance.quantizing:
            raise RuntimeError(f"{name} was measured outside its quantizing phase")
    mem_label = "peak MiB" if device.type == "cuda" else "saved MiB"
    s = settings
    lines = [
        f"### {label}: input_dim {s.input_dim}, codebook {s.codebook_size} x {s.codebook_dim}, "
        f"batch {s.batch} x {n_frames} frames ({s.batch * n_frames} vectors; hop {hop} at {sample_rate} Hz, "
        f"{s.duration} s)",
        "",
        f"| method | fwd+bwd ms (median) | p25-p75 ms | min ms | time vs DAC | paired vs DAC | {mem_label} "
        f"| memory vs DAC | target (<= {STAGE_TARGET:.2f}x) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    ratios = {}
    for name, samples in times.items():
        ratios[name] = median_ms(samples) / median_ms(times["dac"])
        lines.append(_stage_row(name, samples, times["dac"], memory[name], memory["dac"], settings))
    return lines, ratios


def _stage_row(name: str, samples: list[float], dac_samples: list[float], memory: int, dac_memory: int,
               settings: Settings) -> str:
    t = median_ms(samples)
    ratio = t / median_ms(dac_samples)
    # Median over rounds of this case's time / DAC's time in the same round: less sensitive to
    # slow phases of a shared machine than the ratio of medians.
    paired = statistics.median(a / b for a, b in zip(samples, dac_samples))
    target = verdict(ratio <= STAGE_TARGET, settings) if name in DIVEQ_FAMILY else ""
    shown = "dac (native `dac.nn.quantize.VectorQuantize`)" if name == "dac" else name
    mem_ratio = memory / dac_memory if dac_memory else float("nan")
    return (f"| {shown} | {t:.2f} | {spread_ms(samples)} | {1e3 * min(samples):.2f} | {ratio:.2f}x "
            f"| {paired:.2f}x | {mib(memory)} | {mem_ratio:.2f}x | {target} |")


def core_table(settings: Settings, device: torch.device) -> tuple[list[str], dict[str, float]]:
    """The core-vs-package table.

    Returns:
        ``(Markdown lines, method -> package time / our time)``.
    """
    steps = core_steps(settings, device)
    times = time_round_robin(steps, settings.repeats, settings.warmup, device)
    lines = [
        f"### Core vs the authors' `diveq` package: ({settings.core_n}, {settings.codebook_dim}) latents, "
        f"codebook {settings.codebook_size}, euclidean lookup",
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
        target = verdict(speedups[method] >= CORE_TARGET, settings) if method == "diveq" else ""
        lines.append(f"| `Quantizer(..., \"{method}\")` | {ours_t:.2f} | `diveq.{ref_name}` | {ref_t:.2f} "
                     f"| {speedups[method]:.2f}x | {target} |")
    return lines, speedups


def header(settings: Settings, device: torch.device) -> list[str]:
    """The versions, device and measuring rules the tables were taken with."""
    import dac

    from ..quantize import METHODS

    return [
        "## Quantizer benchmark",
        "",
        f"- torch {torch.__version__}, descript-audio-codec {getattr(dac, '__version__', '?')}, "
        f"python {platform.python_version()}",
        f"- device: {device.type} ({device_name(device)}), torch threads: {torch.get_num_threads()}",
        f"- repeats {settings.repeats} (median), warm-up {settings.warmup}; methods: {', '.join(METHODS)}",
        "- memory: " + ("peak `torch.cuda.max_memory_allocated` above the pre-step baseline"
                        if device.type == "cuda" else
                        "autograd-saved bytes of one step (unique storages, `saved_tensors_hooks`)"),
        "",
    ]


def run(settings: Settings, emit: Callable[[str], None] = lambda text: print(text, flush=True)) -> None:
    """Measure and emit every table, each as soon as it is measured (a long GPU run shows progress).

    Args:
        settings: what to measure.
        emit: where each block of Markdown goes (default: stdout, flushed).

    Raises:
        ConfigError: ``--device cuda`` without CUDA.
    """
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device)
    with warnings.catch_warnings():
        # DAC's WNConv1d uses the deprecated torch.nn.utils.weight_norm; not our concern here.
        warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)
        emit("\n".join(header(settings, device)))
        for label, sample_rate, hop in DAC_SHAPES:
            lines, _ = dac_stage_table(settings, label, sample_rate, hop, device)
            emit("\n".join(lines) + "\n")
        if not settings.skip_core:
            lines, _ = core_table(settings, device)
            emit("\n".join(lines))
            emit("\nThe package computes its perplexity with `.item()` every forward (a host sync on CUDA); "
                 "that is part of what is compared.")
