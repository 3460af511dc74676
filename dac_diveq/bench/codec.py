"""Inference speed against DAC's own command line: ``python -m dac_diveq encode|decode`` vs
``python -m dac encode|decode`` on the same architecture and the same weights.

A stock ``dac.model.DAC`` of one of DAC's released layouts (random weights: none can be downloaded
here, and speed does not depend on them) and the same weights as a :class:`DiVeQDAC` (``from_dac``,
DiVeQ with DAC's cosine lookup: the codes are DAC's) encode and decode speech files of each
``--durations`` (real speech from ``data/speech/test_real``, looped; generated speech-like audio
without it). Each round runs both tools, alternating which goes first, each as its own process
(the wall time a user waits, start-up included). Reported: median wall time per tool, the median
of the per-round ratios ours/DAC (paired: a background load slows both alike) against the 1.05
target, real-time factors (wall / audio duration), and whether the two tools wrote the same codes. Both
tools decode the file ours wrote (stock DAC cannot decode its own files at some lengths up to the
5 s window at 16 and 24 kHz; see :mod:`dac_diveq.codec.framing`).

Usage::

    python scripts/bench_codec.py                          # 16 kHz layout, 1 and 10 min, 3 rounds, CPU
    python scripts/bench_codec.py --layout 44khz --device cuda --output docs/bench_codec_44khz.md
    python scripts/bench_codec.py --tiny --durations 6 --rounds 1   # a smoke run of the plumbing
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository (scripts, confs, runs)
TARGET = 1.05  # ours / DAC's wall time, at most
TOOLS = ("dac", "ours")
OPS = ("encode", "decode")


# ---------------------------------------------------------------------------- inputs
def make_models(layout: str, tiny: bool, work: Path) -> tuple[Path, Path, int]:
    """A stock DAC weights file and the same weights as a DiVeQDAC file; their sample rate."""
    import dac
    import torch

    from dac_diveq.codec.layouts import LAYOUTS
    from dac_diveq.codec.register import from_dac

    architecture = dict(LAYOUTS[layout])
    if tiny:
        architecture.update(encoder_dim=4, decoder_dim=16, latent_dim=32 if architecture["latent_dim"] else None)
    torch.manual_seed(0)
    stock = dac.model.DAC(**architecture).eval()
    stock_path, ours_path = work / "dac_weights.pth", work / "ours_weights.pth"
    work.mkdir(parents=True, exist_ok=True)
    stock.save(str(stock_path), package=False)
    from_dac(stock, method="diveq").eval().save(str(ours_path), package=False)
    return stock_path, ours_path, architecture["sample_rate"]


def speech_source(sample_rate: int) -> np.ndarray:
    """Mono speech at ``sample_rate``: the real clips of data/speech/test_real back to back, or
    generated speech-like audio (a gliding harmonic tone at syllable rate) when they are absent."""
    import soundfile as sf

    clips = sorted((ROOT / "data" / "speech" / "test_real").glob("*.wav"))
    pieces = []
    for clip in clips:
        audio, sr = sf.read(clip, dtype="float32", always_2d=True)
        pieces.append(resample(audio[:, 0], sr, sample_rate))
    if pieces:
        return np.concatenate(pieces)
    t = np.arange(10 * sample_rate) / sample_rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / sample_rate) / k for k in range(1, 8))
    return (0.3 * wave * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def resample(audio: np.ndarray, source: int, target: int) -> np.ndarray:
    if source == target:
        return audio
    from scipy.signal import resample_poly

    g = np.gcd(source, target)
    return resample_poly(audio, target // g, source // g).astype(np.float32)


def make_audio(seconds: float, sample_rate: int, work: Path) -> Path:
    """A wav of ``seconds`` of speech (the source looped) at ``sample_rate``."""
    import soundfile as sf

    path = work / f"speech_{seconds:g}s.wav"
    if not path.exists():
        source = speech_source(sample_rate)
        n = int(seconds * sample_rate)
        sf.write(path, np.resize(source, n), sample_rate, subtype="PCM_16")
    return path


# ---------------------------------------------------------------------------- timing
def command(tool: str, op: str, source: Path, output: Path, weights: Path, device: str) -> list[str]:
    module = "dac" if tool == "dac" else "dac_diveq"
    return [sys.executable, "-m", module, op, str(source), "--output", str(output), "--weights_path", str(weights),
            "--device", device]


def run_timed(args: list[str], threads: int) -> float:
    """Wall seconds of one process; a failure stops the benchmark with its last line."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(f"{' '.join(args[1:4])} failed: {lines[-1] if lines else result.returncode}")
    return seconds


