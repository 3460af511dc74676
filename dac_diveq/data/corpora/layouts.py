"""Reading each corpus's official folder layout: which utterances a copy holds, their speakers
and transcripts. Nothing is converted here; :mod:`.prepare` does that."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence

from .catalog import Corpus
from .errors import CorpusError


@dataclass(frozen=True)
class Utterance:
    """One recording of a copy.

    Attributes:
        id: The corpus's own utterance id (``1089-134686-0000``, ``p225_001``, ``f1_script1``).
        speaker: The corpus's speaker id.
        subset: The subset it belongs to (``"all"`` for corpora without subsets).
        path: The source audio file.
        text: Its transcript (empty where the corpus has none, e.g. DAPS).
    """

    id: str
    speaker: str
    subset: str
    path: Path
    text: str


def _subset_folder(roots: Sequence[Path], top: str, subset: str, corpus: Corpus) -> Path:
    """``<root>/<top>/<subset>`` (or ``<root>/<subset>`` when the root is ``<top>`` itself)."""
    for root in roots:
        for candidate in (root / top / subset, root / subset if root.name == top else None):
            if candidate is not None and candidate.is_dir():
                return candidate
    where = ", ".join(str(r) for r in roots)
    raise CorpusError(f"{top}/{subset} not found under {where} (expected the official layout {corpus.layout}); "
                      "pass --subsets with the subsets this copy has")


def _librispeech(roots: Sequence[Path], subset: str, corpus: Corpus) -> List[Utterance]:
    folder = _subset_folder(roots, "LibriSpeech", subset, corpus)
    found = []
    for transcript in sorted(folder.glob("*/*/*.trans.txt")):
        speaker = transcript.parent.parent.name
        for line in transcript.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            audio = transcript.parent / f"{uid}.flac"
            if not audio.is_file():
                raise CorpusError(f"{audio} is listed in {transcript} but missing: the copy is incomplete")
            found.append(Utterance(uid, speaker, subset, audio, text))
    return found


def _libritts(roots: Sequence[Path], subset: str, corpus: Corpus) -> List[Utterance]:
    folder = _subset_folder(roots, "LibriTTS", subset, corpus)
    found = []
    for audio in sorted(folder.glob("*/*/*.wav")):
        text_file = audio.with_suffix(".normalized.txt")
        text = text_file.read_text(encoding="utf-8").strip() if text_file.is_file() else ""
        found.append(Utterance(audio.stem, audio.parent.parent.name, subset, audio, text))
    return found


def _vctk(roots: Sequence[Path], subset: str, corpus: Corpus) -> List[Utterance]:
    base = next((c for r in roots for c in (r, r / "VCTK-Corpus-0.92")
                 if (c / "wav48_silence_trimmed").is_dir()), None)
    if base is None:
        raise CorpusError(f"wav48_silence_trimmed not found under {', '.join(map(str, roots))} "
                          f"(expected the official VCTK 0.92 layout {corpus.layout})")
    found = []
    # mic1 only: the two microphones are two recordings of the same utterance, not two utterances.
    for audio in sorted(base.glob("wav48_silence_trimmed/*/*_mic1.flac")):
        uid = audio.name[: -len("_mic1.flac")]
        speaker = audio.parent.name
        text_file = base / "txt" / speaker / f"{uid}.txt"
        text = text_file.read_text(encoding="utf-8").strip() if text_file.is_file() else ""
        found.append(Utterance(uid, speaker, subset, audio, text))
    return found


def _daps(roots: Sequence[Path], subset: str, corpus: Corpus) -> List[Utterance]:
    base = next((c for r in roots for c in (r / "daps", r) if (c / "clean").is_dir()), None)
    if base is None:
        raise CorpusError(f"daps/clean not found under {', '.join(map(str, roots))} "
                          f"(expected the official layout {corpus.layout})")
    found = []
    for audio in sorted((base / "clean").glob("*_clean.wav")):
        if audio.name.startswith("._"):  # macOS resource forks shipped inside the archive
            continue
        uid = audio.stem[: -len("_clean")]
        found.append(Utterance(uid, uid.split("_")[0], subset, audio, ""))
    return found


READERS: Dict[str, Callable[[Sequence[Path], str, Corpus], List[Utterance]]] = {
    "librispeech": _librispeech, "libritts": _libritts, "vctk": _vctk, "daps": _daps}


def list_utterances(corpus: Corpus, roots: Sequence[Path], subsets: Sequence[str]) -> List[Utterance]:
    """Every utterance of ``subsets`` in a copy laid out as the corpus distributes it.

    Args:
        corpus: The corpus.
        roots: Folders to look in (the ``--source`` folder, or one folder per extracted archive).
        subsets: Subsets to read.

    Returns:
        The utterances, in subset then path order.

    Raises:
        CorpusError: a subset is not there, or the copy is incomplete or empty.
    """
    found: List[Utterance] = []
    for subset in subsets:
        part = READERS[corpus.name](roots, subset, corpus)
        if not part:
            raise CorpusError(f"no {corpus.name} audio found for subset {subset} under "
                              f"{', '.join(map(str, roots))} (expected {corpus.layout})")
        found.extend(part)
    return found
