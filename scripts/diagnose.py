"""Does a codec's magnitude or its phase bind its PESQ? Hybrids of its STFT with the reference's.

    python scripts/diagnose.py --weights_path runs/compare/cpu/diveq/seed0 --input data/speech/dev
    python scripts/diagnose.py --input data/speech/dev          # no model: what PESQ needs (oracle conditions)

Prints a Markdown table of means over the files and writes ``--output`` (CSV of every file and signal)
when given. See :mod:`dac_diveq.codec.diagnostics`. Reads the dev set by default: it informs decisions.
"""
import argparse
import csv
import sys
import warnings
from pathlib import Path

import numpy as np

from dac_diveq import errors
from dac_diveq.codec import codec_io, diagnostics
from dac_diveq.metrics import speech

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--weights_path", default="", help="DiVeQDAC weights or run folder (default: no model, "
                                                           "the oracle conditions)")
    parser.add_argument("--input", default="data/speech/dev", help="folder of reference .wav files")
    parser.add_argument("--output", default="", help="CSV of every file and signal")
    parser.add_argument("--loudness_db", default="model", help="level for compress: model, LUFS or raw")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.pop_debug_flag(argv)
    args = parser.parse_args(argv)
    files = sorted(Path(args.input).glob("*.wav"))
    if not files:
        print(f"error: no .wav files in {args.input}", file=sys.stderr)
        return 2
    if args.weights_path:
        try:
            model = codec_io.load_model(Path(args.weights_path))
        except errors.UserError as exc:
            return errors.report(errors.UserError(f"{args.weights_path}: {exc}"), debug)
        print(model.source.describe(), file=sys.stderr)  # a run folder: best, else latest
        rows, order = diagnostics.diagnose(model.eval(), files, level=args.loudness_db), diagnostics.HYBRIDS
    else:
        rows = []
        for path in files:
            audio, sr = codec_io.read_audio(path)
            ref = audio.mean(0)
            for name, signal in diagnostics.oracle_conditions(ref, sr).items():
                rows.append({"file": path.name, "signal": name, "pesq_wb": speech.pesq_wb(ref, signal, sr),
                             "stoi": speech.stoi(ref, signal, sr)})
        order = list(dict.fromkeys(r["signal"] for r in rows))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with open(args.output, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["file", "signal", "pesq_wb", "stoi"])
            writer.writeheader()
            writer.writerows({k: (f"{v:.5f}" if isinstance(v, (float, np.floating)) else v) for k, v in r.items()}
                             for r in rows)
    print(f"{len(files)} files of {args.input}" + (f", codec {args.weights_path}" if args.weights_path else ""))
    print(diagnostics.mean_table(rows, order))
    return 0


if __name__ == "__main__":
    sys.exit(main())
