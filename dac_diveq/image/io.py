"""Finding and loading trained image models from run folders or weights files."""
from __future__ import annotations

from pathlib import Path

import torch

from ..codec import checkpoint

#: Checkpoint folder name -> model class name, as written by the image trainers.
STAGE1_FOLDERS = ("vqvae", "vqgan")


def resolve_weights(path: str | Path, names: tuple[str, ...] = STAGE1_FOLDERS) -> tuple[Path, str]:
    """A run folder (``<run>/best/<name>/weights.pth``, else ``latest``) or a weights file ->
    ``(weights file, model folder name)``.

    Raises:
        FileNotFoundError: nothing loadable at ``path`` (one-line message).
    """
    path = Path(path)
    if path.is_file():
        name = path.parent.name
        if name not in names:
            raise FileNotFoundError(f"{path}: expected a weights file inside a {'/'.join(names)} folder "
                                    "of a run checkpoint")
        return path, name
    for tag in ("best", "latest"):
        for name in names:
            candidate = path / tag / name / "weights.pth"
            if candidate.is_file():
                return candidate, name
    raise FileNotFoundError(f"{path}: no {'/'.join(names)} checkpoint (looked for best/ and latest/)")


def load_stage1(path: str | Path) -> torch.nn.Module:
    """Load a trained VQ-VAE or VQGAN (eval mode) from a run folder or weights file."""
    from . import VQGAN, VQVAE

    weights, name = resolve_weights(path)
    cls = VQVAE if name == "vqvae" else VQGAN
    try:
        model = cls.load(str(weights))
    except Exception as exc:  # a truncated/foreign file is a user error, not a traceback
        raise checkpoint.CheckpointError(
            f"{weights}: not a readable {cls.__name__} weights file (truncated or corrupt? {exc})") from None
    return model.eval()
