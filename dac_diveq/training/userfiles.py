"""A user's paths: the one file-kind check every reader of a path a user gave goes through.

Opening a named pipe blocks until something writes to it (forever, for a stray FIFO in a data
folder or one passed as ``--resume``'s ``trainer.pth``), and a device or socket is no file to
read: each is refused in one line before it is opened. A path may hold any character, a newline
too: :func:`dac_diveq.errors.printable` (used by every ``error:`` line) keeps the error one line.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import UserError


class PathKindError(UserError, ValueError):
    """A path that is not the kind of thing it should be (a FIFO or a folder where a file belongs).

    Attributes:
        path: the path.
        reason: the message without the path, e.g. ``not a regular file (a named pipe)``.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def file_kind(path: str | os.PathLike) -> str:
    """What ``path`` is: ``"file"`` for a regular file (or a link to one), else in words (``"a folder"``,
    ``"a named pipe"``, ``"a socket"``, ``"a device"``, ``"a broken link"``, ``"missing"``)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return "a broken link" if os.path.islink(path) else "missing"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


class MissingPathError(UserError, FileNotFoundError):
    """A path a user gave (or a run's file) that does not exist (one line naming it)."""


def check_file(path: str | os.PathLike) -> Path:
    """``path``, checked to be a regular file (or a link to one) before anything opens it.

    Raises:
        MissingPathError: nothing there (one line naming it).
        PathKindError: a folder, named pipe, socket, device or broken link (one line).
    """
    kind = file_kind(path)
    if kind == "missing":
        raise MissingPathError(f"{path}: no such file or directory")
    if kind == "a folder":
        raise PathKindError(path, "is a folder, not a file")
    if kind != "file":
        raise PathKindError(path, f"not a regular file ({kind})")
    return Path(path)
