#!/usr/bin/env python
"""Inference speed of ``python -m dac_diveq encode|decode`` against ``python -m dac encode|decode``
on the same architecture and weights (:mod:`dac_diveq.bench.codec` says what is measured and how).

Usage::

    python scripts/bench_codec.py                          # 16 kHz layout, 1 and 10 min, 3 rounds, CPU
    python scripts/bench_codec.py --layout 44khz --device cuda --output docs/bench_codec_44khz.md
    python scripts/bench_codec.py --tiny --durations 6 --rounds 1   # a smoke run of the plumbing
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from dac_diveq.bench.codec import OPS, ROOT, run


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from dac_diveq.codec.layouts import LAYOUTS

    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="16khz", help="DAC's released architecture")
    p.add_argument("--durations", type=float, nargs="+", default=[60.0, 600.0], help="seconds of audio per file")
    p.add_argument("--rounds", type=int, default=3, help="paired rounds per file and operation")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=2, help="OMP/torch threads of every process (CPU)")
    p.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    p.add_argument("--tiny", action="store_true", help="tiny widths (the layout's rates and codebooks): smoke runs")
    p.add_argument("--work", default=str(ROOT / "runs" / "bench_codec"), help="models, audio and outputs")
    p.add_argument("--output", default="", help="also write the Markdown table to this file")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    return run(args, " ".join(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
