"""Speech synthesis with the Debian ``espeak-ng`` and ``flite`` command-line engines.

Each utterance is synthesised in a private temporary folder by a subprocess, then made
16 kHz mono (espeak-ng writes 22,050 Hz; flite's 16 kHz voices need no resampling), lightly
trimmed of leading and trailing silence, peak-normalised to -1 dBFS and written atomically
as 16-bit PCM. The engines are deterministic, so the same text and setting give the same file.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

from .audio import TARGET_SR, peak_normalise, resample, rms_dbfs, to_mono, trim_silence
from .errors import DataPrepError
from .fileio import PathLike, atomic_write_wav
from .voices import ESPEAK, FLITE, VoiceSetting

APT_HINT = "apt-get install espeak-ng flite"
ENGINES = (ESPEAK, FLITE)
PEAK_DB = -1.0
MIN_SECONDS = 0.3
TIMEOUT_S = 60


def find_engines() -> Dict[str, str]:
    """Return ``{engine: executable path}`` for the engines found on ``PATH``.

    Returns:
        Possibly empty dict with keys among ``"espeak-ng"`` and ``"flite"``.
    """
    found = {name: shutil.which(name) for name in ENGINES}
    return {name: path for name, path in found.items() if path}


def require_engines() -> List[str]:
    """Check that at least one engine is installed; warn when only one is.

    Returns:
        The sorted names of the installed engines.

    Raises:
        DataPrepError: When neither engine is installed.
    """
    found = sorted(find_engines())
    missing = [name for name in ENGINES if name not in found]
    if not found:
        raise DataPrepError(
            f"no speech synthesiser found: {' and '.join(missing)} are missing from PATH; "
            f"install them with `{APT_HINT}` (Debian/Ubuntu, as root)")
    if missing:
        warnings.warn(
            f"{missing[0]} is not installed, synthesising with {found[0]} only (fewer voices); "
            f"install it with `{APT_HINT}`", RuntimeWarning, stacklevel=2)
    return found


def _run(cmd: List[str]) -> str:
    """Run ``cmd``; return its stdout, raising :class:`DataPrepError` on failure."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataPrepError(f"`{' '.join(cmd)}` failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
        raise DataPrepError(f"`{' '.join(cmd)}` exited with {proc.returncode}: {tail}")
    return proc.stdout


def espeak_inventory() -> Tuple[List[str], List[str]]:
    """List espeak-ng's English languages and its voice variants.

    Returns:
        ``(languages, variants)``, e.g. ``(["en-gb", "en-us", ...], ["m1", "f2", "klatt", ...])``.
    """
    languages, variants = [], []
    for line in _run([ESPEAK, "--voices=en"]).splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and not parts[4].startswith("mb/"):  # MBROLA voices need mbrola
            languages.append(parts[1])
    for line in _run([ESPEAK, "--voices=variant"]).splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            variants.append(parts[4][3:])
    return sorted(set(languages)), sorted(set(variants))


def flite_inventory() -> List[str]:
    """List flite's built-in voices.

    Returns:
        Voice names such as ``["awb", "kal", "kal16", "rms", "slt"]``.
    """
    out = _run([FLITE, "-lv"])
    return out.split(":", 1)[1].split() if ":" in out else out.split()


def _command(setting: VoiceSetting, text_file: Path, wav_file: Path) -> List[str]:
    """Return the engine command line that speaks ``text_file`` into ``wav_file``."""
    if setting.engine == ESPEAK:
        cmd = [ESPEAK, "-v", setting.voice, "-s", str(int(setting.rate)), "-g",
               str(setting.word_gap), "-w", str(wav_file), "-f", str(text_file)]
        if setting.pitch is not None:
            cmd[3:3] = ["-p", str(int(setting.pitch))]
        return cmd
    if setting.engine == FLITE:
        cmd = [FLITE, "-voice", setting.voice, "--setf", f"duration_stretch={setting.rate}"]
        if setting.pitch is not None:
            cmd += ["--setf", f"int_f0_target_mean={setting.pitch}"]
        return cmd + ["-f", str(text_file), "-o", str(wav_file)]
    raise ValueError(f"unknown engine {setting.engine!r}")


def synthesize_array(text: str, setting: VoiceSetting) -> np.ndarray:
    """Speak ``text`` and return processed 16 kHz mono float audio.

    Args:
        text: The sentence.
        setting: Engine, voice, rate and pitch.

    Returns:
        1-D float32 audio at 16 kHz, trimmed and peak-normalised to -1 dBFS.

    Raises:
        DataPrepError: When the engine fails or produces (near) silence.
    """
    with tempfile.TemporaryDirectory(prefix="dac_diveq_tts_") as tmp:
        text_file, wav_file = Path(tmp, "text.txt"), Path(tmp, "out.wav")
        text_file.write_text(text + "\n", encoding="utf-8")
        cmd = _command(setting, text_file, wav_file)
        _run(cmd)
        if not wav_file.is_file() or wav_file.stat().st_size <= 44:
            raise DataPrepError(f"`{' '.join(cmd)}` wrote no audio")
        audio, sr = sf.read(wav_file, dtype="float32", always_2d=False)
    audio = trim_silence(resample(to_mono(audio), sr, TARGET_SR), TARGET_SR)
    if rms_dbfs(audio) < -70.0 or len(audio) < MIN_SECONDS * TARGET_SR:
        raise DataPrepError(f"{setting.engine} voice {setting.voice} produced silence for {text!r}")
    return peak_normalise(audio, PEAK_DB)


def synthesize(text: str, setting: VoiceSetting, out_path: PathLike) -> float:
    """Speak ``text`` into a 16 kHz mono 16-bit WAV file, written atomically.

    Args:
        text: The sentence.
        setting: Engine, voice, rate and pitch.
        out_path: Destination ``.wav`` file.

    Returns:
        The duration of the written audio, in seconds.
    """
    audio = synthesize_array(text, setting)
    atomic_write_wav(out_path, audio, TARGET_SR)
    return len(audio) / TARGET_SR
