"""Checkpoints in DAC's folder layout, written atomically, and the package's one atomic-write helper.

``save_path/<tag>/<model>/weights.pth`` (+ ``optimizer.pth``, ``scheduler.pth``) for every trained
model (``diveqdac`` and ``discriminator`` for the codec; ``vqvae``/``vqgan``/``codegpt`` and
``discriminator`` for images), plus ``save_path/<tag>/trainer.pth`` (step, best score, history,
every rank's RNG state, the configuration text). Each tag is a symlink to a complete folder under
``save_path/.checkpoints``, replaced with one ``os.replace``: a process killed mid-save leaves the
previous ``latest`` intact.
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

STORE = ".checkpoints"
WEIGHTS = "weights.pth"
#: Constructor arguments a checkpoint must agree on with the configuration that resumes or loads it,
#: in the order they are checked (the first disagreement is the one reported). A key is checked only
#: when the checkpoint recorded it and the model has it, so one list serves every model.
IDENTITY_KEYS = ("method", "codebook_size", "codebook_dim", "embed_dim", "n_codebooks", "structure",
                 "n_quantizers", "residual_mode", "lookup", "sample_rate", "vocab_size", "block_size")
#: Where a run folder keeps a model's weights, most preferred first (see :func:`resolve_weights`).
TAGS = ("best", "latest")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match the configuration."""


# ----------------------------------------------------------------------------- atomic files


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: Optional[int] = None) -> Iterator[Path]:
    """A hidden temporary path beside ``path``, renamed onto ``path`` when the block succeeds.

    A file written through it exists complete under its final name or not at all, so an
    interrupted writer never leaves a half-written file that a reader (or a resumed run) takes
    for a finished one.

    Args:
        path: the final file; its folder is created.
        mode: permission bits of the final file (``mkstemp`` creates 0600 files).

    Yields:
        The temporary path to write to; removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    try:
        yield Path(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ----------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """Every generator a training step may draw from (torch CPU/CUDA, numpy, Python)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- run checkpoints


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
        model.save(str(tmp / name / WEIGHTS), package=False)
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
    return load_file(path)


def load_file(path: str | os.PathLike) -> Any:
    """``torch.load`` of a checkpoint file on the CPU; an unreadable file is a :class:`CheckpointError`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a corrupt file is a user-facing error, not a traceback
        raise CheckpointError(f"cannot read checkpoint file {path}: {exc}") from None


def load_weights(model: torch.nn.Module, path: str | os.PathLike,
                 identity_keys: Sequence[str] = IDENTITY_KEYS) -> dict[str, Any]:
    """Load an audiotools ``BaseModel`` weights file into ``model``.

    The identity keys are compared before any tensor is loaded, so a checkpoint of another
    configuration is named by what differs (``method``, ``codebook_size``, ...) rather than by
    the first tensor whose shape happens to differ.

    Args:
        model: the (unwrapped) model to fill.
        path: a ``weights.pth`` written by ``BaseModel.save(..., package=False)``.
        identity_keys: constructor arguments that must agree, checked in this order.

    Returns:
        The file's metadata (``{"kwargs": ...}``).

    Raises:
        CheckpointError: unreadable file, an identity key that differs, or weights that do not
            fit the model (one line).
    """
    blob = load_file(path)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise CheckpointError(f"{path} is not a model weights file")
    metadata = blob.get("metadata") or {}
    saved = metadata.get("kwargs", {})
    for key in identity_keys:
        if key in saved and hasattr(model, key) and saved[key] != getattr(model, key):
            raise CheckpointError(
                f"checkpoint {path} has {key}={saved[key]!r} but the configuration says {getattr(model, key)!r}")
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {path} was written by another configuration ({first[0] if first else exc})") from None
    return metadata


@dataclass(frozen=True)
class ResolvedWeights:
    """Where :func:`resolve_weights` found a model's weights.

    Attributes:
        path: the ``weights.pth`` file.
        model: the model folder name it sits in (``diveqdac``, ``vqvae``, ...), or None for a
            bare file outside a run checkpoint.
        run: the run folder (``save_path``) it belongs to; for a bare file, its folder.
    """

    path: Path
    model: Optional[str]
    run: Path


def resolve_weights(path: str | os.PathLike, models: Sequence[str], tags: Sequence[str] = TAGS,
                    bare: bool = True) -> ResolvedWeights:
    """Find a model's weights from what a user passes: a weights file or a folder.

    A folder is searched for ``<tag>/<model>/weights.pth`` (tags in order, then models in
    order), then ``<model>/weights.pth`` (a tag folder itself) and, with ``bare``,
    ``weights.pth``.

    Args:
        path: a weights file, a run folder or a tag folder.
        models: accepted model folder names, preferred first.
        tags: checkpoint tags to look in, preferred first.
        bare: accept a file (or a folder's ``weights.pth``) outside any ``<model>`` folder.

    Returns:
        The :class:`ResolvedWeights`.

    Raises:
        FileNotFoundError: nothing fitting at ``path`` (a one-line message, without the path).
    """
    path = Path(path)
    if path.is_file():
        if path.parent.name in models:
            return _resolved(path)
        if not bare:
            raise FileNotFoundError(f"expected a weights file inside a {'/'.join(models)} folder of a run checkpoint")
        return ResolvedWeights(path, None, path.parent)
    if not path.exists():
        raise FileNotFoundError("no such file or directory")
    candidates = [Path(tag) / name / WEIGHTS for tag in tags for name in models]
    candidates += [Path(name) / WEIGHTS for name in models]
    if bare:
        candidates.append(Path(WEIGHTS))
    for relative in candidates:
        if (path / relative).is_file():
            return _resolved(path / relative) if len(relative.parts) > 1 else ResolvedWeights(path / relative, None, path)
    raise FileNotFoundError(f"no weights file in this folder (looked for {', '.join(map(str, candidates))})")


def _resolved(weights: Path) -> ResolvedWeights:
    """A weights file in DAC's layout, ``<run>/<tag>/<model>/weights.pth``."""
    return ResolvedWeights(weights, weights.parent.name, weights.parents[2])


# ----------------------------------------------------------------------------- internals


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
