"""The held-out speech sets: a **dev** set for every decision (conf, loss, budget, ablations) and a
**test** set that is only reported, each of real speakers never heard in training.

Speakers (one per ktuberling language folder, one per asterisk voice; see :mod:`.ktuberling`,
:mod:`.asterisk`) are assigned to exactly one of train / dev / test by :data:`SPEAKERS` below.
Clips are 8-12 s (PESQ's recommended length): one speaker's utterances in name order,
concatenated with 0.3-s pauses (ktuberling's are single words, asterisk's sentences).
Every clip must be wideband: the energy above 4 kHz is measured (:func:`band_energy_db`) and a
clip without it is refused (a narrowband reference would reward a codec for what it cannot hear).

Sex: asterisk's folder names state it; for ktuberling it is estimated from the speaker's median
F0 over voiced frames (below 165 Hz: male), recorded as ``sex_basis``.

Output::

    <speech>/dev/   <speaker>_<k>.wav + manifest.json (sources, licence, sex, band energy per clip)
    <speech>/test/  the same
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from . import asterisk, ktuberling
from .audio import TARGET_SR
from .errors import DataPrepError
from .fileio import PathLike, atomic_write_json, atomic_write_wav

SCHEMA = 2
SPLITS = ("dev", "test")
CLIP_MIN_S, CLIP_TARGET_S, CLIP_MAX_S = 8.0, 10.0, 12.0
PAUSE_S = 0.3
#: A clip whose energy above 4 kHz is below this (relative to its total) is narrowband.
NARROWBAND_DB = -40.0


@dataclass(frozen=True)
class Speaker:
    """One held-out speaker.

    Attributes:
        id: Clip-name prefix.
        source: ``"ktuberling"`` (key: language folder) or ``"asterisk"`` (key: voice folder).
        key: Where the recordings are.
        split: ``"dev"`` or ``"test"``.
        sex: ``"female"`` or ``"male"``.
        sex_basis: How ``sex`` is known.
        clips: Clips to make (fewer when the speaker has less speech).
    """

    id: str
    source: str
    key: str
    split: str
    sex: str
    sex_basis: str
    clips: int


_F0 = "estimated: median F0 {} Hz over voiced frames"
SPEAKERS = (
    # dev: the languages already held out as val_real, and one asterisk voice
    Speaker("ktb_el", "ktuberling", "el", "dev", "male", _F0.format(157), 6),
    Speaker("ktb_sl", "ktuberling", "sl", "dev", "male", _F0.format(162), 5),
    Speaker("ast_ru", "asterisk", "ru_RU_f_IvrvoiceRU", "dev", "female", "folder name", 6),
    # test: three female and three male speakers
    Speaker("ktb_de", "ktuberling", "de", "test", "male", _F0.format(146), 5),
    Speaker("ktb_wa", "ktuberling", "wa", "test", "male", _F0.format(130), 5),
    Speaker("ktb_gl", "ktuberling", "gl", "test", "female", _F0.format(314), 5),
    Speaker("ktb_en", "ktuberling", "en", "test", "female", _F0.format(176), 5),
    Speaker("ast_it", "asterisk", "it_IT_m_Carlo", "test", "male", "folder name", 8),
    Speaker("ast_fr", "asterisk", "fr_CA_f_June", "test", "female", "folder name", 8),
)
#: ktuberling languages that never reach training (dev ones are ktuberling's val_real).
KTUBERLING_DEV = tuple(s.key for s in SPEAKERS if s.source == "ktuberling" and s.split == "dev")
KTUBERLING_TEST = tuple(s.key for s in SPEAKERS if s.source == "ktuberling" and s.split == "test")


def band_energy_db(audio: np.ndarray, sample_rate: int, low_hz: float = 4000.0) -> float:
    """Energy above ``low_hz`` relative to the total energy, in dB (-inf for silence above it)."""
    spectrum = np.abs(np.fft.rfft(np.asarray(audio, dtype=np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sample_rate)
    total = spectrum.sum()
    if total <= 0:
        raise ValueError("silent audio has no bandwidth")
    high = spectrum[freqs >= low_hz].sum()
    return float(10 * np.log10(high / total)) if high > 0 else float("-inf")


def is_wideband(audio: np.ndarray, sample_rate: int) -> bool:
    """Whether ``audio`` carries speech energy above 4 kHz (see :data:`NARROWBAND_DB`)."""
    return sample_rate > 8000 and band_energy_db(audio, sample_rate) >= NARROWBAND_DB


def make_clips(utterances: Sequence[tuple[str, np.ndarray]], count: int) -> List[tuple[np.ndarray, List[str]]]:
    """Concatenate ``(name, audio)`` utterances, in order, into up to ``count`` clips of 8-12 s.

    An utterance that would push a clip past 12 s closes it when it has 8 s, else is skipped; an
    utterance longer than 12 s is skipped. What is left at the end, under 8 s, is dropped.

    Returns:
        ``[(audio, [utterance names]), ...]``.
    """
    pause = np.zeros(int(PAUSE_S * TARGET_SR), dtype=np.float32)
    clips, parts, names, length = [], [], [], 0
    for name, audio in utterances:
        if len(clips) == count:
            break
        extra = audio.size + (pause.size if parts else 0)
        if (length + extra) / TARGET_SR > CLIP_MAX_S:
            if length / TARGET_SR < CLIP_MIN_S:
                continue  # too long to finish this clip within 12 s
            clips.append((np.concatenate(parts), names))
            parts, names, length = [], [], 0
            extra = audio.size
            if extra / TARGET_SR > CLIP_MAX_S:
                continue
        if parts:
            parts.append(pause)
        parts.append(audio.astype(np.float32))
        names.append(name)
        length += extra
        if length / TARGET_SR >= CLIP_TARGET_S:
            clips.append((np.concatenate(parts), names))
            parts, names, length = [], [], 0
    return clips[:count]


def _utterances(speaker: Speaker) -> List[tuple[str, np.ndarray]]:
    if speaker.source == "ktuberling":
        paths = sorted((ktuberling.SOUNDS / speaker.key).glob("*.ogg"))
        loaded = [(str(p), ktuberling.load(p)) for p in paths]
        return [(n, a) for n, a in loaded if a.size >= TARGET_SR // 10]
    loaded = [(str(p), asterisk.decode(p)) for p in asterisk.prompts(speaker.key)]
    return [(n, a) for n, a in loaded if a.size >= asterisk.MIN_PROMPT_S * TARGET_SR]


def _licence(speaker: Speaker) -> str:
    if speaker.source == "ktuberling":
        return f"{ktuberling.LICENCE} (Debian {ktuberling.PACKAGE})"
    voice = asterisk.VOICES[speaker.key]
    return f"{voice.licence} (Debian {voice.package})"


def _params() -> dict:
    return {"schema": SCHEMA, "speakers": [asdict(s) for s in SPEAKERS],
            "clip_s": [CLIP_MIN_S, CLIP_TARGET_S, CLIP_MAX_S], "pause_s": PAUSE_S,
            "versions": {p: ktuberling.package_version(p) for p in (ktuberling.PACKAGE, *asterisk.PACKAGES)}}


def _is_current(folder: Path, params: dict) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("params") == params and all((folder / f).is_file() for f in manifest.get("files", {}))


def prepare_heldout(speech: PathLike) -> Dict[str, Path]:
    """Write the dev and test sets under ``speech`` (idempotent).

    Returns:
        ``{"dev": path, "test": path}``.

    Raises:
        DataPrepError: a source package is missing, or a clip is narrowband.
    """
    if not ktuberling.available():
        raise DataPrepError(f"the held-out speech sets need the Debian package {ktuberling.PACKAGE} "
                            f"(apt-get install {ktuberling.PACKAGE})")
    asterisk.require([s.key for s in SPEAKERS if s.source == "asterisk"])
    speech = Path(speech)
    folders = {split: speech / split for split in SPLITS}
    params = _params()
    if all(_is_current(folder, params) for folder in folders.values()):
        return folders
    entries: Dict[str, Dict[str, dict]] = {split: {} for split in SPLITS}
    clips: Dict[str, Dict[str, np.ndarray]] = {split: {} for split in SPLITS}
    for speaker in SPEAKERS:
        for k, (audio, sources) in enumerate(make_clips(_utterances(speaker), speaker.clips)):
            band = band_energy_db(audio, TARGET_SR)
            name = f"{speaker.id}_{k}.wav"
            if band < NARROWBAND_DB:
                raise DataPrepError(f"{name} is narrowband (energy above 4 kHz {band:.1f} dB): not a wideband reference")
            clips[speaker.split][name] = audio
            entries[speaker.split][name] = {
                "speaker": speaker.id, "sex": speaker.sex, "sex_basis": speaker.sex_basis,
                "source": speaker.source, "duration_s": round(audio.size / TARGET_SR, 3),
                "energy_above_4k_db": round(band, 1), "licence": _licence(speaker),
                "made_of": sources, "how": f"{len(sources)} utterances of one speaker, {PAUSE_S:g}-s pauses"}
    for split, folder in folders.items():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, audio in clips[split].items():
            atomic_write_wav(folder / name, audio, TARGET_SR)
        files = entries[split]
        atomic_write_json(folder / "manifest.json", {
            "params": params, "split": split,
            "use": "decisions (confs, losses, budgets, ablations)" if split == "dev"
                   else "reported only: never used for a decision",
            "speakers": sorted({e["speaker"] for e in files.values()}),
            "count": len(files), "total_s": round(sum(e["duration_s"] for e in files.values()), 2),
            "files": files})
    return folders
