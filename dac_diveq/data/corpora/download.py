"""Resumable, checksummed downloads of corpus archives, and their safe extraction.

A download goes to ``<file>.part`` and is renamed only once complete and verified, so an
interrupted one is resumed (HTTP ``Range``) by running the same command again, and a file under its
final name is always whole. A checksum mismatch deletes the ``.part`` file: resuming a corrupt
prefix could never succeed.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

from .errors import CorpusError

CHUNK = 1 << 20
TIMEOUT_S = 60.0


def human(size: float) -> str:
    """A byte count for people (``"1.2 GB"``)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def free_space(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def check_disk(path: Path, needed: int, what: str) -> None:
    """Refuse to start when the file system of ``path`` has less than ``needed`` bytes free.

    Raises:
        CorpusError: not enough space (one line with both sizes).
    """
    free = free_space(path)
    if free < needed:
        raise CorpusError(f"not enough disk space in {path}: {what} needs about {human(needed)}, "
                          f"{human(free)} free")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def remote_size(url: str) -> Optional[int]:
    """The server's ``Content-Length`` for ``url`` (``None`` when it does not say or cannot be asked)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            return int(length) if length else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def download(url: str, dest: Path, sha256: Optional[str] = None, progress: bool = True) -> str:
    """Download ``url`` to ``dest``, resuming a ``dest.part`` left by an interrupted run.

    Args:
        url: What to fetch.
        dest: Final file; kept as is when it already exists and matches ``sha256``.
        sha256: Expected hex digest (``None``: not verified, only computed).
        progress: Show a tqdm progress bar.

    Returns:
        The file's hex SHA-256.

    Raises:
        CorpusError: the server or network failed (the partial file is kept for a resume), or
            the checksum does not match (the partial file is deleted).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file():
        digest = sha256_file(dest)
        if sha256 is None or digest == sha256:
            return digest
        dest.replace(part)  # a stale or corrupt file under the final name: verify it as a download
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code != 416:  # 416: nothing left after offset, i.e. the .part file is complete
            raise CorpusError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
        response = None
    except (urllib.error.URLError, OSError) as exc:
        raise CorpusError(f"cannot reach {url} ({getattr(exc, 'reason', exc)}); check the network "
                          "or use --source with a copy you already have") from None
    if response is not None:
        with response:
            if offset and response.status != 206:
                offset = 0  # the server ignored Range: start again
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length else None
            _receive(response, part, offset, total, url, progress)
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise CorpusError(f"checksum mismatch for {dest.name} from {url}: expected sha256 {sha256}, got {digest}; "
                          "the file was deleted, run the command again to download it afresh")
    os.replace(part, dest)
    return digest


def _receive(response, part: Path, offset: int, total: Optional[int], url: str, progress: bool) -> None:
    """Append the response body to ``part`` from ``offset``, with a progress bar."""
    from tqdm import tqdm

    received = offset
    with open(part, "r+b" if offset else "wb") as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[: -len(".part")],
            disable=not progress, leave=False) as bar:
        f.seek(offset)
        f.truncate()
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                f.write(block)
                received += len(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as exc:
            raise CorpusError(f"download of {url} interrupted after {human(received)} ({type(exc).__name__}); "
                              "run the same command again to resume") from None
    if total is not None and received < total:
        raise CorpusError(f"download of {url} interrupted after {human(received)} of {human(total)}; "
                          "run the same command again to resume")


def extract(archive: Path, into: Path) -> Path:
    """Extract a ``.tar.gz``/``.tar``/``.zip`` archive into ``into`` (once; a rename marks it done).

    Members that would land outside ``into`` (absolute paths, ``..``, links out) are refused.

    Returns:
        ``into``.

    Raises:
        CorpusError: the archive is unreadable or unsafe.
    """
    into = Path(into)
    if into.is_dir():
        return into
    tmp = into.with_name(into.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    if name.startswith("/") or ".." in Path(name).parts:
                        raise CorpusError(f"{archive.name} holds an unsafe path {name!r}: not extracted")
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CorpusError(f"cannot extract {archive} ({type(exc).__name__}: {exc}); delete it and download again") \
            from None
    except CorpusError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, into)
    return into
