#!/usr/bin/env python
"""Wall time of a real training step, per speed-up, as a ratio against today's trainer.

Each variant is one ``scripts/train.py`` process on the same conf, data, model and batch
(``--valid_freq 0 --log_freq 1``); the trainer logs ``train/other/step_time`` (data loading,
audiotools transforms, forward, losses, backward, optimizer) to TensorBoard for every step, and
this script reads it back. Variants run round-robin, in a shuffled order per round (A B A B ...),
so a background load affects them alike. Per variant: the median step after ``--warmup`` steps of
every process (compilation happens there); "ratio" is the median over rounds of
(baseline's median / variant's median) in the same round.

Usage::

    python scripts/bench_train.py                                  # quickstart conf, all variants
    python scripts/bench_train.py --variants baseline fused_snake --rounds 5 --steps 20
    python scripts/bench_train.py --output docs/bench_train.md
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: name -> (extra train.py arguments, environment overrides). "baseline" is today's trainer.
VARIANTS = {
    "baseline": ([], {}),
    "fused_snake": (["--fused_snake", "true"], {}),
    "bf16_autocast": (["--amp", "bf16"], {}),
    "fused_snake_1_thread": (["--fused_snake", "true"], {"OMP_NUM_THREADS": "1"}),
    "loader_worker": (["--num_workers", "1"], {}),
}


def step_times(log_dir: Path) -> np.ndarray:
    """Per-step wall times the trainer logged (``train/other/step_time``), in step order."""
    from dac_diveq.report.tensorboard import read_scalars

    curves = read_scalars(log_dir, ["train/other/step_time"])
    if "train/other/step_time" not in curves:
        raise RuntimeError(f"no step times logged under {log_dir}")
    return curves["train/other/step_time"][1]


def run_variant(name: str, conf: str, steps: int, warmup: int, extra: list[str], workdir: Path) -> float:
    """Train ``warmup + steps`` steps in a fresh process; return the median of the last ``steps``."""
    args, env_overrides = VARIANTS[name]
    save_path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--args.load", conf, "--save_path",
           str(save_path), "--num_iters", str(warmup + steps), "--valid_freq", "0", "--log_freq", "1",
           "--sample_freq", "0", *args, *extra]
    env = {**os.environ, **env_overrides}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"{name} failed: {tail[0]}")
    return float(np.median(step_times(save_path / "logs")[warmup:]))


def table(results: dict[str, list[float]], baseline: str = "baseline") -> str:
    """Markdown table: median step time per variant and its paired ratio against the baseline."""
    lines = ["| variant | median step (s) | speed-up vs baseline (median of per-round ratios) | rounds |",
             "|---|---|---|---|"]
    base = results.get(baseline)
    for name, times in results.items():
        ratio = "1.00" if name == baseline or base is None else \
            f"{np.median([b / t for b, t in zip(base, times)]):.2f}x"
        lines.append(f"| {name} | {np.median(times):.3f} | {ratio} | {len(times)} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default="conf/quickstart/diveq.yml")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps per process")
    parser.add_argument("--output", type=Path, help="also write the table (Markdown) here")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order of the variants per round")
    parser.add_argument("extra", nargs="*", help="more train.py arguments, after --")
    args = parser.parse_args(argv)
    if "baseline" not in args.variants:
        args.variants.insert(0, "baseline")
    order = random.Random(args.seed)
    results: dict[str, list[float]] = {name: [] for name in args.variants}
    with tempfile.TemporaryDirectory(prefix="bench_train-") as workdir:
        for r in range(args.rounds):
            names = list(args.variants)
            order.shuffle(names)
            for name in names:
                try:
                    results[name].append(run_variant(name, args.conf, args.steps, args.warmup, args.extra,
                                                     Path(workdir)))
                except RuntimeError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                print(f"round {r + 1}/{args.rounds} {name}: {results[name][-1]:.3f} s/step", flush=True)
    import torch

    header = (f"conf `{args.conf}` {' '.join(args.extra)}; {args.rounds} rounds x {args.steps} steps after "
              f"{args.warmup} warm-up; torch {torch.__version__}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, threads {os.environ.get('OMP_NUM_THREADS', 'default')}; "
              f"native bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    text = header + "\n\n" + table(results)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
