"""What every evaluation writes: ``per_file.csv`` + ``summary.json`` (atomically), with the
provenance the reports quote (commit, configuration hash, training seed).

Every ``summary.json`` starts with the keys of :data:`SUMMARY_KEYS` (:func:`new_summary`), whatever
its domain; a domain adds its own (speech: ``by_bitrate``, ``visqol_mapping``, ...; image:
``by_setting``, ``bpp``, ...). ``domain`` tells :mod:`dac_diveq.report.runs` how to read the run.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..training import checkpoint
from ..training.checkpoint import atomic_path
from ..training.userfiles import file_kind

#: Keys of every summary.json, in this order; ``files``, ``failed``, ``codebook`` and ``wall_time_s``
#: are filled in as the evaluation runs.
SUMMARY_KEYS = ("domain", "weights", "method", "seed", "step", "commit", "config_hash", "training_config", "training_hash",
                "device", "processor", "torch", "numpy", "threads", "training", "files", "failed", "codebook", "wall_time_s")


class EvalError(UserError):
    """A one-line, user-facing reason to stop an evaluation (the scripts exit with status 2)."""


def new_summary(domain: str, weights: Path, method: str, model_kwargs: dict, device: str, **fields) -> dict:
    """A summary with the shared keys (:data:`SUMMARY_KEYS`) and the provenance filled in.

    Args:
        domain: ``"speech"`` or ``"image"`` (see :data:`dac_diveq.report.runs.DOMAINS`).
        weights: the evaluated weights file (its run's ``trainer.pth`` gives the seed).
        method: the quantization method (or reference codec).
        model_kwargs: the model's constructor arguments, hashed into ``config_hash``.
        device: where the model ran.
        **fields: the domain's own keys, after the shared ones.
    """
    state = trainer_state(Path(weights))
    here = checkpoint.environment()
    trained = training_config(state)
    summary = {"domain": domain, "weights": str(weights), "method": str(method), "seed": seed_of(state),
               "step": step_of(state),
               "commit": git_commit(), "config_hash": config_hash(model_kwargs),
               "training_config": trained, "training_hash": config_hash(trained) if trained is not None else None,
               "device": str(device), "processor": here["processor"],
               "torch": here["torch"], "numpy": here["numpy"], "threads": here["threads"],
               "training": state.get("environment") if state else None,
               "files": [], "failed": [], "codebook": None, "wall_time_s": None}
    summary.update(fields)
    return summary


def step_of(state: Optional[dict]) -> Optional[int]:
    """The training step of the checkpoint (its ``trainer.pth``), or None when unknown."""
    step = state.get("step") if state else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def trainer_state(weights: Path) -> Optional[dict]:
    """The ``trainer.pth`` of the run checkpoint ``weights`` belongs to, or None (no such file, or
    unreadable).

    Raises:
        EvalError: the file would run code when loaded, or is a named pipe or other non-file
            (one line naming it).
    """
    trainer = weights.parent.parent / "trainer.pth"
    if file_kind(trainer) == "missing":
        return None
    try:
        state = checkpoint.load_file(trainer)
    except (checkpoint.UntrustedFileError, checkpoint.NotRegularFileError) as exc:
        raise EvalError(str(exc)) from None
    except checkpoint.CheckpointError:  # unreadable: what it would tell is just not known
        return None
    return state if isinstance(state, dict) else None


def read_seed(weights: Path) -> Optional[int]:
    """The ``seed`` recorded in the run's ``trainer.pth`` config text, or None.

    Raises:
        EvalError: the ``trainer.pth`` beside the weights would run code when loaded (one line).
    """
    return seed_of(trainer_state(weights))


def seed_of(state: Optional[dict]) -> Optional[int]:
    """The ``seed`` of a trainer state's configuration text, or None."""
    # The run's own ``seed`` first: a data option such as ``train/build_image_dataset.seed`` (the
    # split's, the same for every run) may come before it.
    config = run_config(state)
    if config is None and state and isinstance(state.get("config"), str):
        found = dict(re.findall(r"['\"]([\w./]*seed)['\"]\s*:\s*(-?\d+)", state["config"]))
        value = found.get("seed", next(iter(found.values()), None))
        return None if value is None else int(value)
    if isinstance(config, dict):
        if isinstance(config.get("seed"), int) and not isinstance(config["seed"], bool):
            return config["seed"]
        for key, value in config.items():
            if str(key).endswith(".seed") and isinstance(value, int):
                return value
    return None


#: Configuration keys that name or place one run, or only change what it logs: they may differ
#: between runs that are pooled (seeds of one variant); every other key must be the same.
RUN_KEYS = frozenset({"save_path", "seed", "resume", "args.load", "args.save", "args.debug", "num_workers",
                      "save_every", "sample_freq", "log_freq", "stop_at"})


def run_config(state: Optional[dict]) -> Optional[dict]:
    """The whole configuration a run resolved and recorded in its ``trainer.pth`` (every key, the
    run's own included), or None when unknown."""
    config = state.get("config") if state else None
    if isinstance(config, str):
        try:
            config = ast.literal_eval(config)
        except Exception:
            return None
    return config if isinstance(config, dict) else None


def training_config(state: Optional[dict]) -> Optional[dict]:
    """What a run trained with: its resolved configuration (losses and weights, level, learning-rate
    schedule, data, budget, model), without :data:`RUN_KEYS`; None when unknown."""
    config = run_config(state)
    if config is None:
        return None
    return {str(k): v for k, v in sorted(config.items(), key=lambda kv: str(kv[0]))
            if str(k).split("/")[-1] not in RUN_KEYS}


def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def config_hash(kwargs: dict) -> str:
    text = json.dumps(kwargs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, newline="")


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_outputs(folder: Path, rows: list[dict], columns: list[str], summary: dict) -> None:
    """Write ``folder/per_file.csv`` (``columns``) and ``folder/summary.json``, each atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    write_atomic(folder / "per_file.csv", buf.getvalue())
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2, default=_json_value) + "\n")
