"""Audio datasets for codec training, built from DAC's ``folders`` dictionaries with audiotools."""

from pathlib import Path
from typing import Callable, Optional

from audiotools.data import transforms
from audiotools.data.datasets import AudioDataset, AudioLoader, ConcatDataset

# A data folder that is missing, holds no audio, or is a held-out test set (a user error).
from ..errors import DataError, one_line  # noqa: F401
from . import bounds
from .compat import patch_audiotools
from ..training.userfiles import file_kind


def check_folders(folders: Optional[dict], role: str = "train") -> None:
    """Check a ``build_dataset.folders`` dictionary before anything is built.

    Every folder must exist (a missing prepared corpus is named with the command that prepares it,
    in one line) and none may be a held-out test set (a folder with the ``HELD_OUT`` marker that
    ``prepare_data --corpus`` writes into ``test/`` and ``test_list/``): those are reported only.

    Args:
        folders: DAC's ``{name: [folder, ...]}``.
        role: ``"train"`` or ``"val"`` (said in messages).

    Raises:
        DataError: a folder is missing or held out.
    """
    from .corpora import HELD_OUT, missing_data_hint

    for name, sources in (folders or {}).items():
        for source in [sources] if isinstance(sources, (str, Path)) else list(sources):
            kind = file_kind(source)
            if kind not in ("a folder", "missing"):  # a file, a FIFO, ...: named as what it is
                raise DataError(f"data folder {source!r} ({role} {name}) is not a folder ({'a regular file' if kind == 'file' else kind})")
            if kind == "missing":
                hint = missing_data_hint(source)
                raise DataError(f"data folder {source!r} ({role} {name}) does not exist"
                                + (f": {hint}" if hint else ""))
            if (Path(source) / HELD_OUT).is_file():
                raise DataError(f"data folder {source!r} ({role} {name}) is a held-out test set (it has a {HELD_OUT} "
                                "file): reported only, never trained or validated on")


def build_transform(preprocess: list = ("Identity",), augment: list = ("Identity",),
                    postprocess: list = ("Identity",), augment_prob: float = 1.0,
                    loudness_db: Optional[float] = None) -> transforms.Compose:
    """DAC's transform pipeline from lists of audiotools transform names.

    Args:
        preprocess, augment, postprocess, augment_prob: as DAC's ``build_transform``.
        loudness_db: the codec's training level: every ``VolumeNorm`` normalises to it (the level is
            the model's, ``DiVeQDAC.loudness_db``, so that inference uses the same one).
    """
    def make(names):
        return [getattr(transforms, name)(**({"db": ("const", loudness_db)}
                                              if name == "VolumeNorm" and loudness_db is not None else {}))
                for name in names]

    return transforms.Compose(
        transforms.Compose(*make(preprocess), name="preprocess"),
        transforms.Compose(*make(augment), name="augment", prob=augment_prob),
        transforms.Compose(*make(postprocess), name="postprocess"),
    )


def is_transform(obj) -> bool:
    """Whether ``obj`` is one of audiotools' transforms a yml may configure (not a base or a container)."""
    return hasattr(obj, "transform") and obj.__qualname__ not in ("BaseTransform", "Compose", "Choose")


def check_listed_files(audio_lists: list, name: str, sample_rate: int) -> None:
    """Refuse a data folder that lists an audio name which is not a regular readable audio file, or
    whose header claims what no file may (``bounds.header_problem`` at the codec's rate).

    A named pipe called ``x.wav`` would block the data loader forever once sampled, a corrupt file
    would stop training with a traceback the first time it is drawn, and a header of 10^9 Hz would
    make an excerpt of gigabytes. A training run's data is what its folders hold: such a file is
    refused at start-up, not skipped, so that no run trains on less than its folders say.

    Args:
        audio_lists: audiotools' ``AudioLoader.audio_lists`` (per source, dicts with a ``path``).
        name: the ``folders`` entry, for the message.
        sample_rate: the codec's rate, which every excerpt is resampled to.

    Raises:
        DataError: one line naming the first such file and what is wrong with it.
    """
    import soundfile

    for rows in audio_lists:
        for row in rows:
            path = row["path"]
            kind = file_kind(path)
            if kind != "file":
                raise DataError(f"{path} ({name}) is not a regular file ({kind}); remove it from the data folder")
            try:
                header = soundfile.info(str(path))
            except Exception as exc:  # LibsndfileError, TypeError, ... on corrupt or non-audio files
                raise DataError(f"{path} ({name}) cannot be read as audio ({one_line(exc)}); remove it from "
                                "the data folder") from None
            problem = bounds.header_problem(int(header.samplerate), int(header.frames), int(header.channels),
                                            sample_rate)
            if problem:
                raise DataError(f"{path} ({name}): {problem}; remove it from the data folder")


def build_dataset(folders: dict, sample_rate: int, transform: Optional[transforms.Compose] = None,
                  make_loader: Callable = AudioLoader, make_dataset: Callable = AudioDataset) -> ConcatDataset:
    """One dataset per ``folders`` entry (a name -> list of folders), cycled as DAC does.

    Args:
        folders: DAC's ``build_dataset.folders`` dictionary.
        sample_rate: the codec's sample rate.
        transform: applied to every item (DAC's ``build_transform``).
        make_loader, make_dataset: audiotools' ``AudioLoader`` / ``AudioDataset`` or argbind-bound
            versions of them (so ``AudioDataset.duration`` etc. come from the yml).

    Raises:
        DataError: a folder is missing, held out (:func:`check_folders`) or contains no audio files.
    """
    if not folders:
        raise DataError("no data folders configured (build_dataset.folders)")
    check_folders(folders, "data")
    # audiotools' loaders read every file's length with util.info, which torchaudio >= 2.9 lacks.
    patch_audiotools()
    datasets = []
    for name, sources in folders.items():
        sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
        loader = make_loader(sources=[str(s) for s in sources])
        if not loader.audio_indices:
            raise DataError(f"no audio files in {', '.join(map(str, sources))} ({name})")
        check_listed_files(loader.audio_lists, name, sample_rate)
        datasets.append(make_dataset(loader, sample_rate, transform=transform))
    dataset = ConcatDataset(datasets)
    dataset.transform = transform
    return dataset
