"""What every training script's ``main`` does around its ``train(args)``: the checked configuration,
one-line errors, and what an interrupt saved."""
from __future__ import annotations

import sys
from typing import Any, Callable

from . import checkpoint, config
from .distributed import end_rank
from .loop import TrainingInterrupted

#: Errors every training script reports as one line (scripts add their data/weights errors).
COMMON_ERRORS: tuple[type[BaseException], ...] = (checkpoint.CheckpointError, ValueError, FileNotFoundError)


def run_training(train: Callable[[dict], Any], errors: tuple[type[BaseException], ...] = ()) -> int:
    """Parse and check the configuration, call ``train(args)`` in its argbind scope, and turn
    failures into one line and an exit status.

    Args:
        train: the script's bound ``train`` function.
        errors: exception types (besides :data:`COMMON_ERRORS`) that are the user's, not bugs.

    Returns:
        0; 2 for a configuration or user error; 130 after an interrupt. A rank of a distributed
        run leaves its process group and ends its process here (:func:`distributed.end_rank`).
    """
    return end_rank(_run(train, errors))


def _run(train: Callable[[dict], Any], errors: tuple[type[BaseException], ...]) -> int:
    import argbind

    try:
        args = config.parse_args()
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with argbind.scope(args):
        try:
            train(args)
        except (*COMMON_ERRORS, *errors) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except TrainingInterrupted as exc:
            print(f"interrupted ({exc.signal_name}) after step {exc.step}: saved {exc.path}; "
                  "continue with --resume true", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print("interrupted without saving (second Ctrl-C); the last saved checkpoint, if any, is in "
                  "latest/: continue with --resume true", file=sys.stderr)
            return 130
    return 0
