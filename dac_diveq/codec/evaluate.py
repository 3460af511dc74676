"""Evaluate a trained :class:`DiVeQDAC` on reference speech over its bitrate ladder (and Opus beside it).

For each file and each ``n_quantizers`` of the ladder the file is compressed and decompressed with the
model (``compress``/``decompress``, the codec's real path) and scored: PESQ-WB/NB, STOI, ESTOI, ViSQOL
(speech mode, 16 kHz), SI-SDR, DAC's mel and multi-scale STFT distances (and DNSMOS on request).
Codebook statistics of the full-rate codes are collected over the whole test set. Writes
``per_file.csv`` and ``summary.json`` (see :mod:`dac_diveq.report.eval_io`), plus an ``opus/`` folder
with the same files when Opus bitrates are given and opus-tools is installed.

Heavy imports (DAC, audiotools, the metrics) happen inside the functions: the scoring workers are
spawned processes that import this module and need only :func:`score_job`.

No postponed annotations here: argbind reads :func:`evaluate`'s annotations to parse the command line.
"""
import dataclasses
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from ..errors import error_line, one_line
from ..report.eval_io import EvalError, new_summary, read_seed, write_outputs
from .model import WINDOW_S, parse_level

ROW_KEYS = ["file", "n_quantizers", "bitrate_kbps"]


def by_bitrate(rows: list[dict], metrics: list[str], key: str) -> dict:
    """Mean of every metric per value of ``key`` (finite values only; None when there is none)."""
    out = {}
    for value in sorted({r[key] for r in rows}):
        group = [r for r in rows if r[key] == value]
        entry = {"bitrate_kbps": group[0]["bitrate_kbps"], "n_files": len(group)}
        for m in metrics:
            vals = np.array([r[m] for r in group], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            entry[m] = float(vals.mean()) if vals.size else None
        out[f"{value:g}" if isinstance(value, float) else str(value)] = entry
    return out


# ----------------------------------------------------------------------------- metric jobs


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")


def score_job(job: tuple) -> tuple:
    """``(file, n, ref, deg, sample_rate, dnsmos)`` -> ``(file, n, values, errors)``."""
    from ..metrics import speech

    name, n, ref, deg, sample_rate, with_dnsmos = job
    values, errors = speech.score(ref, deg, sample_rate, with_dnsmos)
    return name, n, values, errors


class Scorer:
    """Runs :func:`score_job` in a process pool (or inline with one worker), with a progress bar.

    Args:
        workers: processes (1: score in this process).
        total: jobs expected, for the progress bar.
        desc: progress-bar label.
    """

    def __init__(self, workers: int, total: int, desc: str) -> None:
        import tqdm

        self.pool = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker)
        self.futures, self.results = [], []
        self.bar = tqdm.tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)

    def submit(self, job: tuple) -> None:
        if self.pool is None:
            self.results.append(score_job(job))
            self.bar.update()
        else:
            future = self.pool.submit(score_job, job)
            future.add_done_callback(lambda _: self.bar.update())
            self.futures.append(future)

    def finish(self) -> list:
        """Every job's result (waits for the pool, then shuts it down)."""
        try:
            for future in self.futures:
                self.results.append(future.result())
        finally:
            if self.pool is not None:
                self.pool.shutdown()
            self.bar.close()
        return self.results


def report_metric_errors(results: list, failed: list) -> None:
    """Warn about every metric that failed on a file and record it in ``failed``."""
    for name, n, _, errors in results:
        for metric, reason in errors.items():
            print(f"warning: {name} (n_quantizers={n}): {metric} failed: {reason}", file=sys.stderr)
            failed.append({"file": name, "n_quantizers": n, "metric": metric, "error": reason})


def metric_columns(with_dnsmos: bool) -> list[str]:
    from ..metrics import speech

    return list(speech.INTRUSIVE) + (list(speech.DNSMOS_COLUMNS) if with_dnsmos else [])


# ----------------------------------------------------------------------------- opus reference


