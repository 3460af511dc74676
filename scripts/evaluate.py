"""Evaluate a trained DiVeQDAC on reference speech over its bitrate ladder.

    python scripts/evaluate.py --weights_path runs/quickstart/diveq --input data/speech/test_real
    python scripts/evaluate.py --weights_path w.pth --ladder "1 4 12" --opus_kbps "6 8 12" --dnsmos

For each file and each n_quantizers of the ladder the file is compressed and decompressed with the
model (``compress``/``decompress``, the codec's real path) and scored: PESQ-WB/NB, STOI, ESTOI,
ViSQOL (speech mode, 16 kHz), SI-SDR, DAC's mel and multi-scale STFT distances (and DNSMOS with
``--dnsmos``). Codebook statistics of the full-rate codes are collected over the whole test set.
Writes ``per_file.csv`` and ``summary.json`` into ``--output`` (default ``<run>/eval``), plus an
``opus/`` folder with the same files when ``--opus_kbps`` is given and opus-tools is installed.
See :mod:`dac_diveq.codec.evaluate`.
"""
import sys
import warnings

import argbind

from dac_diveq.codec import evaluate as codec_evaluate
from dac_diveq import errors
from dac_diveq.training import config

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

evaluate = argbind.bind(codec_evaluate.evaluate, without_prefix=True)


def _normalise_argv(argv: list[str]) -> list[str]:
    """Accept ``--dnsmos true|false`` and space-separated lists (``--ladder 1 2 3``) besides
    argbind's own forms (``--dnsmos``, ``--ladder "1 2 3"``)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--dnsmos" and i + 1 < len(argv) and argv[i + 1].lower() in ("true", "false", "1", "0"):
            if argv[i + 1].lower() in ("true", "1"):
                out.append(arg)
            i += 2
            continue
        if arg in ("--ladder", "--opus_kbps"):
            values, j = [], i + 1
            while j < len(argv) and not argv[j].startswith("--"):
                values += argv[j].replace(",", " ").split()
                j += 1
            out += [arg, " ".join(values)]
            i = j
            continue
        out.append(arg)
        i += 1
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.pop_debug_flag(argv)
    try:
        args = config.parse_args(_normalise_argv(argv))
        with argbind.scope(args):
            return evaluate()
    except errors.UserError as exc:
        return errors.report(exc, debug)


if __name__ == "__main__":
    sys.exit(main())
