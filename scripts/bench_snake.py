#!/usr/bin/env python
"""DAC's Snake activation against the fused (compiled) one: forward + backward time and agreement.

    python scripts/bench_snake.py                 # the shapes of the CPU codec's residual units
    python scripts/bench_snake.py --repeats 20

Medians of ``--repeats`` after ``--warmup`` calls (the compilation happens in the warm-up);
the two run alternately, and the ratio is the median of per-round ratios.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

import numpy as np
import torch

SHAPES = ((8, 64, 4000), (8, 32, 8000), (8, 128, 1000))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    from dac.nn.layers import snake as dac_snake

    from dac_diveq.codec.snake import fused_snake

    print("| shape (B, C, T) | DAC snake fwd+bwd (ms) | fused (ms) | speed-up | max abs diff (out, grad x) |")
    print("|---|---|---|---|---|")
    for shape in SHAPES:
        x = torch.randn(*shape, requires_grad=True)
        alpha = (torch.rand(1, shape[1], 1) + 0.5).requires_grad_()
        grads = {}
        for name, fn in (("dac", dac_snake), ("fused", fused_snake)):
            out = fn(x, alpha)
            (gx,) = torch.autograd.grad(out.sum(), x)
            grads[name] = (out.detach(), gx)
        times: dict[str, list[float]] = {"dac": [], "fused": []}
        for i in range(args.warmup + args.repeats):
            for name, fn in (("dac", dac_snake), ("fused", fused_snake)):
                tic = time.perf_counter()
                torch.autograd.grad(fn(x, alpha).sum(), (x, alpha))
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - tic)
        ratio = np.median([d / f for d, f in zip(times["dac"], times["fused"])])
        diff = max((grads["dac"][k] - grads["fused"][k]).abs().max().item() for k in (0, 1))
        print(f"| {shape} | {1e3 * np.median(times['dac']):.1f} | {1e3 * np.median(times['fused']):.1f} | "
              f"{ratio:.2f}x | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
