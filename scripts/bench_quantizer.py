#!/usr/bin/env python
"""Speed and memory of the quantizer stages, printed as Markdown tables
(:mod:`dac_diveq.bench.quantizer` says what is measured and how).

Usage::

    python scripts/bench_quantizer.py                 # CUDA when available, else CPU
    python scripts/bench_quantizer.py --device cpu --repeats 20 --warmup 5
    python scripts/bench_quantizer.py --quick --repeats 1 --warmup 0   # smoke run
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from dac_diveq import errors
from dac_diveq.bench.quantizer import Settings, run


def parse_args(argv: Optional[Sequence[str]] = None) -> Settings:
    """The command line as :class:`~dac_diveq.bench.quantizer.Settings` (its fields, its defaults)."""
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when available, else CPU")
    p.add_argument("--repeats", type=int, default=Settings.repeats, help="timed steps per case (median reported)")
    p.add_argument("--warmup", type=int, default=Settings.warmup, help="untimed steps per case first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="small shapes for a smoke run")
    p.add_argument("--batch", type=int, default=None, help="DAC-stage batch (default 72; quick: 4)")
    p.add_argument("--duration", type=float, default=Settings.duration, help="seconds per example (DAC: 0.38)")
    p.add_argument("--input-dim", type=int, default=Settings.input_dim, help="latent channels of the stage input")
    p.add_argument("--codebook-size", type=int, default=Settings.codebook_size)
    p.add_argument("--codebook-dim", type=int, default=Settings.codebook_dim)
    p.add_argument("--core-n", type=int, default=None, help="vectors of the core table (default 65536; quick: 4096)")
    p.add_argument("--skip-core", action="store_true", help="omit the core-vs-package table")
    return Settings(**vars(p.parse_args(argv)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (2: a bad option, in one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.pop_debug_flag(argv)
    try:
        run(parse_args(argv))
    except errors.UserError as exc:
        return errors.report(exc, debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
