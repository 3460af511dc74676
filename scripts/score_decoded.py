"""Print PESQ-WB and STOI of decoded files against their references.

    python scripts/score_decoded.py data/speech/test_real runs/quickstart/diveq/decoded
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from dac_diveq import errors
from dac_diveq.codec import codec_io
from dac_diveq.metrics import speech


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="folder of reference wav files")
    parser.add_argument("decoded", type=Path, help="folder of decoded wav files (same relative names)")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.pop_debug_flag(argv)
    args = parser.parse_args(argv)
    refs = sorted(args.reference.rglob("*.wav"))
    if not refs:
        print(f"error: {args.reference}: no wav files", file=sys.stderr)
        return 2
    rows = []
    for ref_path in refs:
        dec_path = args.decoded / ref_path.relative_to(args.reference)
        if not dec_path.exists():
            print(f"error: {dec_path}: missing decoded file", file=sys.stderr)
            return 2
        read = []
        for path in (ref_path, dec_path):
            try:  # the checked reader: no FIFO, header bounds before any sample is read
                read.append(codec_io.read_audio(path))
            except codec_io.InputError as exc:
                return errors.report(codec_io.InputError(f"{path}: {exc}"), debug)
        (ref, sr), (dec, sr_dec) = read
        ref, dec = ref[0], dec[0]  # the first channel: the metrics score mono
        if sr != sr_dec:
            print(f"error: {dec_path}: sample rate {sr_dec} differs from the reference's {sr}", file=sys.stderr)
            return 2
        rows.append((ref_path.name, speech.pesq_wb(ref, dec, sr), speech.stoi(ref, dec, sr)))
    width = max(len(r[0]) for r in rows)
    print(f"{'file':<{width}}  PESQ-WB   STOI")
    for name, pesq, stoi in rows:
        print(f"{name:<{width}}  {pesq:7.2f}  {stoi:5.3f}")
    print(f"{'mean':<{width}}  {np.mean([r[1] for r in rows]):7.2f}  {np.mean([r[2] for r in rows]):5.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
