"""``python -m dac_diveq encode|decode|info|export``: DAC's command line for DiVeQDAC checkpoints.

``encode`` and ``decode`` take ``python -m dac``'s arguments (``--output``, ``--weights_path``,
``--n_quantizers``, ``--device``, ``--win_duration``, ``--verbose``) and write the same files:
``.dac`` files (DAC's format; ``.dacp`` with ``--packed``: codes packed to their bits, read by this
package only) and 16-bit wav files, mirroring an input folder tree under
``--output``. Every bad file is reported as one line ``error: <path>: <reason>`` on stderr;
a folder run goes on with the other files and exits with status 1 if any failed. Output
files appear only complete (written to a hidden temporary file, then renamed). ``export`` writes
a checkpoint as a stock DAC weights file (``--format dac``) or a Hugging Face ``transformers``
folder (``--format hf``).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from .. import errors
from ..errors import UserError, one_line, printable
from .codec_io import (
    AUDIO_EXTENSIONS,
    CODE_EXTENSIONS,
    DAC_EXTENSION,
    PACKED_EXTENSION,
    InputError,
    check_dac_matches,
    method_mismatch,
    file_kind,
    find_files,
    has_packed_codes,
    load_dac,
    load_model,
    read_model_input,
    save_dac,
    write_wav,
)
from .bitpack import bits_per_code
from .model import WINDOW_S, parse_level

EXIT_FAILED, EXIT_USAGE = 1, 2


class UsageError(UserError):
    """A bad argument or setup (weights, device): nothing is processed."""

    def __init__(self, subject: str, reason: str):
        super().__init__(f"{subject}: {reason}")


def _warn(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"warning: {printable(message)}", file=sys.stderr)


def _error(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"error: {printable(message)}", file=sys.stderr)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError("--device", f"unknown device {name!r} (use cpu, cuda or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device", "cuda requested but no CUDA device is available")
    return name


def _announce(model) -> None:
    """Which weights a command uses (file, checkpoint tag, step): one line on stderr, said once the
    arguments are checked (a usage error stays one line)."""
    from tqdm import tqdm

    tqdm.write(model.source.describe(), file=sys.stderr)


def _model(weights_path: str, device: str):
    """The model of ``--weights_path`` (a run folder: its best checkpoint, else latest) on ``device``."""
    if not weights_path:
        raise UsageError("--weights_path", "required (DiVeQDAC or stock DAC weights, or a training folder; "
                                           "or DAC's --model_type/--model_bitrate of downloaded weights)")
    device = _device(device)
    try:
        model = load_model(Path(weights_path))
    except InputError as exc:
        raise UsageError(weights_path, str(exc)) from None
    return model.to(device)


def dac_weights(model_type: str, model_bitrate: str = "8kbps", model_tag: str = "latest") -> str:
    """The stock weights ``python -m dac download`` keeps for DAC's ``--model_type/--model_bitrate/
    --model_tag``: its cache file, which must exist (this command never downloads).

    Raises:
        UsageError: an unknown model, or weights not downloaded yet (one line saying how).
    """
    from dac import utils as dac_utils

    kind, bitrate, tag = model_type.lower(), model_bitrate.lower(), model_tag.lower()
    # DAC's own tables of released models (what its download command reads).
    latest, urls = (getattr(dac_utils, name, {}) for name in ("__MODEL_LATEST_TAGS__", "__MODEL_URLS__"))
    if tag == "latest":
        tag = latest.get((kind, bitrate), "")
    if (kind, tag, bitrate) not in urls:
        known = ", ".join(f"{t} {b}" for t, b in latest)
        raise UsageError("--model_type", f"DAC has no {model_type} {model_bitrate} model (tag {model_tag}); "
                                         f"known: {known}")
    path = Path.home() / ".cache" / "descript" / "dac" / f"weights_{kind}_{bitrate}_{tag}.pth"
    if not path.is_file():
        raise UsageError("--model_type", f"{path} is not downloaded; run `python -m dac download --model_type "
                                         f"{kind} --model_bitrate {bitrate}` first, or pass --weights_path")
    return str(path)


def _weights_path(weights_path: str, model_type: str, model_bitrate: str, model_tag: str) -> str:
    """``--weights_path``, else DAC's ``--model_type`` spelling (DAC's rule: a path wins)."""
    if weights_path or not model_type:
        return weights_path
    return dac_weights(model_type, model_bitrate, model_tag)


def _kind_of(path: Path) -> str:
    """``"is a WAV file"``, ``"is a .dac file"``, ``"is a checkpoint (.pth)"``: for messages."""
    suffix = path.suffix.lower()
    if suffix in AUDIO_EXTENSIONS:
        return f"is a{'n' if suffix[1] in 'aeiou' else ''} {suffix[1:].upper()} file"
    if suffix in CODE_EXTENSIONS:
        return f"is a {suffix} file"
    if suffix in (".pth", ".pt", ".ckpt"):
        return f"is a checkpoint ({suffix})"
    return f"is not a {', '.join(AUDIO_EXTENSIONS + CODE_EXTENSIONS)} file"


def _note(path: Path, reason: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"note: {printable(f'{path}: {reason}')}", file=sys.stderr)


def _inputs(input: str, extensions: tuple[str, ...], command: str = "", takes: str = "") -> tuple[Path, list[Path]]:
    root = Path(input)
    if root.is_file() and root.suffix.lower() not in extensions:
        raise UsageError(input, f"{_kind_of(root)}; `{command}` takes {takes}")
    if root.is_dir():
        files = find_files(root, extensions, on_skip=_note)
        if not files:
            raise UsageError(input, f"no {', '.join(extensions)} files in this folder")
        return root, files
    if not root.exists():
        raise UsageError(input, "no such file or directory")
    if file_kind(root) != "file":  # reading a FIFO would block forever
        raise UsageError(input, f"not a regular file ({file_kind(root)})")
    return root, [root]


@dataclass
class Done:
    """What processing one file produced: seconds of audio and bytes written."""

    seconds: float
    size: int


def _human_size(size: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size}"


def summary_line(verb: str, done: list[Done], wall: float, skipped: int, failed: int) -> str:
    """``encoded 3 files, 21.4 s of audio in 4.2 s (real-time factor 0.20); wrote 28.1 kB = 10.5 kbps``.

    The real-time factor is processing time over audio duration (below 1: faster than real time);
    the bitrate is what the written files hold per second of audio.
    """
    seconds = sum(d.seconds for d in done)
    size = sum(d.size for d in done)
    text = f"{verb} {len(done)} file{'s' if len(done) != 1 else ''}"
    if done and seconds > 0:
        text += (f", {seconds:.1f} s of audio in {wall:.1f} s (real-time factor {wall / seconds:.2f}); "
                 f"wrote {_human_size(size)} = {size * 8 / seconds / 1000:.1f} kbps")
    if skipped:
        text += f"; skipped {skipped} existing (--overwrite replaces them)"
    if failed:
        text += f"; {failed} failed"
    return text


def _run(root: Path, files: list[Path], output: str, suffix: str, verb: str, verbose: bool, overwrite: bool,
         process: Callable[[Path, Path], Done]) -> int:
    """Apply ``process(src, dst)`` to every file; report failures and a summary; the exit status.

    An output that exists already is kept (and counted) unless ``overwrite``.
    """
    from tqdm import tqdm

    out_root = Path(output)
    done: list[Done] = []
    skipped, failed, claimed = 0, 0, {}
    tic = time.perf_counter()
    # A bar with --verbose; else for a folder on a terminal only (tqdm's None), never for one file.
    disable = False if verbose else (None if len(files) > 1 else True)
    for src in tqdm(files, desc=f"{verb[:-1].capitalize()}ing", unit="file", disable=disable, file=sys.stderr):
        rel = src.relative_to(root) if root.is_dir() else Path(src.name)
        dst = out_root / rel.with_suffix(suffix)
        try:
            if dst in claimed:
                raise InputError(f"{dst} is already written from {claimed[dst]}")
            claimed[dst] = src
            if dst.exists() and not overwrite:
                skipped += 1
                continue
            done.append(process(src, dst))
        except UserError as exc:
            _error(f"{src}: {exc}")
            failed += 1
        except OSError as exc:  # a full disk, a folder that cannot be written: the user's to fix
            _error(f"{src}: cannot write {dst}: {exc.strerror or one_line(exc)}")
            failed += 1
        except Exception:  # noqa: BLE001  a bug: its traceback, and the folder's other files go on
            traceback.print_exc(file=sys.stderr)
            _error(f"{src}: failed (the traceback above is a bug; please report it)")
            failed += 1
    print(summary_line(verb, done, time.perf_counter() - tic, skipped, failed), file=sys.stderr)
    return EXIT_FAILED if failed else 0


#: Files longer than this show a progress bar over their windows on a terminal.
LONG_FILE_SECONDS = 60.0


def encode(input: str, output: str = "", weights_path: str = "", n_quantizers: Optional[int] = None,
           device: str = "auto", win_duration: float = WINDOW_S, verbose: bool = False, overwrite: bool = False,
           packed: bool = False, loudness_db: str = "model", model_type: str = "", model_bitrate: str = "8kbps",
           model_tag: str = "latest") -> int:
    """Encode an audio file, or every audio file under a folder, to ``.dac`` files.

    Each file is normalised to ``loudness_db`` before encoding (default: the level the model trained
    at, recorded in its weights) and decodes at its own level again.

    ``packed`` stores codes in ``ceil(log2 K)`` bits (the codec's bitrate) instead of DAC's 16-bit
    integers, in ``.dacp`` files of their own format (only this package reads them; ``.dac`` stays
    DAC's format).
    """
    import torch
    from audiotools import AudioSignal

    if not (win_duration > 0 and math.isfinite(win_duration)):
        raise UsageError("--win_duration", f"must be a positive number of seconds, got {win_duration}")
    try:
        level = parse_level(loudness_db)
    except ValueError as exc:
        raise UsageError("--loudness_db", str(exc)) from None
    root, files = _inputs(input, AUDIO_EXTENSIONS, "encode", f"audio files ({', '.join(AUDIO_EXTENSIONS)})")
    model = _model(_weights_path(weights_path, model_type, model_bitrate, model_tag), device)
    if n_quantizers is not None and not 1 <= n_quantizers <= model.n_codebooks:
        raise UsageError("--n_quantizers", f"must be between 1 and {model.n_codebooks} for this model")
    window = math.ceil(win_duration * model.sample_rate / model.hop_length) * model.hop_length
    if model.get_output_length(window) <= 0:
        raise UsageError("--win_duration", f"{win_duration} s is shorter than the model's receptive field")
    _announce(model)

    def process(src: Path, dst: Path) -> Done:
        audio, sample_rate = read_model_input(src, model.sample_rate)
        seconds = audio.shape[1] / sample_rate
        signal = AudioSignal(torch.from_numpy(audio)[None], sample_rate)
        chunks = verbose or (sys.stderr.isatty() and seconds > LONG_FILE_SECONDS)
        try:
            with torch.inference_mode():
                artifact = model.compress(signal, win_duration, verbose=chunks, normalize_db=level,
                                          n_quantizers=n_quantizers)
        finally:
            model.padding = True  # compress switches padding off for chunks; keep the next file safe
        save_dac(artifact, dst, model, packed=packed)
        return Done(seconds, dst.stat().st_size)

    suffix = PACKED_EXTENSION if packed else DAC_EXTENSION
    return _run(root, files, output, suffix, "encoded", verbose, overwrite, process)


def decode(input: str, output: str = "", weights_path: str = "", device: str = "auto",
           verbose: bool = False, strict: bool = False, overwrite: bool = False, model_type: str = "",
           model_bitrate: str = "8kbps", model_tag: str = "latest") -> int:
    """Decode a ``.dac`` or ``.dacp`` file, or every such file under a folder, to wav files.

    A file whose recorded quantizer method differs from the weights' (same shapes, so it would
    decode) gets a warning, or with ``strict`` is refused.
    """
    import torch

    root, files = _inputs(input, CODE_EXTENSIONS, "decode", ".dac or .dacp files (encode the audio first)")
    model = _model(_weights_path(weights_path, model_type, model_bitrate, model_tag), device)
    _announce(model)

    def process(src: Path, dst: Path) -> Done:
        artifact, extra = load_dac(src)
        check_dac_matches(artifact, extra, model)
        other = method_mismatch(extra, model)
        if other and strict:
            raise InputError(other + " (refused: --strict)")
        if other:
            _warn(f"{src}: {other}")
        seconds = artifact.original_length / artifact.sample_rate
        chunks = verbose or (sys.stderr.isatty() and seconds > LONG_FILE_SECONDS)
        with torch.inference_mode():
            signal = model.decompress(artifact, verbose=chunks)
        audio = signal.audio_data.reshape(-1, signal.signal_length).float().cpu().numpy()
        write_wav(dst, audio, signal.sample_rate)
        return Done(seconds, dst.stat().st_size)

    return _run(root, files, output, ".wav", "decoded", verbose, overwrite, process)


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _levels(model) -> str:
    """FSQ's levels, whose product is the codebook size (e.g. [8, 5, 5, 5]: 1000, 9.966 bits)."""
    levels = getattr(model, "fsq_levels", None)
    return f"; fsq levels {list(levels)}" if getattr(model, "method", "") == "fsq" and levels else ""


def _describe_model(model, path: Path) -> list[str]:
    bits = math.log2(model.codebook_size)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    stock = getattr(model, "stock_dac", False)
    lines = [
        f"checkpoint: {path}",
        "format: " + ("stock DAC weights (dac.model.DAC: `python -m dac download`, or `export --format dac`); "
                      "its own quantizer, read as method ste with DAC's cosine lookup" if stock
                      else "DiVeQDAC weights"),
        # FSQ rounds per dimension: its lookup option is unused.
        f"method: {model.method} (residual_mode {model.residual_mode}"
        + (")" if model.method == "fsq" else f", lookup {model.lookup})"),
        f"sample rate: {model.sample_rate} Hz",
        f"loudness: trained at {_num(model.loudness_db)} LUFS (encode normalises to it; --loudness_db overrides)",
        f"hop length: {model.hop_length} samples (encoder rates {list(model.encoder_rates)})",
        f"frame rate: {_num(model.frame_rate)} Hz",
        f"codebooks: {model.n_codebooks} x {model.codebook_size} entries ({_num(bits)} bits, "
        f"dim {model.codebook_dim})" + _levels(model),
        # The bitrate counts log2(K) bits per code; files hold whole bits (K need not be a power of 2).
        f"storage: {bits_per_code(model.codebook_size)} bits per code in packed .dacp files, 16 in DAC's .dac",
        f"bitrate: {_num(model.bitrate() / 1000)} kbps with all {model.n_codebooks} codebooks",
        "bitrate by n_quantizers:",
    ]
    lines += [f"  {n}: {_num(model.bitrate(n) / 1000)} kbps" for n in range(1, model.n_codebooks + 1)]
    lines.append(f"parameters: {count(model):,} (encoder {count(model.encoder):,}, quantizer "
                 f"{count(model.quantizer):,}, decoder {count(model.decoder):,})")
    return lines


def _training_configuration(model, every_value: bool) -> list[str]:
    """The configuration the run resolved and trained with (every yml and command-line value), as
    recorded in its ``trainer.pth``: the one answer to "what value does this run use". One line
    naming it, or with ``every_value`` every key and value."""
    from ..report.eval_io import EvalError, run_config, trainer_state

    source = getattr(model, "source", None)
    if source is None or source.path is None:
        return []
    try:
        config = run_config(trainer_state(Path(source.path)))
    except EvalError as exc:
        raise InputError(str(exc)) from None
    if not config:
        return ["training configuration: not recorded (a weights file outside a run folder)"]
    if not every_value:
        return [f"training configuration: {len(config)} values recorded by the run (--config prints them)"]
    lines = ["training configuration (as the run resolved and recorded it):"]
    lines += [f"  {key}: {value!r}" if isinstance(value, str) else f"  {key}: {value}"
              for key, value in sorted(config.items(), key=lambda kv: str(kv[0]))]
    return lines


def _describe_dac(path: Path, weights_path: str) -> list[str]:
    artifact, extra = load_dac(path)
    codes = artifact.codes
    duration = artifact.original_length / artifact.sample_rate
    n_q, frames = codes.shape[1], codes.shape[-1]
    lines = [
        f"file: {path}",
        f"sample rate: {artifact.sample_rate} Hz",
        f"channels: {artifact.channels}",
        f"duration: {duration:.3f} s ({artifact.original_length} samples)",
        f"codebooks in file: {n_q}",
        f"frames: {frames} ({'unchunked' if artifact.padding else f'{frames // artifact.chunk_length} chunks'}"
        f", chunk length {artifact.chunk_length})",
    ]
    info = extra
    if weights_path:
        model = _model(weights_path, "cpu")
        check_dac_matches(artifact, extra, model)
        _announce(model)
        info = {"sample_rate": model.sample_rate, "hop_length": model.hop_length,
                "codebook_size": model.codebook_size, "n_codebooks": model.n_codebooks, "method": model.method}
    if info is None:
        lines.append("bitrate: unknown (the file does not name its model; pass --weights_path)")
    else:
        frame_rate = info["sample_rate"] / info["hop_length"]
        bits = math.log2(info["codebook_size"])
        nominal = artifact.channels * n_q * frame_rate * bits
        actual = codes.shape[0] * n_q * frames * bits / duration
        lines += [
            f"model: {info.get('method', '?')}, {info['sample_rate']} Hz, {info['n_codebooks']} x "
            f"{info['codebook_size']} codebooks, frame rate {_num(frame_rate)} Hz",
            f"bitrate: {_num(nominal / 1000)} kbps ({n_q} codebooks x {_num(frame_rate)} Hz x {_num(bits)} bits"
            f"{f' x {artifact.channels} channels' if artifact.channels > 1 else ''}); "
            f"{_num(actual / 1000)} kbps of codes in this file",
        ]
    size = path.stat().st_size
    # Whole bits per code: ceil(log2 K), e.g. 10 for FSQ's 1000 codewords of log2(1000) = 9.97 bits.
    packed = f"packed to {bits_per_code(info['codebook_size'])} bits each" if info else "packed to their bits"
    stored = packed if has_packed_codes(path) else "as DAC's 16-bit integers"
    lines.append(f"file size: {size:,} bytes = {_num(size * 8 / duration / 1000)} kbps of file "
                 f"(codes stored {stored}, plus metadata)")
    return lines





def info(path: str, weights_path: str = "", config: bool = False) -> int:
    """Describe weights (a DiVeQDAC or stock DAC weights file, or a training folder) or a
    ``.dac``/``.dacp`` file; with ``config``, also every value of the configuration the run trained with."""
    target = Path(path)
    if not target.exists():
        raise UsageError(path, "no such file or directory")
    if target.is_file() and target.suffix.lower() in AUDIO_EXTENSIONS:
        raise UsageError(path, f"{_kind_of(target)}; `info` takes weights (a .pth file or training folder) "
                               "or a .dac/.dacp file")
    try:
        if target.suffix.lower() in CODE_EXTENSIONS:
            lines = _describe_dac(target, weights_path)
        else:
            model = load_model(target)
            lines = _describe_model(model, target) + _training_configuration(model, config)
            _announce(model)
    except InputError as exc:
        raise UsageError(path, str(exc)) from None
    print("\n".join(lines))
    return 0


EXPORT_FORMATS = ("dac", "hf")


def export(weights: str, format: str = "dac", output: str = "", overwrite: bool = False) -> int:
    """Write a checkpoint as a stock DAC weights file (``dac``) or a ``transformers`` folder (``hf``).

    An existing output is kept unless ``overwrite``; even then only an earlier export's files are
    replaced (never a folder's other files), and never the input weights.
    """
    from .export import OutputError, export_to_dac
    from .hf_export import ExportError, export_to_hf

    if not output:
        raise UsageError("--output", "required (the weights file for --format dac, the folder for --format hf)")
    target = Path(output)
    model = _model(weights, "cpu")
    keep = [model.source.path]  # the file the model was read from: never replaced
    try:
        if format == "dac":
            export_to_dac(model, target, overwrite=overwrite, keep=keep)
        else:
            _quiet_transformers()
            export_to_hf(model, target, overwrite=overwrite, keep=keep)
    except OutputError as exc:
        raise UsageError("--output", one_line(exc)) from None
    except OSError as exc:  # a full disk, a read-only folder: the partial output is already removed
        raise UsageError("--output", f"cannot write {target}: {exc.strerror or one_line(exc)}") from None
    except (ExportError, ValueError) as exc:  # the model cannot be reproduced in that format
        raise UsageError(weights, one_line(exc)) from None
    loader = ("dac.model.DAC.load(path) and `python -m dac decode --weights_path`" if format == "dac"
              else "transformers.DacModel.from_pretrained(path) and DacFeatureExtractor.from_pretrained(path)")
    _announce(model)
    print(f"wrote {target} ({format}: {loader})")
    return 0


def _quiet_transformers() -> None:
    """No progress bars or notices from ``transformers`` on the command line."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return  # export_to_hf says what to install
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m dac_diveq", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser, what: str) -> None:
        sub.add_argument("input", help=f"{what} file, or a folder searched recursively")
        sub.add_argument("--output", default="", help="output folder (the input's folder tree is mirrored); "
                                                      "default: the current folder")
        sub.add_argument("--weights_path", default="",
                         help="DiVeQDAC weights (DiVeQDAC.save(path, package=False)), stock DAC weights, or a "
                              "training folder (its best checkpoint, else latest; the one used is printed)")
        sub.add_argument("--model_type", default="", help="instead of --weights_path, as `python -m dac`: DAC's "
                                                          "downloaded weights of this type (44khz, 24khz, 16khz)")
        sub.add_argument("--model_bitrate", default="8kbps", help="with --model_type: 8kbps (default) or 16kbps")
        sub.add_argument("--model_tag", default="latest", help="with --model_type: DAC's release tag (default latest)")
        sub.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available; default)")
        sub.add_argument("--verbose", action="store_true", help="progress bars for files and chunks, also when not "
                                                                 "on a terminal (on one: for folders and long files)")
        sub.add_argument("--overwrite", action="store_true", help="replace outputs that exist (default: keep them, "
                                                                   "count them as skipped)")

    enc = commands.add_parser("encode", allow_abbrev=False, help="audio -> .dac (.dacp with --packed)")
    common(enc, f"audio ({', '.join(AUDIO_EXTENSIONS)})")
    enc.add_argument("--n_quantizers", type=int, default=None, help="codebooks to use (default: all)")
    enc.add_argument("--win_duration", type=float, default=WINDOW_S,
                     help=f"longer files are encoded in windows of this many seconds (default {WINDOW_S:g})")
    enc.add_argument("--loudness_db", default="model",
                     help="level (LUFS) each file is normalised to before encoding: model (the level the codec "
                          "trained at, from its weights; default), a number, or raw (the file's own level)")
    enc.add_argument("--packed", action="store_true",
                     help="store codes in log2(codebook size) bits (10 for 1024 words) instead of DAC's 16-bit "
                          "integers: .dacp files of the codec's bitrate, read by this package only")
    dec = commands.add_parser("decode", allow_abbrev=False,
                              help=".dac/.dacp -> wav at the original sample rate and length")
    common(dec, ".dac or .dacp")
    dec.add_argument("--strict", action="store_true",
                     help="refuse a .dac file encoded by a model of another quantizer method (default: warn)")
    inf = commands.add_parser("info", allow_abbrev=False, help="describe a checkpoint or a .dac/.dacp file")
    inf.add_argument("path", help="weights file (DiVeQDAC or stock DAC), training folder (save_path; its best "
                                  "checkpoint, else latest) or .dac/.dacp file")
    inf.add_argument("--weights_path", default="", help="for a .dac file: the model, to check it and get "
                                                         "its bitrate if the file does not name it")
    inf.add_argument("--config", action="store_true", help="for a run's weights: every value of the "
                                                            "configuration it trained with (yml and command line, resolved)")
    exp = commands.add_parser("export", allow_abbrev=False,
                              help="a checkpoint as stock DAC weights or a Hugging Face folder")
    exp.add_argument("weights", help="DiVeQDAC weights file or training folder (save_path; its best checkpoint, "
                                     "else latest)")
    exp.add_argument("--format", choices=EXPORT_FORMATS, default="dac",
                     help="dac: a dac.model.DAC weights file; hf: a transformers DacModel folder (default dac)")
    exp.add_argument("--output", required=True, help="the weights file (dac) or folder (hf) to write")
    exp.add_argument("--overwrite", action="store_true",
                     help="replace an existing output (for hf: only an earlier export's files in the folder; "
                          "never other files, never the input weights)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 some file failed, 2 bad arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.pop_debug_flag(argv)
    args = vars(build_parser().parse_args(argv))
    command = {"encode": encode, "decode": decode, "info": info, "export": export}[args.pop("command")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch/audiotools deprecation notices are not for CLI users
        try:
            return command(**args)
        except UsageError as exc:
            if debug:
                traceback.print_exc(file=sys.stderr)
            _error(str(exc))
            return EXIT_USAGE if str(exc).startswith("--") else EXIT_FAILED
        except UserError as exc:  # one line (--debug or DAC_DIVEQ_DEBUG=1: its traceback too)
            return errors.report(exc, debug)
        except KeyboardInterrupt:
            _error("interrupted")
            return 130
        # Any other exception is a bug and keeps its traceback.
