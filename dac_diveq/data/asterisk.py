"""Real read speech from Debian's ``asterisk-core-sounds-*-g722`` packages (telephone-system prompts).

Each package holds about 25 minutes of prompts (sentences of 1-10 s) read by one professional
speaker, stored as G.722 at 64 kbit/s: wideband (50-7000 Hz) at 16 kHz. Four speakers, named with
their sex in the folder names: Allison Smith (US English and Mexican Spanish, female; CC-BY-SA-3.0),
June Wallack (Canadian French, female; CC-BY-SA-3.0), Carlo Flora (Italian, male; CC-BY-3.0) and the
Russian voice of ivrvoice.ru (female; CC-BY-3.0). The prompts are decoded with the ``G722`` package
from PyPI: the references are G.722-coded speech (transparent for most listeners, PESQ-WB about 4.4
on clean speech), which is said wherever they are used.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from .audio import TARGET_SR, trim_silence
from .errors import DataPrepError
from .fileio import PathLike, atomic_write_json, atomic_write_wav
from .ktuberling import package_version

SOUNDS = Path("/usr/share/asterisk/sounds")
#: Prompts shorter than this (after trimming) are single syllables: not used.
MIN_PROMPT_S = 0.5


@dataclass(frozen=True)
class Voice:
    """One speaker's folder of prompts.

    Attributes:
        folder: Folder under :data:`SOUNDS` (``<lang>_<COUNTRY>_<sex>_<name>``).
        package: Debian package that installs it.
        speaker: Who reads it (one id per person: Allison reads two folders).
        language: Language tag.
        sex: ``"female"`` or ``"male"`` (from the folder name).
        licence: Licence of the recordings (the package's copyright file).
    """

    folder: str
    package: str
    speaker: str
    language: str
    sex: str
    licence: str


VOICES = {v.folder: v for v in (
    Voice("en_US_f_Allison", "asterisk-core-sounds-en-g722", "allison", "en-US", "female", "CC-BY-SA-3.0"),
    Voice("es_MX_f_Allison", "asterisk-core-sounds-es-g722", "allison", "es-MX", "female", "CC-BY-SA-3.0"),
    Voice("fr_CA_f_June", "asterisk-core-sounds-fr-g722", "june", "fr-CA", "female", "CC-BY-SA-3.0"),
    Voice("it_IT_m_Carlo", "asterisk-core-sounds-it-g722", "carlo", "it-IT", "male", "CC-BY-3.0"),
    Voice("ru_RU_f_IvrvoiceRU", "asterisk-core-sounds-ru-g722", "ivrvoice_ru", "ru-RU", "female", "CC-BY-3.0"),
)}
PACKAGES = tuple(sorted({v.package for v in VOICES.values()}))
#: The training speaker (both of Allison's folders); the others are held out (dev and test sets).
TRAIN_FOLDERS = ("en_US_f_Allison", "es_MX_f_Allison")


def available(folder: str, sounds: Path = SOUNDS) -> bool:
    """Whether the prompts of ``folder`` are on this machine."""
    return (sounds / folder).is_dir() and any((sounds / folder).glob("*.g722"))


def require(folders: Sequence[str], sounds: Path = SOUNDS) -> None:
    """Raise a one-line :class:`DataPrepError` naming the packages to install when any folder is missing."""
    missing = sorted({VOICES[f].package for f in folders if not available(f, sounds)})
    if missing:
        raise DataPrepError(f"real speech needs the Debian packages {' '.join(missing)} "
                            f"(apt-get install {' '.join(missing)}, or bash scripts/install_system_deps.sh)")


def decode(path: Path) -> np.ndarray:
    """A G.722 prompt file as 16 kHz float32 samples, leading/trailing silence trimmed."""
    try:
        import G722
    except ImportError:  # a dependency of the package: only a broken install lacks it
        raise DataPrepError("the G722 package is missing (pip install G722)") from None
    data = path.read_bytes()
    pcm = np.asarray(G722.G722(TARGET_SR, 64000).decode(data), dtype=np.float32) / 32768.0
    return trim_silence(pcm, TARGET_SR)


def prompts(folder: str, sounds: Path = SOUNDS) -> List[Path]:
    """The prompt files of ``folder`` in name order (subfolders included)."""
    return sorted((sounds / folder).rglob("*.g722"))


def prepare_prompts(out: PathLike, folders: Sequence[str] = TRAIN_FOLDERS, sounds: Path = SOUNDS) -> Path:
    """Decode the prompts of ``folders`` into ``out`` (16 kHz WAVs + ``manifest.json``) for training.

    Idempotent: a manifest for the same folders and package versions whose files exist is kept.

    Returns:
        ``out``.
    """
    require(folders, sounds)
    out = Path(out)
    params = {"folders": list(folders), "versions": {VOICES[f].package: package_version(VOICES[f].package)
                                                     for f in folders}, "sample_rate": TARGET_SR}
    try:
        old = json.loads((out / "manifest.json").read_text())
        if all(old.get(k) == v for k, v in params.items()) and all((out / n).is_file() for n in old["files"]):
            return out
    except (OSError, ValueError, KeyError, TypeError):
        pass
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files: Dict[str, dict] = {}
    for folder in folders:
        voice = VOICES[folder]
        for path in prompts(folder, sounds):
            audio = decode(path)
            if audio.size < MIN_PROMPT_S * TARGET_SR:
                continue
            name = f"ast_{folder}_{path.relative_to(sounds / folder).with_suffix('').as_posix().replace('/', '-')}.wav"
            atomic_write_wav(out / name, audio, TARGET_SR)
            files[name] = {"source": str(path), "speaker": voice.speaker, "language": voice.language,
                           "sex": voice.sex, "licence": voice.licence,
                           "duration_s": round(audio.size / TARGET_SR, 3)}
    atomic_write_json(out / "manifest.json", {
        **params, "provenance": "Debian asterisk-core-sounds-*-g722 packages: G.722 (64 kbit/s) decoded with "
                                "the G722 package, 16 kHz, silence trimmed, levels kept",
        "count": len(files), "total_s": round(sum(e["duration_s"] for e in files.values()), 2), "files": files})
    return out
