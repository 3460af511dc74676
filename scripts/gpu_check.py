#!/usr/bin/env python
"""The GPU readiness check (``make gpu-check``; :mod:`dac_diveq.bench.gpu_check` lists what it runs).

Usage::

    python scripts/gpu_check.py              # on a CUDA machine (make gpu-check)
    python scripts/gpu_check.py --smoke      # CPU smoke run of the plumbing, a minute or two
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from dac_diveq.bench.gpu_check import BUDGET_S, ROOT, run


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny settings on the CPU (tests the plumbing)")
    parser.add_argument("--output", default=str(ROOT / "reports" / "gpu_check"), help="where README.md goes")
    parser.add_argument("--work", default=str(ROOT / "runs" / "gpu_check"), help="run folders and logs")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check")
    parser.add_argument("--allow-no-gpu", action="store_true",
                        help="exit 0 when there is no CUDA device (CI); by default that is a failure, so that a "
                             "GPU machine with a broken driver does not pass")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
