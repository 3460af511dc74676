"""What every training script's ``main`` does around its ``train(args)``: the checked configuration,
one-line user errors (:class:`dac_diveq.errors.UserError`; every other exception is a bug and keeps
its traceback), and what an interrupt saved."""
from __future__ import annotations

import sys
from typing import Any, Callable

from .. import errors
from . import config
from .distributed import end_rank
from .loop import TrainingInterrupted


def run_training(train: Callable[[dict], Any]) -> int:
    """Parse and check the configuration, call ``train(args)`` in its argbind scope, and turn
    user errors and interrupts into one line and an exit status.

    ``--debug`` (or ``DAC_DIVEQ_DEBUG=1``) is taken out of the command line before argbind reads
    it, and shows a user error's traceback too.

    Args:
        train: the script's bound ``train`` function.

    Returns:
        0; 2 for a user error (:class:`~dac_diveq.errors.UserError`); 130 after an interrupt. Any
        other exception propagates with its traceback (a bug, not the user's). A rank of a
        distributed run leaves its process group and ends its process here
        (:func:`distributed.end_rank`).
    """
    return end_rank(_run(train, errors.pop_debug_flag(sys.argv)))


def _run(train: Callable[[dict], Any], debug: bool) -> int:
    import argbind

    try:
        args = config.parse_args()
    except errors.UserError as exc:
        return errors.report(exc, debug)
    with argbind.scope(args):
        try:
            train(args)
        except errors.UserError as exc:
            return errors.report(exc, debug)
        except TrainingInterrupted as exc:
            print(f"interrupted ({exc.signal_name}) after step {exc.step}: saved {exc.path}; "
                  "continue with --resume true", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print("interrupted without saving (second Ctrl-C); the last saved checkpoint, if any, is in "
                  "latest/: continue with --resume true", file=sys.stderr)
            return 130
    return 0
