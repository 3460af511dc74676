"""The project's user errors: what a user can fix (an option, a data folder, a weights file).

Entry points print a :class:`UserError` as one ``error:`` line and exit non-zero; every other
exception is a bug and keeps its traceback. ``--debug`` (or ``DAC_DIVEQ_DEBUG=1``) shows the
traceback of a user error too.

This module imports nothing of ours, so every layer (the quantizer core included) may raise these.
The concrete types also derive from the built-in type they replaced (``ValueError``,
``FileNotFoundError``, ...), so a caller that catches the built-in one still does.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Optional, Sequence, TextIO

#: The environment variable that shows user errors' tracebacks (any value but "", "0", "false", "no").
DEBUG_VARIABLE = "DAC_DIVEQ_DEBUG"
#: The command-line flag that does the same; entry points remove it before parsing their options.
DEBUG_FLAG = "--debug"
#: The exit status of a user error (argparse's, for a usage error).
USER_ERROR_STATUS = 2


class UserError(Exception):
    """Something the user can fix; the message is one complete line, shown without a traceback."""


class ConfigError(UserError, ValueError):
    """An option or configuration file that cannot be used as written."""


class DataError(UserError, ValueError):
    """Input data (a folder, an audio or image file, a corpus) that is missing or unusable."""


class WeightsError(UserError, ValueError):
    """A weights or checkpoint file that is missing, unreadable or of another model."""


class WeightsNotFoundError(UserError, FileNotFoundError):
    """A weights file that is not where the user (or the default search) said it is."""


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """Whether user errors should show their traceback.

    Args:
        argv: the command line to look for :data:`DEBUG_FLAG` in (None: ``sys.argv``).

    Returns:
        True when the flag is given or :data:`DEBUG_VARIABLE` is set to a true value.
    """
    value = os.environ.get(DEBUG_VARIABLE, "").strip().lower()
    if value not in ("", "0", "false", "no"):
        return True
    return DEBUG_FLAG in (sys.argv if argv is None else argv)


def pop_debug_flag(argv: list[str]) -> bool:
    """Remove every :data:`DEBUG_FLAG` from ``argv`` in place (the scripts' parsers do not know it).

    Args:
        argv: a mutable command line, e.g. ``sys.argv``.

    Returns:
        Whether debugging is requested (the flag was there, or the environment variable is set).
    """
    requested = debug_requested(argv)
    argv[:] = [arg for arg in argv if arg != DEBUG_FLAG]
    return requested


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name, an escape sequence) written as
    escapes (``\\n``, ``\\x1b``), so that a message naming any path stays one line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (whitespace runs folded), or its type's name when it has none."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def error_line(message: object) -> str:
    """``error: <message>`` as one line (control characters escaped)."""
    return f"error: {printable(str(message))}"


def report(exc: UserError, debug: bool, stream: Optional[TextIO] = None) -> int:
    """Print a user error: its traceback first when ``debug``, then the one ``error:`` line.

    Args:
        exc: the error being handled.
        debug: show the traceback too.
        stream: where to print (None: ``sys.stderr``).

    Returns:
        :data:`USER_ERROR_STATUS`, for the entry point to exit with.
    """
    stream = sys.stderr if stream is None else stream
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=stream)
    print(error_line(exc), file=stream)
    return USER_ERROR_STATUS

