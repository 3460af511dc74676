"""Prepare a corpus for training: resampled audio files in speaker-disjoint split folders.

Output (``OUT`` is ``--output``, ``data/corpora`` by default)::

    OUT/<corpus>/provenance.json               licence, citation, archives + checksums, counts
    OUT/<corpus>/<rate>/train/<speaker>/<id>.flac   (+ train/manifest.jsonl: id, speaker, text, source)
    OUT/<corpus>/<rate>/val/...
    OUT/<corpus>/<rate>/test/...               held out: a HELD_OUT file the loaders refuse to train on
    OUT/librispeech/<rate>/test_list/<id>.wav  the committed standard test list (GPU reports)

Folders of files, not manifests pointing at the originals, because (1) DAC's
``build_dataset.folders`` reads folders, so the confs stay DAC's; (2) the model's rate is fixed
once here instead of resampling 24/44.1/48 kHz sources for every excerpt in the data-loader
workers; (3) the originals (archives, extracted copies) can be deleted after preparation. Training
audio is 16-bit FLAC (about half the disk of WAV; soundfile seeks in it for excerpts); the test
list is WAV, what the evaluation and other tools read everywhere.

A rate is written under ``<rate>.tmp`` and renamed to ``<rate>`` when complete, so an interrupted
preparation never leaves a folder that looks finished; running the command again resumes (files
already converted in ``<rate>.tmp`` are kept).
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from ...training.checkpoint import atomic_path
from ..audio import resample, to_mono
from ..fileio import FILE_MODE, PathLike, atomic_write_bytes, atomic_write_json
from .catalog import CORPORA, SPLITS, Corpus
from .download import check_disk, download, extract, human, remote_size
from .errors import CorpusError
from .layouts import Utterance, list_utterances

DEFAULT_OUTPUT = "data/corpora"
DEFAULT_RATES = (16000,)
SCHEMA = 1
#: A folder holding this file is a held-out test set: :func:`dac_diveq.data.loaders.build_dataset`
#: refuses to train or validate on it.
HELD_OUT = "HELD_OUT"
TEST_LIST = Path(__file__).with_name("librispeech_test_clean.txt")
TEST_LIST_FOLDER = "test_list"
#: More of the list missing from a copy than this means a wrong copy, not a few absent files.
TEST_LIST_MAX_MISSING = 0.05
# Estimates (stated as such wherever they are used): download bandwidth, FLAC's size relative to
# 16-bit PCM on read speech, and seconds of audio prepared per second on one core.
DOWNLOAD_BYTES_PER_S = 20e6
FLAC_RATIO = 0.6
REALTIME_PER_CORE = 150.0


def get_corpus(name: str) -> Corpus:
    """The catalog entry of ``name``.

    Raises:
        CorpusError: unknown name.
    """
    if name not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; choose from {', '.join(sorted(CORPORA))}")
    return CORPORA[name]


def check_subsets(corpus: Corpus, subsets: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """``subsets`` (default: the corpus's default subsets), each checked against the catalog."""
    subsets = tuple(subsets or corpus.default_subsets)
    unknown = [s for s in subsets if s not in corpus.subsets]
    if unknown:
        raise CorpusError(f"{corpus.name} has no subset {', '.join(unknown)}; choose from "
                          f"{', '.join(corpus.subsets)}")
    return tuple(dict.fromkeys(subsets))


def check_rates(corpus: Corpus, rates: Sequence[int]) -> Tuple[int, ...]:
    """The requested sample rates; one above the corpus's own would only upsample, and is refused."""
    rates = tuple(dict.fromkeys(int(r) for r in rates))
    if not rates or any(r <= 0 for r in rates):
        raise CorpusError(f"sample rates must be positive integers, got {list(rates)}")
    above = [r for r in rates if r > corpus.native_rate]
    if above:
        better = ", ".join(c.name for c in CORPORA.values() if c.native_rate >= max(above))
        raise CorpusError(f"{corpus.name} is recorded at {corpus.native_rate} Hz: preparing it at {above[0]} Hz would "
                          f"add no bandwidth (use a corpus recorded at {max(above)} Hz or more: {better})")
    return rates


def prepared_bytes(corpus: Corpus, subsets: Sequence[str], rates: Sequence[int]) -> int:
    """Estimated disk of the prepared audio (16-bit FLAC)."""
    return int(sum(corpus.hours(tuple(subsets)) * 3600 * rate * 2 * FLAC_RATIO for rate in rates))


def copy_prepared_bytes(corpus: Corpus, utterances: Sequence[Utterance], rates: Sequence[int]) -> int:
    """Disk the prepared audio of an extracted copy can take: the copy's own audio files, scaled by
    each rate over the corpus's, plus a tenth (16-bit FLAC at a rate no higher than the source is no
    larger than the source's FLAC or WAV). Measured on the copy, not estimated from the corpus's
    official hours: a partial copy needs what it holds."""
    size = sum(u.path.stat().st_size for u in utterances)
    return int(1.1 * sum(size * rate / corpus.native_rate for rate in rates))


def command(corpus: Corpus, subsets: Optional[Sequence[str]] = None, rates: Sequence[int] = DEFAULT_RATES) -> str:
    """The command line that prepares ``corpus`` from its official location."""
    parts = ["python scripts/prepare_data.py", "--corpus", corpus.name, "--download"]
    if subsets and tuple(subsets) != corpus.default_subsets:
        parts += ["--subsets", *subsets]
    if tuple(rates) != DEFAULT_RATES:
        parts += ["--sample_rate", *map(str, rates)]
    return " ".join(parts)


def estimate(corpus: Corpus, subsets: Optional[Sequence[str]] = None, rates: Sequence[int] = DEFAULT_RATES,
             cores: int = 16) -> str:
    """Download size, prepared size and time of a preparation, in words (estimates)."""
    subsets = check_subsets(corpus, subsets)
    download_bytes = sum(corpus.subsets[s].size for s in subsets)
    seconds = download_bytes / DOWNLOAD_BYTES_PER_S + \
        corpus.hours(subsets) * 3600 * len(rates) / (REALTIME_PER_CORE * cores)
    return (f"{human(download_bytes)} to download, about {human(prepared_bytes(corpus, subsets, rates))} prepared, "
            f"~{max(1, round(seconds / 60))} min at 20 MB/s on {cores} cores (estimates)")


def missing_data_hint(folder: PathLike) -> Optional[str]:
    """For a missing ``<output>/<corpus>/<rate>/<split>`` folder, the command that makes it.

    Returns:
        ``"prepare it with `python scripts/prepare_data.py --corpus ... --download` (sizes, time)"``,
        or ``None`` when ``folder`` is not a prepared-corpus folder.
    """
    parts = Path(folder).parts
    if len(parts) < 3 or parts[-3] not in CORPORA or not parts[-2].isdigit():
        return None
    corpus, rate, split = CORPORA[parts[-3]], int(parts[-2]), parts[-1]
    subsets = None
    if split == TEST_LIST_FOLDER:
        subsets = ("test-clean",)
    output = Path(*parts[:-3]) if len(parts) > 3 else Path(".")
    line = command(corpus, subsets, (rate,))
    if output.as_posix() != DEFAULT_OUTPUT:
        line += f" --output {output.as_posix()}"
    return f"prepare it with `{line}` ({estimate(corpus, subsets, (rate,))})"


def read_test_list(path: Path = TEST_LIST) -> List[str]:
    """The committed standard test list (utterance ids; ``#`` starts a comment)."""
    lines = (line.split("#")[0].strip() for line in Path(path).read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def _speaker_sexes(roots: Sequence[Path]) -> Dict[str, str]:
    """Speaker -> ``female``/``male`` from LibriSpeech's SPEAKERS.TXT or VCTK's speaker-info.txt, if present."""
    sexes: Dict[str, str] = {}
    for root in roots:
        for path in (root / "LibriSpeech" / "SPEAKERS.TXT", root / "SPEAKERS.TXT", root / "LibriTTS" / "speakers.tsv"):
            if path.is_file():
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    fields = [f.strip() for f in line.replace("\t", "|").split("|")]
                    if len(fields) >= 2 and not line.startswith(";") and fields[1] in ("F", "M"):
                        sexes[fields[0]] = "female" if fields[1] == "F" else "male"
        for path in (root / "speaker-info.txt", root / "VCTK-Corpus-0.92" / "speaker-info.txt"):
            if path.is_file():
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
                    fields = line.split()
                    if len(fields) >= 3 and fields[2] in ("F", "M"):
                        sexes[fields[0]] = "female" if fields[2] == "F" else "male"
    return sexes


def assign_splits(corpus: Corpus, utterances: Iterable[Utterance]) -> Dict[str, List[Utterance]]:
    """Utterances by split, checked speaker-disjoint.

    Raises:
        CorpusError: a speaker falls in two splits (a copy whose subsets were mixed up).
    """
    splits: Dict[str, List[Utterance]] = {s: [] for s in SPLITS}
    for utt in utterances:
        splits[corpus.split_of(utt.subset, utt.speaker)].append(utt)
    speakers = {s: {u.speaker for u in utts} for s, utts in splits.items()}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            shared = speakers[a] & speakers[b]
            if shared:
                raise CorpusError(f"{corpus.name}: speakers {', '.join(sorted(shared)[:5])} are in both {a} and {b}; "
                                  "the copy's subsets are mixed up")
    return splits


def _write_audio(path: Path, audio: np.ndarray, rate: int) -> None:
    fmt = "FLAC" if path.suffix == ".flac" else "WAV"
    with atomic_path(path, FILE_MODE) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16", format=fmt)


def convert(source: str, dest: str, rate: int) -> float:
    """Read ``source``, mix to mono, resample to ``rate`` and write ``dest`` (atomically).

    Returns:
        The duration in seconds.
    """
    dest_path = Path(dest)
    if dest_path.is_file():  # converted by an interrupted run: resume
        return sf.info(dest).duration
    try:
        audio, sr = sf.read(source, dtype="float32", always_2d=False)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise CorpusError(f"cannot read {source} ({exc}): a damaged copy?") from None
    audio = resample(to_mono(audio), sr, rate)
    _write_audio(dest_path, audio, rate)
    return audio.size / rate


def _one_thread() -> None:
    """Worker processes resample with one torch thread each: ``workers`` processes already fill the cores."""
    import torch

    torch.set_num_threads(1)


def _convert_all(jobs: List[Tuple[str, str, int]], workers: int, progress: bool, desc: str) -> List[float]:
    from tqdm import tqdm

    with tqdm(total=len(jobs), desc=desc, unit="file", disable=not progress, leave=False) as bar:
        if workers <= 1:
            durations = []
            for job in jobs:
                durations.append(convert(*job))
                bar.update()
            return durations
        with ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
            futures = [pool.submit(convert, *job) for job in jobs]
            durations = []
            for future in futures:
                durations.append(future.result())
                bar.update()
            return durations


def _write_rate(corpus: Corpus, splits: Dict[str, List[Utterance]], rate: int, folder: Path,
                sexes: Dict[str, str], workers: int, progress: bool) -> Dict[str, dict]:
    """Write one rate's split folders into ``folder``; returns per-split counts."""
    summary: Dict[str, dict] = {}
    for split, utts in splits.items():
        if not utts:
            continue
        jobs = [(str(u.path), str(folder / split / u.speaker / f"{u.id}.flac"), rate) for u in utts]
        durations = _convert_all(jobs, workers, progress, f"{corpus.name} {rate} Hz {split}")
        lines = [json.dumps({"id": u.id, "speaker": u.speaker, "sex": sexes.get(u.speaker), "subset": u.subset,
                             "text": u.text, "duration_s": round(d, 3), "source": str(u.path)}, sort_keys=True)
                 for u, d in zip(utts, durations)]
        atomic_write_bytes(folder / split / "manifest.jsonl", ("\n".join(lines) + "\n").encode())
        if split == "test":
            atomic_write_bytes(folder / split / HELD_OUT, b"reported only: never train or validate on this folder\n")
        speakers = {u.speaker for u in utts}
        summary[split] = {"utterances": len(utts), "speakers": len(speakers), "hours": round(sum(durations) / 3600, 3),
                          "speaker_ids": sorted(speakers)}
    return summary


def _write_test_list(splits: Dict[str, List[Utterance]], rate: int, folder: Path, sexes: Dict[str, str],
                     workers: int, progress: bool, log: Callable[[str], None]) -> Optional[dict]:
    """The committed LibriSpeech test-clean list as a flat WAV folder (``None`` without test-clean)."""
    by_id = {u.id: u for u in splits["test"] if u.subset == "test-clean"}
    if not by_id:
        return None
    wanted = read_test_list()
    missing = [i for i in wanted if i not in by_id]
    if len(missing) > TEST_LIST_MAX_MISSING * len(wanted):
        raise CorpusError(f"{len(missing)} of the {len(wanted)} utterances of the standard test list are not in this "
                          f"test-clean copy (first: {missing[0]}): not the official LibriSpeech test-clean?")
    if missing:
        log(f"standard test list: {len(missing)} ids not in this copy, left out: {' '.join(missing)}")
    chosen = [by_id[i] for i in wanted if i in by_id]
    out = folder / TEST_LIST_FOLDER
    durations = _convert_all([(str(u.path), str(out / f"{u.id}.wav"), rate) for u in chosen], workers, progress,
                             f"test list {rate} Hz")
    files = {f"{u.id}.wav": {"speaker": u.speaker, "sex": sexes.get(u.speaker), "text": u.text,
                             "duration_s": round(d, 3)} for u, d in zip(chosen, durations)}
    counts = {sex: len({f["speaker"] for f in files.values() if f["sex"] == sex}) for sex in ("female", "male")}
    atomic_write_bytes(out / HELD_OUT, b"reported only: never train or validate on this folder\n")
    atomic_write_json(out / "manifest.json", {
        "split": "test", "use": "the standard test list of the GPU reports: reported only, never used for a decision",
        "list": TEST_LIST.name, "missing_from_copy": missing, "count": len(files),
        "speakers": len({f["speaker"] for f in files.values()}), "speakers_by_sex": counts,
        "total_s": round(sum(durations), 2), "licence": CORPORA["librispeech"].licence, "files": files})
    return {"utterances": len(files), "missing_from_copy": len(missing), "speakers_by_sex": counts}


def fetch(corpus: Corpus, subsets: Sequence[str], cache: Path, rates: Sequence[int], progress: bool,
          log: Callable[[str], None]) -> Tuple[List[Path], Dict[str, dict]]:
    """Download (resuming) and extract the archives of ``subsets`` into ``cache``.

    The sizes are said and the free disk checked before anything is fetched.

    Returns:
        ``(one extracted folder per archive, {subset: archive record for provenance})``.
    """
    todo, remaining, unpack = [], 0, 0
    for subset in subsets:
        archive = corpus.subsets[subset]
        path = cache / archive.filename
        size = archive.size
        if not (cache / f"{subset}.extracted").is_dir():
            if not path.is_file():
                size = remote_size(archive.url) or archive.size
                part = path.with_name(path.name + ".part")
                remaining += max(0, size - (part.stat().st_size if part.is_file() else 0))
            unpack += size  # audio archives barely compress: extracted ~ archive size
        todo.append((subset, archive, path))
    output = prepared_bytes(corpus, subsets, rates)
    needed = remaining + unpack + output
    log(f"{corpus.name}: {len(todo)} archive(s) of {corpus.title}; {human(remaining)} to download, "
        f"{human(unpack)} to extract, about {human(output)} of prepared audio; needs {human(needed)} "
        f"(archives kept in {cache})")
    check_disk(cache, needed, f"{corpus.name} ({', '.join(subsets)})")
    roots, records = [], {}
    for subset, archive, path in todo:
        target = cache / f"{subset}.extracted"
        if not target.is_dir():
            log(f"downloading {archive.url}")
            digest = download(archive.url, path, archive.sha256, progress)
            log(f"extracting {path.name}")
            extract(path, target)
        else:
            digest = archive.sha256 or _recorded_digest(cache, subset)
        if not archive.sha256:
            (cache / f"{subset}.sha256").write_text(f"{digest}  {archive.filename}\n")
        records[subset] = {"url": archive.url, "file": archive.filename, "sha256": digest,
                           "checksum_basis": "published (verified)" if archive.sha256 else
                           "recorded after download (no published checksum)"}
        roots.append(target)
    return roots, records


def unpack_local(corpus: Corpus, local: Dict[str, Path], cache: Path, rates: Sequence[int],
                 log: Callable[[str], None]) -> Tuple[List[Path], Dict[str, dict]]:
    """Verify and extract official archives found in ``--source`` (the copy a cluster keeps) into ``cache``.

    Returns:
        ``(one extracted folder per archive, {subset: archive record for provenance})``.

    Raises:
        CorpusError: a checksum mismatch (the archive is left alone: it is the user's), no disk.
    """
    from .download import sha256_file

    todo = {s: p for s, p in local.items() if not (cache / f"{s}.extracted").is_dir()}
    needed = sum(p.stat().st_size for p in todo.values()) + prepared_bytes(corpus, tuple(local), rates)
    log(f"{corpus.name}: {len(local)} archive(s) in {next(iter(local.values())).parent}; "
        f"{human(needed - prepared_bytes(corpus, tuple(local), rates))} to extract into {cache}, "
        f"about {human(prepared_bytes(corpus, tuple(local), rates))} of prepared audio")
    check_disk(cache, needed, f"{corpus.name} ({', '.join(local)})")
    roots, records = [], {}
    for subset, path in local.items():
        archive, target = corpus.subsets[subset], cache / f"{subset}.extracted"
        digest = None
        if subset in todo:
            log(f"verifying and extracting {path}")
            digest = sha256_file(path)
            if archive.sha256 and digest != archive.sha256:
                raise CorpusError(f"checksum mismatch for {path}: expected sha256 {archive.sha256}, got {digest}; "
                                  "not the official archive, or a damaged copy")
            extract(path, target)
        records[subset] = {"url": archive.url, "file": str(path), "sha256": digest or archive.sha256,
                           "checksum_basis": "published (verified)" if archive.sha256 else
                           "recorded (no published checksum)"}
        roots.append(target)
    return roots, records


def _recorded_digest(cache: Path, subset: str) -> Optional[str]:
    path = cache / f"{subset}.sha256"
    return path.read_text().split()[0] if path.is_file() else None


def _git_commit() -> Optional[str]:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_corpus(name: str, source: Optional[PathLike] = None, download_: bool = False,
                   subsets: Optional[Sequence[str]] = None, sample_rates: Sequence[int] = DEFAULT_RATES,
                   output: PathLike = DEFAULT_OUTPUT, cache: Optional[PathLike] = None, workers: int = 1,
                   progress: bool = True, force: bool = False,
                   log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Dict[int, Path]:
    """Prepare ``name`` from a local copy (``source``) or its official location (``download_``).

    Args:
        name: A key of :data:`~.catalog.CORPORA`.
        source: Folder holding the extracted corpus in its official layout, or its official archives
            (``test-clean.tar.gz``, ``VCTK-Corpus-0.92.zip``, ...: verified, then extracted into ``cache``).
        download_: Fetch the archives (resumable, checksummed) into ``cache`` instead.
        subsets: Subsets to prepare (default: the corpus's defaults).
        sample_rates: Output rates (each at most the corpus's own).
        output: Root of the prepared corpora.
        cache: Where archives go and are extracted (default ``<output>/.downloads/<corpus>``).
        workers: Parallel conversion processes.
        progress: Show progress bars.
        force: Prepare again even when the output exists for the same subsets.
        log: Where progress lines go.

    Returns:
        ``{rate: folder}``.

    Raises:
        CorpusError: anything the user can fix, as one line.
    """
    corpus = get_corpus(name)
    subsets = check_subsets(corpus, subsets)
    rates = check_rates(corpus, sample_rates)
    if (source is None) == (not download_):
        raise CorpusError("give either --source PATH (an extracted copy) or --download (from "
                          f"{corpus.homepage}), not both or neither")
    root = Path(output) / corpus.name
    folders = {rate: root / str(rate) for rate in rates}
    done = {rate: f for rate, f in folders.items() if set(subsets) <= set(_prepared_subsets(f))}
    if len(done) == len(folders) and not force:
        log(f"{corpus.name}: already prepared in {root} ({', '.join(map(str, rates))} Hz); --force to redo")
        return folders
    # A rate folder is replaced as a whole: keep the subsets prepared before (e.g. the training subsets
    # when only test-clean is asked for), so that asking for less never deletes what is there.
    before = {s for f in folders.values() for s in _prepared_subsets(f)}
    if before - set(subsets) and not force:
        subsets = tuple(s for s in corpus.subsets if s in before | set(subsets))
        log(f"{corpus.name}: keeping the subsets prepared before; preparing {', '.join(subsets)}")
    params = {"schema": SCHEMA, "corpus": corpus.name, "subsets": list(subsets)}
    done = {rate: f for rate, f in folders.items() if _prepared_subsets(f) == list(subsets)}
    cache_dir = Path(cache) if cache else Path(output) / ".downloads" / corpus.name
    if download_:
        roots, archives = fetch(corpus, subsets, cache_dir, rates, progress, log)
    else:
        src = Path(source)
        if not src.is_dir():
            raise CorpusError(f"--source {src} is not a folder")
        local = {s: src / corpus.subsets[s].filename for s in subsets}
        if all(p.is_file() for p in local.values()):  # the official archives, not yet extracted
            roots, archives = unpack_local(corpus, local, cache_dir, rates, log)
        else:
            roots, archives = [src], {}
    utterances = list_utterances(corpus, roots, subsets)
    if not download_ and not archives:  # an extracted copy: its own files bound the output
        check_disk(root, copy_prepared_bytes(corpus, utterances, rates),
                   f"{corpus.name} at {', '.join(map(str, rates))} Hz")
    splits = assign_splits(corpus, utterances)
    sexes = _speaker_sexes(roots)
    summary: Dict[str, dict] = {}
    for rate, folder in folders.items():
        if rate in done and not force:
            continue
        tmp = folder.with_name(f"{rate}.tmp")
        counts = _write_rate(corpus, splits, rate, tmp, sexes, workers, progress)
        if corpus.name == "librispeech":
            test_list = _write_test_list(splits, rate, tmp, sexes, workers, progress, log)
            if test_list:
                counts[TEST_LIST_FOLDER] = test_list
        _prune(tmp, splits)
        atomic_write_json(tmp / "manifest.json", {**params, "sample_rate": rate, "splits": counts})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        summary[str(rate)] = {s: {k: v for k, v in c.items() if k != "speaker_ids"} for s, c in counts.items()}
        log(f"{corpus.name} {rate} Hz: " + ", ".join(f"{s} {c['utterances']} files" for s, c in counts.items())
            + f" in {folder}")
    _write_provenance(root, corpus, subsets, rates, archives, source, splits, summary)
    return folders


def _prune(folder: Path, splits: Dict[str, List[Utterance]]) -> None:
    """Delete split audio that this preparation did not make: what an interrupted run with other
    subsets left in ``<rate>.tmp`` must not reach training (the test list's folder has its own names)."""
    wanted = {folder / split / u.speaker / f"{u.id}.flac" for split, utts in splits.items() for u in utts}
    for split in SPLITS:
        for path in sorted((folder / split).rglob("*.flac")) if (folder / split).is_dir() else ():
            if path not in wanted:
                path.unlink()
                if not any(path.parent.iterdir()):
                    path.parent.rmdir()


def _prepared_subsets(folder: Path) -> list:
    """The subsets a finished rate folder holds (empty when there is none, or it is of another schema)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        return []
    return list(manifest.get("subsets") or [])


def _write_provenance(root: Path, corpus: Corpus, subsets: Sequence[str], rates: Sequence[int], archives: dict,
                      source: Optional[PathLike], splits: Dict[str, List[Utterance]], summary: dict) -> None:
    path = root / "provenance.json"
    try:
        old = json.loads(path.read_text())
        prepared = old.get("prepared", {}) if isinstance(old, dict) else {}
    except (OSError, ValueError):
        prepared = {}
    prepared.update(summary)
    atomic_write_json(path, {
        "corpus": corpus.name, "title": corpus.title, "homepage": corpus.homepage, "licence": corpus.licence,
        "citation": corpus.citation, "native_sample_rate": corpus.native_rate, "subsets": list(subsets),
        "source": str(source) if source is not None else "downloaded", "archives": archives,
        "splits": {"rule": "by official subset" if corpus.subset_split else
                   "by the speaker lists in dac_diveq/data/corpora/catalog.py (others: train)",
                   "speakers": {s: sorted({u.speaker for u in utts}) for s, utts in splits.items()}},
        "prepared": prepared, "processing": "mono, resampled with torchaudio (windowed sinc), 16-bit, levels kept",
        "prepared_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "code_commit": _git_commit()})
