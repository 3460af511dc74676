"""Finding and loading trained image models from run folders or weights files."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import WeightsNotFoundError
from ..training import checkpoint

#: Checkpoint folder names of stage-1 models, as written by the image trainers.
STAGE1_FOLDERS = ("vqvae", "vqgan")
PRIOR_FOLDER = "codegpt"


def find_weights(path: str | Path, names: tuple[str, ...] = STAGE1_FOLDERS) -> checkpoint.ResolvedWeights:
    """:func:`~dac_diveq.training.checkpoint.resolve_weights` for image runs: a run folder
    (``<run>/best/<name>/weights.pth``, else ``latest``) or a weights file inside a ``<name>`` folder.

    Raises:
        WeightsNotFoundError: nothing loadable at ``path`` (one line naming it; a FileNotFoundError).
    """
    try:
        return checkpoint.resolve_weights(path, names, bare=False)
    except FileNotFoundError as exc:
        raise WeightsNotFoundError(f"{path}: {exc}") from None


def load_stage1(path: str | Path) -> torch.nn.Module:
    """Load a trained VQ-VAE or VQGAN (eval mode) from a run folder or weights file."""
    from . import VQGAN, VQVAE

    found = find_weights(path)
    cls = VQVAE if found.model == "vqvae" else VQGAN
    # Tensors only (never audiotools' torch.package path); an unreadable, hostile or foreign file
    # is a one-line CheckpointError naming it.
    return checkpoint.load_model(cls, found.path, strict=True).eval()


def load_prior(path: str | Path) -> torch.nn.Module:
    """Load a trained :class:`~dac_diveq.image.CodeGPT` (eval mode) from a run folder or weights file.

    Raises:
        FileNotFoundError: no ``codegpt`` weights at ``path``.
        checkpoint.CheckpointError: an unreadable file or weights that do not fit their metadata.
    """
    from . import CodeGPT

    found = find_weights(path, (PRIOR_FOLDER,))
    return checkpoint.load_model(CodeGPT, found.path, strict=True).eval()