def run_opus(files: list, references: dict, kbps_list: list, output: Path, workers: int, with_dnsmos: bool,
             common: dict) -> None:
    """Score Opus (``opusenc --hard-cbr``) at each bitrate on the same references; writes ``output/opus``."""
    import soundfile as sf

    if not (shutil.which("opusenc") and shutil.which("opusdec")):
        print("warning: opusenc/opusdec not found (install opus-tools): skipping the Opus reference",
              file=sys.stderr)
        return
    start = time.time()
    failed = []
    scorer = Scorer(workers, len(references) * len(kbps_list), "opus")
    with tempfile.TemporaryDirectory(prefix="dac_diveq_opus_") as tmp:
        for name, (audio, sr) in references.items():
            ref = audio.mean(0)
            wav, enc, dec = Path(tmp, "ref.wav"), Path(tmp, "ref.opus"), Path(tmp, "dec.wav")
            sf.write(str(wav), np.clip(ref, -1, 1), sr, subtype="PCM_16")
            for kbps in kbps_list:
                try:
                    for cmd in (["opusenc", "--quiet", "--hard-cbr", "--bitrate", str(kbps), str(wav), str(enc)],
                                ["opusdec", "--quiet", "--rate", str(sr), str(enc), str(dec)]):
                        proc = subprocess.run(cmd, capture_output=True, text=True)
                        if proc.returncode:
                            raise RuntimeError(f"`{' '.join(cmd[:1])}` failed: {' '.join(proc.stderr.split())}")
                    deg, _ = sf.read(str(dec), dtype="float32", always_2d=True)
                    scorer.submit((name, kbps, ref, deg.mean(1), sr, with_dnsmos))
                except Exception as exc:
                    reason = " ".join(str(exc).split())
                    tqdm.write(error_line(f"{name}: opus {kbps} kbps: {reason}"), file=sys.stderr)
                    failed.append({"file": name, "bitrate_kbps": kbps, "error": reason})
    results = scorer.finish()
    report_metric_errors(results, failed)
    metrics = metric_columns(with_dnsmos)
    rows = [{"file": name, "n_quantizers": 0, "bitrate_kbps": float(kbps), **values}
            for name, kbps, values, _ in results]
    rows.sort(key=lambda r: (r["file"], r["bitrate_kbps"]))
    # The reference is not the DAC model: no weights, seed or configuration of its own.
    summary = dict(common, weights=None, seed=None, config_hash=None, method="opus", residual_mode=None, lookup=None,
                   n_codebooks=None, codebook_size=None,
                   frame_rate=None, wall_time_s=time.time() - start, files=files, failed=failed,
                   by_bitrate=by_bitrate(rows, metrics, "bitrate_kbps"), codebook=None,
                   opus_version=_opus_version())
    write_outputs(output / "opus", rows, ROW_KEYS + metrics, summary)