def paired_ratio(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """Median over rounds of ours / DAC's time in the same round."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


def ours_file(work: Path, source: Path, round_: int) -> Path:
    """The ``.dac`` file our encoder writes for ``source`` in round ``round_``."""
    return work / "out" / f"{source.stem}_ours_{round_}" / f"{source.stem}.dac"


def same_codes(dac_file: Path, ours: Path) -> str:
    """``"yes"``, ``"NO"``, or ``"+N frame(s)"`` when ours holds more frames than DAC's file: the
    frames stock DAC's decoder needs at lengths where its own file does not decode
    (:mod:`dac_diveq.codec.framing`), so the codes cannot be DAC's there.

    Both files are read in DAC's format without arbitrary unpickling.
    """
    from dac_diveq.codec.codec_io import load_dac

    a, b = load_dac(dac_file)[0].codes.numpy(), load_dac(ours)[0].codes.numpy()
    if b.shape[-1] > a.shape[-1]:
        extra = b.shape[-1] - a.shape[-1]
        return f"+{extra} frame{'s' if extra > 1 else ''}"
    return "yes" if np.array_equal(a, b) else "NO"


def bench_file(source: Path, seconds: float, args, weights: dict[str, Path], work: Path) -> list[dict]:
    """Paired rounds of every operation on one file: one result row per operation."""
    rows = []
    times = {op: {tool: [] for tool in TOOLS} for op in args.ops}
    identical = None
    for r in range(args.rounds):
        order = TOOLS if r % 2 == 0 else TOOLS[::-1]
        for op in sorted(args.ops, key=OPS.index):  # decode reads what encode wrote
            for tool in order:
                folder = work / "out" / f"{source.stem}_{tool}_{r}"
                # Outputs of an earlier run are removed first: our CLI keeps an existing output
                # (without --overwrite) where DAC's replaces it, which would time a skip.
                if op == "encode":
                    target, out = source, folder
                    shutil.rmtree(folder, ignore_errors=True)
                else:  # both tools decode the file ours wrote this round: stock DAC cannot decode its
                    # own files of up to 5 s whose length hits its decoder's 8-sample deficit (16, 24 kHz)
                    target, out = ours_file(work, source, r), folder
                    if "encode" not in args.ops and not target.exists():  # --ops decode alone: untimed
                        run_timed(command("ours", "encode", source, target.parent, weights["ours"], args.device),
                                  args.threads)
                    (folder / f"{source.stem}.wav").unlink(missing_ok=True)
                times[op][tool].append(run_timed(command(tool, op, target, out, weights[tool], args.device),
                                                 args.threads))
                # Progress, and the raw times should a long benchmark be cut short.
                print(f"{seconds:g} s, round {r + 1}/{args.rounds}, {op}, {tool}: {times[op][tool][-1]:.2f} s",
                      file=sys.stderr, flush=True)
        if identical is None and "encode" in args.ops:
            identical = same_codes(work / "out" / f"{source.stem}_dac_{r}" / f"{source.stem}.dac",
                                   ours_file(work, source, r))
    for op in args.ops:
        dac_t, ours_t = times[op]["dac"], times[op]["ours"]
        rows.append(dict(file=f"{seconds:g} s", op=op, dac=statistics.median(dac_t), ours=statistics.median(ours_t),
                         ratio=paired_ratio(ours_t, dac_t), seconds=seconds, identical=identical))
    return rows


def table(rows: Sequence[dict], rounds: int) -> list[str]:
    """Markdown: one row per file and operation."""
    lines = [f"| audio | operation | DAC (s, median of {rounds}) | ours (s) | ours / DAC (paired median) | "
             f"target <= {TARGET} | RTF DAC | RTF ours | same codes |",
             "|---|---|---:|---:|---:|:---:|---:|---:|:---:|"]
    for row in rows:
        verdict = "met" if row["ratio"] <= TARGET else "MISSED"
        lines.append(f"| {row['file']} | {row['op']} | {row['dac']:.2f} | {row['ours']:.2f} | {row['ratio']:.3f}x | "
                     f"{verdict} | {row['dac'] / row['seconds']:.3f} | {row['ours'] / row['seconds']:.3f} | "
                     f"{_same_text(row['identical'])} |")
    return lines


def _same_text(identical) -> str:
    """The table's "same codes" cell: :func:`same_codes`' verdict, or "-" when nothing was encoded."""
    if identical is None:
        return "-"
    if isinstance(identical, bool):
        return "yes" if identical else "NO"
    return identical


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        return f"{names[0]}, {os.cpu_count()} CPUs" if names else platform.machine()
    except OSError:
        return platform.machine()


def run(args: argparse.Namespace, command_line: str) -> int:
    """The benchmark for ``scripts/bench_codec.py``'s options; prints (and writes) the table.

    Args:
        args: the script's parsed options.
        command_line: its arguments as typed, for the report.

    Returns:
        The exit status (1: a tool failed).
    """
    import dac
    import torch

    work = Path(args.work)
    stock_path, ours_path, sample_rate = make_models(args.layout, args.tiny, work)
    weights = {"dac": stock_path, "ours": ours_path}
    rows = []
    try:
        for seconds in args.durations:
            rows += bench_file(make_audio(seconds, sample_rate, work), seconds, args, weights, work)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"cpu ({cpu_name()})"
    text = [f"## Codec inference speed: `python -m dac_diveq` vs `python -m dac` ({args.layout}"
            f"{', tiny widths' if args.tiny else ''})", "",
            f"- {device}, {args.threads} threads per process; torch {torch.__version__}, descript-audio-codec "
            f"{getattr(dac, '__version__', '?')}, python {platform.python_version()}",
            f"- `python scripts/bench_codec.py {command_line}`".rstrip(),
            "- wall time of each command line process (interpreter start-up and model loading included), "
            "both tools alternating first; RTF = wall time / audio duration", "", *table(rows, args.rounds)]
    print("\n".join(text))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text("\n".join(text) + "\n")
    return 0
