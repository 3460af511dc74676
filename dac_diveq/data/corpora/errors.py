"""The user error of corpus preparation."""
from __future__ import annotations

from ..errors import DataPrepError


class CorpusError(DataPrepError):
    """A corpus cannot be prepared as asked (unknown name, wrong layout, no disk, failed download).

    The message is one complete line for the user; scripts print it without a traceback.
    """