def _opus_version() -> Optional[str]:
    try:
        return subprocess.run(["opusenc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except Exception:
        return None


# ----------------------------------------------------------------------------- evaluation


def eval_set_of(folder: Path) -> dict:
    """Which reference set ``folder`` is: its path and, for the prepared sets, the split its
    ``manifest.json`` declares (``dev``: for decisions; ``test``: reported only)."""
    import json

    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    split = manifest.get("split") if isinstance(manifest, dict) else None
    return {"path": folder.as_posix(), "split": split if isinstance(split, str) else None}


def _device(device: str) -> str:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise EvalError(f"--device {device}: expected auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalError("--device cuda: CUDA is not available")
    return device


def _decode_ladder(model, path: Path, steps: Sequence[int], stats, level, window: float
                   ) -> tuple[np.ndarray, int, dict[int, np.ndarray]]:
    """Read one file, add its full-rate codes to ``stats`` and decode it at every ladder step,
    compressed as ``encode`` does (normalised to ``level``, in windows of ``window`` seconds).

    Returns:
        ``(audio channels x samples, sample rate, {n_quantizers: decoded audio})``.
    """
    import torch
    from audiotools import AudioSignal

    from ..metrics import codebook as cb
    from . import codec_io

    audio, sr = codec_io.read_model_input(path, model.sample_rate)  # encode's checks (channels, rate, length)
    tensor = torch.from_numpy(audio)
    codes, pairs = cb.model_codes(model, tensor, sr)
    artifact = model.compress(AudioSignal(tensor[None], sr), window, normalize_db=level)
    model.padding = True  # compress switches padding off for its windows
    decoded = {}
    for n in steps:
        piece = dataclasses.replace(artifact, codes=artifact.codes[:, :n])
        decoded[n] = model.decompress(piece).audio_data[0].cpu().numpy()
    for i, (z_e, codeword) in enumerate(pairs):
        stats.add(i, codes[:, i], z_e, codeword)
    return audio, sr, decoded


def evaluate(weights_path: str = "", input: str = "data/speech/test", output: str = "",
             ladder: List[int] = None, device: str = "auto", workers: int = 0, dnsmos: bool = False,
             opus_kbps: List[int] = None, loudness_db: str = "model", win_duration: float = WINDOW_S) -> int:
    """Score a DiVeQDAC checkpoint over its bitrate ladder.

    Args:
        weights_path: DiVeQDAC (or stock DAC) weights.pth, or a run folder: its best checkpoint, else
            latest (the rule of every command; the one used is printed).
        input: folder of reference audio.
        output: output folder (default <run>/eval).
        ladder: n_quantizers to evaluate, e.g. "1 4 12" (default 1..N).
        device: auto, cpu or cuda.
        workers: metric processes (default min(2, cpu count)).
        dnsmos: also compute DNSMOS (speechmos) of each decoded file.
        opus_kbps: Opus reference bitrates, e.g. "6 8 12" (needs opus-tools).
        loudness_db: level each file is normalised to before encoding: ``model`` (the level the
            codec trained at; default, as ``encode``), a number in LUFS, or ``raw`` (its own level).
        win_duration: the compression window in seconds (``encode``'s default, 5 s).

    Returns:
        The exit status: 0, or 1 when every file failed.

    Raises:
        EvalError: unusable weights, device, ladder or input folder (one line).
    """
    start = time.time()
    import torch

    from ..metrics import codebook as cb
    from ..metrics import speech
    from . import codec_io

    if not weights_path:
        raise EvalError("--weights_path is required")
    try:
        requested_level = parse_level(loudness_db)
    except ValueError as exc:
        raise EvalError(f"--loudness_db: {exc}") from None
    if not (win_duration > 0 and np.isfinite(win_duration)):
        raise EvalError(f"--win_duration: must be a positive number of seconds, got {win_duration}")
    try:  # a weights file, or a run folder's best (else latest) generator: the CLI's rule
        found = codec_io.find_weights(Path(weights_path))
    except codec_io.InputError as exc:
        raise EvalError(f"{weights_path}: {exc}") from None
    weights, run = found.path, found.run
    try:
        model = codec_io.load_weights_file(weights)
    except codec_io.InputError as exc:
        raise EvalError(f"{weights}: {exc}") from None
    print(found.describe(), file=sys.stderr)
    read_seed(weights)  # refuses a trainer.pth beside the weights that would run code, before any work
    device = _device(device)
    model = model.to(device).eval()
    level = model.level(requested_level)
    n_max = model.n_codebooks
    steps = sorted(set(ladder)) if ladder else list(range(1, n_max + 1))
    if any(n < 1 or n > n_max for n in steps):
        raise EvalError(f"--ladder {steps}: values must lie in 1..{n_max}")
    in_dir = Path(input)
    if not in_dir.is_dir():
        raise EvalError(f"{in_dir}: not a folder of reference audio")
    paths = codec_io.find_files(in_dir, codec_io.AUDIO_EXTENSIONS,
                                on_skip=lambda path, reason: print(f"note: {path}: {reason}", file=sys.stderr))
    if not paths:
        raise EvalError(f"{in_dir}: no audio files ({', '.join(codec_io.AUDIO_EXTENSIONS)})")
    out_dir = Path(output) if output else run / "eval"
    workers = workers if workers > 0 else min(2, os.cpu_count() or 1)

    names = [p.relative_to(in_dir).as_posix() for p in paths]
    failed, references = [], {}
    stats = cb.CodebookAccumulator(n_max, model.codebook_size)
    scorer = Scorer(workers, len(paths) * len(steps), "evaluate")
    with torch.no_grad():
        for path, name in zip(paths, names):
            try:
                audio, sr, decoded = _decode_ladder(model, path, steps, stats, level, win_duration)
            except Exception as exc:
                reason = one_line(exc)
                tqdm.write(error_line(f"{name}: {reason}"), file=sys.stderr)  # not inside the bar's line
                failed.append({"file": name, "error": reason})
                scorer.bar.update(len(steps))
                continue
            references[name] = (audio, sr)
            for n in steps:
                scorer.submit((name, n, audio.mean(0), decoded[n].mean(0), sr, dnsmos))
    results = scorer.finish()
    report_metric_errors(results, failed)

    metrics = metric_columns(dnsmos)
    rates = {n: cb.bitrate_kbps(model.frame_rate, n, model.codebook_size) for n in steps}
    rows = [{"file": name, "n_quantizers": n, "bitrate_kbps": rates[n], **values} for name, n, values, _ in results]
    rows.sort(key=lambda r: (r["file"], r["n_quantizers"]))
    common = new_summary("speech", weights, model.method, dict(getattr(model, "metadata", {}).get("kwargs", {})),
                         device, sample_rate=int(model.sample_rate), visqol_mapping=speech.visqol_mapping(),
                         eval_set=eval_set_of(in_dir))
    summary = dict(common, loudness_db=level, model_loudness_db=model.loudness_db,
                   window_s=float(win_duration), residual_mode=str(model.residual_mode), lookup=str(model.lookup),
                   n_codebooks=int(n_max), codebook_size=int(model.codebook_size), frame_rate=float(model.frame_rate),
                   files=names, failed=failed, by_bitrate=by_bitrate(rows, metrics, "n_quantizers"),
                   codebook=stats.summary() if references else None)
    if opus_kbps and references:
        run_opus(names, references, list(opus_kbps), out_dir, workers, dnsmos, common)
    summary["wall_time_s"] = time.time() - start
    write_outputs(out_dir, rows, ROW_KEYS + metrics, summary)
    n_failed = len({f["file"] for f in failed if "metric" not in f})
    print(f"evaluated {len(names) - n_failed}/{len(names)} files x {len(steps)} bitrates -> {out_dir}",
          file=sys.stderr)
    return 1 if n_failed == len(names) else 0
