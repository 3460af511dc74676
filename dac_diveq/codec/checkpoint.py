"""Training checkpoints in DAC's folder layout, written atomically.

``save_path/<tag>/<model>/weights.pth`` (+ ``optimizer.pth``, ``scheduler.pth``) for the generator
(``diveqdac``) and the discriminator, plus ``save_path/<tag>/trainer.pth`` (step, best score,
RNG states). Each tag is a symlink to a complete folder under ``save_path/.checkpoints``,
replaced with one ``os.replace``: a process killed mid-save leaves the previous ``latest`` intact.
"""
from __future__ import annotations

import os
import random
import shutil
import uuid
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

STORE = ".checkpoints"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match the configuration."""


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(save_path: str | os.PathLike, tags: list[str], models: dict[str, Any], extra: dict[str, Any]) -> Path:
    """Write one checkpoint and point every tag in ``tags`` at it.

    Args:
        save_path: run folder.
        tags: e.g. ``["latest"]``, ``["latest", "best"]`` or ``["latest", "10000"]``.
        models: ``{folder_name: (model, {"optimizer.pth": obj, ...})}``; models are audiotools
            ``BaseModel``s saved with ``save(..., package=False)``.
        extra: trainer state saved as ``trainer.pth``.

    Returns:
        the folder written.
    """
    root = Path(save_path)
    store = root / STORE
    store.mkdir(parents=True, exist_ok=True)
    folder = store / f"step{extra.get('step', 0):08d}-{uuid.uuid4().hex[:8]}"
    tmp = folder.with_name(folder.name + ".partial")
    tmp.mkdir()
    for name, (model, files) in models.items():
        (tmp / name).mkdir()
        model.save(str(tmp / name / "weights.pth"), package=False)
        for filename, obj in files.items():
            torch.save(obj, tmp / name / filename)
    torch.save(extra, tmp / "trainer.pth")
    _fsync_tree(tmp)
    os.replace(tmp, folder)
    for tag in tags:
        link = root / tag
        new_link = root / f".{tag}.{uuid.uuid4().hex[:8]}.link"
        os.symlink(os.path.relpath(folder, root), new_link)
        if link.exists() and not link.is_symlink():
            shutil.rmtree(link)
        os.replace(new_link, link)
    _collect_garbage(root)
    return folder


def load_trainer_state(save_path: str | os.PathLike, tag: str = "latest") -> Optional[dict[str, Any]]:
    """The ``trainer.pth`` of ``save_path/tag``, or None if there is no such checkpoint."""
    path = Path(save_path) / tag / "trainer.pth"
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a corrupt file is a user-facing error, not a traceback
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None


def load_file(path: str | os.PathLike) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint file {path}: {exc}") from None


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _collect_garbage(root: Path) -> None:
    """Remove stored checkpoints no tag points to, and leftovers of interrupted saves."""
    store = root / STORE
    referenced = {os.path.realpath(p) for p in root.iterdir() if p.is_symlink()}
    for entry in store.iterdir():
        if os.path.realpath(entry) not in referenced:
            shutil.rmtree(entry, ignore_errors=True)
    for stale in root.glob(".*.link"):
        stale.unlink(missing_ok=True)
