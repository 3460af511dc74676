"""Real human speech for training: the spoken words of Debian's ``ktuberling-data`` package.

KTuberling (a KDE game) ships about 1,376 recordings of single words in 26 language folders
(22.05/44.1 kHz Ogg Vorbis, mono and stereo, GPL-2+). Its Serbian folders (``sr``, ``sr@latin``,
``sr@ijekavian``, ``sr@ijekavianlatin``) repeat each other; duplicates are dropped by the hash
of their decoded samples. Every language folder is one speaker, so holding languages out of
training gives a validation set of unseen speakers (and languages).

Output (16 kHz mono WAV, each trimmed of leading/trailing silence and peak-normalised like the
synthesised speech)::

    <speech>/train_real/   ktb_<lang>_<word>.wav + manifest.json
    <speech>/val_real/     the held-out languages, same layout

The test set's languages (:data:`TEST_LANGUAGES`) are written to neither; :mod:`.heldout` makes
the dev and test clips.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import soundfile as sf

from .audio import TARGET_SR, peak_normalise, resample, to_mono, trim_silence
from .errors import DataPrepError
from .fileio import PathLike, atomic_write_json, atomic_write_wav

PACKAGE = "ktuberling-data"
SOUNDS = Path("/usr/share/ktuberling/sounds")
COPYRIGHT = Path("/usr/share/doc/ktuberling-data/copyright")
LICENCE = "GPL-2+"
#: Held out of training (unseen speakers): Greek and Slovenian, about 2 minutes: validation during
#: training and the dev set (:mod:`.heldout`).
DEFAULT_VAL_LANGUAGES = ("el", "sl")
#: Never written anywhere for training: the test set's ktuberling speakers (:mod:`.heldout`).
TEST_LANGUAGES = ("de", "en", "gl", "wa")


def package_version(package: str = PACKAGE) -> Optional[str]:
    """The installed Debian version of ``package``, or None when it is not installed."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def available(sounds: Path = SOUNDS) -> bool:
    """Whether the package's recordings are on this machine."""
    return sounds.is_dir() and any(sounds.glob("*/*.ogg"))


def load(path: Path) -> np.ndarray:
    """One recording as 16 kHz mono, silence trimmed, peak-normalised."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    audio = resample(to_mono(audio), sr, TARGET_SR)
    return peak_normalise(trim_silence(audio, TARGET_SR))


def prepare_ktuberling(speech: PathLike, val_languages: Sequence[str] = DEFAULT_VAL_LANGUAGES,
                       sounds: Path = SOUNDS) -> Dict[str, Path]:
    """Convert the recordings into ``speech/train_real`` and ``speech/val_real``.

    Idempotent: a split whose manifest lists existing files for the same package version and
    held-out languages is kept as it is.

    Args:
        speech: the speech data root (``data/speech``).
        val_languages: language folders held out of training.
        sounds: where the package keeps its recordings.

    Returns:
        ``{"train_real": path, "val_real": path}``.

    Raises:
        DataPrepError: the package is not installed or a recording cannot be read.
    """
    if not available(sounds):
        raise DataPrepError(f"real training speech needs the Debian package {PACKAGE} "
                            f"(apt-get install {PACKAGE}); nothing found in {sounds}")
    speech = Path(speech)
    folders = {"train_real": speech / "train_real", "val_real": speech / "val_real"}
    params = {"package": PACKAGE, "version": package_version(), "val_languages": sorted(val_languages),
              "test_languages": sorted(TEST_LANGUAGES), "sample_rate": TARGET_SR}
    if all(_manifest_matches(folder, params) for folder in folders.values()):
        return folders
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    entries: Dict[str, Dict[str, dict]] = {name: {} for name in folders}
    seen: Dict[str, str] = {}
    for path in sorted(sounds.glob("*/*.ogg")):
        language = path.parent.name
        if language in TEST_LANGUAGES:
            continue  # the test set's speakers: never in training or validation
        try:
            audio = load(path)
        except (RuntimeError, ValueError, sf.LibsndfileError) as exc:
            raise DataPrepError(f"cannot read {path}: {exc}") from None
        digest = hashlib.sha256(np.round(audio * 32767).astype(np.int16).tobytes()).hexdigest()
        if digest in seen or audio.size < TARGET_SR // 10:
            continue  # a repeated recording (the sr@* folders) or nothing left after trimming
        seen[digest] = str(path)
        split = "val_real" if language in val_languages else "train_real"
        name = f"ktb_{language.replace('@', '-')}_{path.stem}.wav"
        atomic_write_wav(folders[split] / name, audio, TARGET_SR)
        entries[split][name] = {"source": str(path), "language": language,
                                "duration_s": round(audio.size / TARGET_SR, 3), "sha256_pcm16": digest}
    for split, folder in folders.items():
        if COPYRIGHT.is_file():
            shutil.copyfile(COPYRIGHT, folder / "COPYRIGHT.ktuberling")
        atomic_write_json(folder / "manifest.json", {
            **params, "licence": LICENCE, "copyright": COPYRIGHT.name,
            "provenance": f"Debian package {PACKAGE} {params['version']}, {sounds}; resampled to "
                          f"{TARGET_SR} Hz mono, silence trimmed, peak-normalised; repeats dropped",
            "count": len(entries[split]),
            "total_s": round(sum(e["duration_s"] for e in entries[split].values()), 2),
            "files": entries[split]})
    return folders


def _manifest_matches(folder: Path, params: dict) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (all(manifest.get(k) == v for k, v in params.items())
            and all((folder / name).is_file() for name in manifest.get("files", {})))
