"""The error type of the data-preparation package."""
from __future__ import annotations

from ..errors import UserError


class DataPrepError(UserError, RuntimeError):
    """Raised when speech data cannot be prepared (missing engine, no network, bad arguments).

    The message is a complete, one-line explanation meant to be shown to a user as is.
    """
