"""The GPU readiness check (``make gpu-check``): everything CUDA-specific, within about 8 minutes.

1. every method's DAC quantizer stage (1024 -> 8 dims, 1024 codes, batch 72 x 0.38 s at 16 kHz),
   forward and backward under bfloat16 autocast: finite loss and gradients;
2. a tiny corpus (voiced tones in LibriTTS's official layout) prepared by ``scripts/prepare_data.py
   --corpus libritts``, as the GPU confs' data is;
   ``scripts/train.py`` on DAC's 16 kHz layout with the discriminator (conf/diveq.yml, conf/ste.yml),
   200 steps each at a smaller batch, on that prepared corpus;
3. a resume of the DiVeQ run (20 more steps from ``latest``, at the exact step);
4. ``python -m dac_diveq encode|decode --device cuda`` with the trained DiVeQ model;
5. ``scripts/bench_quantizer.py --device cuda``.

It prints one summary table and writes it, with the benchmark's tables, to
``reports/gpu_check/README.md`` (run folders and logs go to ``runs/gpu_check/``). Without CUDA it
says so in one line and exits 0; ``--smoke`` runs the same plumbing on a CPU with tiny settings
(what the test suite does).

Usage::

    python scripts/gpu_check.py              # on a CUDA machine (make gpu-check)
    python scripts/gpu_check.py --smoke      # CPU smoke run of the plumbing, a minute or two
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]  # the repository (scripts, confs, runs)
BUDGET_S = 8 * 60  # the whole check on one GPU


@dataclass
class Check:
    """One row of the summary."""

    name: str
    ok: Optional[bool] = None  # None: skipped
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Settings:
    """Sizes of the check: the GPU's, or the CPU smoke run's."""

    device: str
    steps: int = 200
    resume_steps: int = 20
    batch_size: int = 16
    stage_batch: int = 72
    stage_input_dim: int = 1024
    conf_keys: dict = field(default_factory=dict)
    bench_args: tuple = ()


def gpu_settings() -> Settings:
    return Settings(device="cuda", bench_args=("--repeats", "20", "--warmup", "5"))


def smoke_settings() -> Settings:
    """Tiny models and two steps: the plumbing of every check on a CPU."""
    tiny = {"DiVeQDAC.encoder_dim": 8, "DiVeQDAC.decoder_dim": 32, "DiVeQDAC.n_codebooks": 3,
            "DiVeQDAC.codebook_size": 64, "Discriminator.periods": [2], "Discriminator.fft_sizes": [256],
            "Discriminator.bands": [[0.0, 0.5], [0.5, 1.0]], "MelSpectrogramLoss.n_mels": [20, 40],
            "MelSpectrogramLoss.window_lengths": [128, 512], "MelSpectrogramLoss.mel_fmin": [0, 0],
            "MelSpectrogramLoss.mel_fmax": [None, None], "MultiScaleSTFTLoss.window_lengths": [512, 128],
            "train/AudioDataset.duration": 0.2, "val/AudioDataset.duration": 0.4, "amp": "none", "num_workers": 0}
    return Settings(device="cpu", steps=2, resume_steps=1, batch_size=2, stage_batch=2, stage_input_dim=64,
                    conf_keys=tiny, bench_args=("--quick", "--repeats", "1", "--warmup", "0", "--skip-core"))


# ---------------------------------------------------------------------------- helpers
def run_command(args: Sequence[object], log: Path, timeout: float) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repository root, this checkout's package first; output kept in ``log``."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                                env=env, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired as exc:
        out = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")  # noqa: E731
        log.write_text(out(exc.stdout) + out(exc.stderr))
        raise TimeoutError(f"over its {timeout:.0f} s (log: {log.relative_to(ROOT)})") from None
    log.write_text(result.stdout + result.stderr)
    return result


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1][:200] if lines else f"exit status {result.returncode}"


def timed(check: Check, body: Callable[[], str], deadline: float) -> Check:
    """Run ``body`` (returns the detail; raises on failure) unless the budget is spent."""
    if time.monotonic() > deadline:
        check.detail = "skipped: the time budget is spent"
        return check
    start = time.monotonic()
    try:
        check.detail, check.ok = body(), True
    except Exception as exc:  # noqa: BLE001  (a failed check is a row of the table, not a traceback)
        check.detail, check.ok = " ".join(str(exc).split())[:300] or type(exc).__name__, False
    check.seconds = time.monotonic() - start
    return check


# ---------------------------------------------------------------------------- checks
def stage_check(settings: Settings) -> str:
    """Every method's DAC stage, forward + backward under bf16 autocast."""
    import torch

    from dac_diveq.codec.dac_layers import VectorQuantize
    from dac_diveq.quantize import METHODS

    device = torch.device(settings.device)
    frames = -(-int(0.38 * 16000) // 320)
    timings = []
    for method in METHODS:
        torch.manual_seed(0)
        stage = VectorQuantize(settings.stage_input_dim, 1024, 8, method=method).to(device).train()
        z = torch.randn(settings.stage_batch, settings.stage_input_dim, frames, device=device, requires_grad=True)
        start = time.monotonic()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            z_q, commitment, codebook, codes, _ = stage(z)
            loss = z_q.float().square().mean() + commitment.mean() + codebook.mean() + stage.aux_loss
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(f"{method} {1000 * (time.monotonic() - start):.0f} ms")
        grads = [p.grad for p in stage.parameters() if p.grad is not None] + [z.grad]
        if not torch.isfinite(loss) or not all(torch.isfinite(g).all() for g in grads):
            raise RuntimeError(f"{method}: non-finite loss or gradient under bf16 autocast")
        if codes.shape != (settings.stage_batch, frames):
            raise RuntimeError(f"{method}: codes of shape {tuple(codes.shape)}")
    return f"{len(METHODS)} methods finite; first step each: " + ", ".join(timings)


#: Readers of the tiny corpus: LibriTTS subset -> (speaker ids, utterances each).
TINY_READERS = {"train-clean-100": (("1001", "1002", "1003", "1004"), 8), "dev-clean": (("2001", "2002"), 4)}


def training_data(work: Path, timeout: float) -> tuple[str, str]:
    """A tiny corpus prepared as the GPU confs' data is: voiced tones (2 s, 24 kHz) written in LibriTTS's
    official layout, then ``scripts/prepare_data.py --corpus libritts --source`` at 16 kHz.

    Returns:
        The prepared train and val folders.

    Raises:
        RuntimeError: the preparation failed (its last line).
    """
    import numpy as np
    import soundfile as sf

    rng, rate = np.random.default_rng(0), 24000
    source = work / "tiny_libritts"
    for subset, (speakers, count) in TINY_READERS.items():
        for speaker in speakers:
            folder = source / "LibriTTS" / subset / speaker / f"{speaker}00"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                t = np.arange(2 * rate) / rate
                f0 = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 5) * t))
                wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / rate) / k for k in range(1, 8))
                stem = f"{speaker}_{speaker}00_{i:06d}_000000"
                sf.write(folder / f"{stem}.wav", (0.2 * wave * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(
                    np.float32), rate, subtype="PCM_16")
                (folder / f"{stem}.normalized.txt").write_text(f"Tone {i} of reader {speaker}.")
    result = run_command(["scripts/prepare_data.py", "--corpus", "libritts", "--source", source, "--subsets",
                          *TINY_READERS, "--output", work / "corpora", "--workers", "4", "--no_progress"],
                         work / "prepare.log", timeout)
    if result.returncode:
        raise RuntimeError(f"prepare_data exited {result.returncode}: {last_line(result)}")
    base = work / "corpora" / "libritts" / "16000"
    return str(base / "train"), str(base / "val")


def write_conf(method: str, work: Path, settings: Settings, folders: tuple[str, str]) -> Path:
    """``conf/<method>.yml`` (DAC's 16 kHz layout and GAN recipe) with the check's budget and data."""
    import yaml

    keys = {"$include": [f"conf/{method}.yml"], "num_iters": settings.steps, "batch_size": settings.batch_size,
            "valid_freq": settings.steps, "sample_freq": 0, "save_iters": [], "log_freq": 10, "save_every": 0,
            "val_batch_size": 8, "val/AudioDataset.n_examples": 8, "val_idx": [0],
            "prepare_embedded_data.root": "", "allow_cpu": settings.device == "cpu",
            "train/build_dataset.folders": {"speech": [folders[0]]},
            "val/build_dataset.folders": {"speech": [folders[1]]}, **settings.conf_keys}
    path = work / f"{method}.yml"
    path.write_text(yaml.safe_dump(keys, sort_keys=False))
    return path


def train_check(method: str, work: Path, settings: Settings, folders, timeout: float) -> str:
    conf, save = write_conf(method, work, settings, folders), work / method
    result = run_command(["scripts/train.py", "--args.load", conf, "--save_path", save], work / f"train_{method}.log",
                         timeout)
    if result.returncode:
        raise RuntimeError(f"train.py exited {result.returncode}: {last_line(result)}")
    return _validation(result) + f"; {settings.steps} steps"


def resume_check(work: Path, settings: Settings, timeout: float) -> str:
    total = settings.steps + settings.resume_steps
    result = run_command(["scripts/train.py", "--args.load", work / "diveq.yml", "--save_path", work / "diveq",
                          "--num_iters", total, "--valid_freq", total, "--resume", "true"], work / "resume.log", timeout)
    if result.returncode:
        raise RuntimeError(f"train.py --resume exited {result.returncode}: {last_line(result)}")
    if f"at step {settings.steps}" not in result.stderr:
        raise RuntimeError(f"did not resume at step {settings.steps}")
    return f"step {settings.steps} -> {total}; " + _validation(result)


def _validation(result: subprocess.CompletedProcess) -> str:
    match = re.search(r"validation: (.*)", result.stdout)
    if not match:
        return "no validation line"
    scores = dict(re.findall(r"(mel/loss|pesq_wb|stoi) ([-\d.e]+)", match.group(1)))
    return ", ".join(f"{k} {float(v):.3f}" for k, v in scores.items())


def codec_check(work: Path, settings: Settings, folders, timeout: float) -> str:
    clip = sorted(Path(folders[1]).rglob("*.flac"))[0]
    common = ["--weights_path", work / "diveq", "--device", settings.device]
    start = time.monotonic()
    enc = run_command(["-m", "dac_diveq", "encode", clip, "--output", work / "codes", *common], work / "encode.log",
                      timeout)
    if enc.returncode:
        raise RuntimeError(f"encode exited {enc.returncode}: {last_line(enc)}")
    dec = run_command(["-m", "dac_diveq", "decode", work / "codes" / f"{clip.stem}.dac", "--output", work / "decoded",
                       *common], work / "decode.log", timeout)
    if dec.returncode:
        raise RuntimeError(f"decode exited {dec.returncode}: {last_line(dec)}")
    import soundfile as sf

    source, decoded = sf.info(str(clip)), sf.info(str(work / "decoded" / f"{clip.stem}.wav"))
    if decoded.frames != source.frames or decoded.samplerate != source.samplerate:
        raise RuntimeError(f"decoded {decoded.frames} samples at {decoded.samplerate} Hz for {source.frames} "
                           f"at {source.samplerate} Hz")
    return f"{source.duration:.1f} s clip, {time.monotonic() - start:.1f} s both (interpreter start-up included)"


def bench_check(work: Path, settings: Settings, timeout: float) -> tuple[str, str]:
    result = run_command(["scripts/bench_quantizer.py", "--device", settings.device, *settings.bench_args],
                         work / "bench.log", timeout)
    if result.returncode:
        raise RuntimeError(f"bench_quantizer.py exited {result.returncode}: {last_line(result)}")
    met, missed = len(re.findall(r"\| met \|", result.stdout)), len(re.findall(r"\| MISSED \|", result.stdout))
    return (f"speed targets met {met}, missed {missed} (tables below)" if met + missed
            else "tables below (no targets at smoke sizes)"), result.stdout


# ---------------------------------------------------------------------------- report
def summary_table(checks: Sequence[Check]) -> list[str]:
    """The Markdown summary: one row per check."""
    rows = ["| check | result | time | detail |", "|---|---|---|---|"]
    for c in checks:
        result = "skipped" if c.ok is None else ("ok" if c.ok else "FAILED")
        rows.append(f"| {c.name} | {result} | {c.seconds:.0f} s | {c.detail.replace('|', '/')} |")
    return rows


def environment() -> str:
    import torch

    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
    return (f"{device}, torch {torch.__version__} (CUDA {torch.version.cuda}), python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def run(args: argparse.Namespace) -> int:
    """The check for ``scripts/gpu_check.py``'s options; prints the table and writes the report.

    Returns:
        The exit status (0: every check passed, or no CUDA device and ``allow_no_gpu``).
    """
    import torch

    if not args.smoke and not torch.cuda.is_available():
        if args.allow_no_gpu:
            print("gpu-check: no CUDA device on this machine; nothing to check (run it where a GPU is lent)")
            return 0
        print("gpu-check: no CUDA device found: torch sees no GPU (no GPU here, or its driver is broken); "
              "nothing was checked (pass --allow-no-gpu to accept that)", file=sys.stderr)
        return 1
    settings = smoke_settings() if args.smoke else gpu_settings()
    work, output = Path(args.work), Path(args.output)
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget
    left = lambda: max(deadline - time.monotonic(), 1)  # noqa: E731
    base = work / "corpora" / "libritts" / "16000"
    prepared = {"folders": (str(base / "train"), str(base / "val"))}

    def prepare() -> str:
        prepared["folders"] = training_data(work, left())
        files = sum(1 for _ in Path(prepared["folders"][0]).rglob("*.flac"))
        return f"LibriTTS layout, {files} training files at 16 kHz in {os.path.relpath(base, ROOT)}"

    checks = [timed(Check("bf16 stage forward/backward, every method"), lambda: stage_check(settings), deadline),
              timed(Check("prepare a tiny corpus (prepare_data --corpus libritts)"), prepare, deadline)]
    folders = prepared["folders"]
    for method in ("diveq", "ste"):
        checks.append(timed(Check(f"train 16 kHz + discriminator, {method}"),
                            lambda m=method: train_check(m, work, settings, folders, left()), deadline))
    trained = checks[2].ok
    checks.append(timed(Check("resume diveq"), lambda: resume_check(work, settings, left()), deadline)
                  if trained else Check("resume diveq", detail="skipped: the DiVeQ run failed"))
    checks.append(timed(Check(f"encode/decode on {settings.device}"),
                        lambda: codec_check(work, settings, folders, left()), deadline)
                  if trained else Check(f"encode/decode on {settings.device}", detail="skipped: no trained model"))
    bench_tables = []

    def bench() -> str:
        detail, tables = bench_check(work, settings, left())
        bench_tables.append(tables)
        return detail

    checks.append(timed(Check(f"quantizer benchmark on {settings.device}"), bench, deadline))

    table = summary_table(checks)
    print("\n".join(table))
    text = ["# GPU check", "", f"`python scripts/gpu_check.py{' --smoke' if args.smoke else ''}` on "
            f"{environment()}; run folders and logs in `{os.path.relpath(work, ROOT)}/`.", "", *table, ""]
    if bench_tables:
        text += ["", *bench_tables[0].strip().splitlines(), ""]
    output.mkdir(parents=True, exist_ok=True)
    (output / "README.md").write_text("\n".join(text))
    print(f"written to {output / 'README.md'}")
    return 0 if all(c.ok for c in checks) else 1
