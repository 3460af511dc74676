"""Export a trained :class:`DiVeQDAC` as a stock ``dac.model.DAC`` checkpoint.

An export never replaces what it was not asked to: an existing output is refused unless
``overwrite``, and the input weights are never replaced (:class:`OutputError`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from dac.model.dac import DAC

from ..errors import ConfigError
from ..training.checkpoint import atomic_path, write_file
from .model import DiVeQDAC, dac_architecture


def to_stock_dac(model: DiVeQDAC) -> DAC:
    """The same weights in a plain ``dac.model.DAC`` (maintenance state dropped).

    Raises:
        ValueError: if the model does not use DAC's cosine lookup (stock DAC would encode
            different codes).
    """
    if model.lookup != "cosine":
        raise ValueError(f"only models with DAC's lookup rule ('cosine') export to stock DAC; "
                         f"this one uses {model.lookup!r}")
    stock = DAC(**dac_architecture(model))
    stock.load_state_dict(stock_state_dict(model), strict=True)
    return stock.to(next(model.parameters()).device).eval()


def stock_state_dict(model: DiVeQDAC) -> dict:
    """``model``'s weights under stock DAC's names: maintenance state dropped, and SimVQ's codebook
    (a learned map of a frozen basis) baked into the plain table DAC looks up.

    Raises:
        ConfigError: FSQ, whose codes come from per-dimension rounding, not from a table lookup.
    """
    if model.method == "fsq":
        raise ConfigError("FSQ rounds each dimension to its levels; stock DAC's table lookup would encode "
                         "different codes, so an FSQ model does not export to DAC's formats")
    state = {k: v for k, v in model.state_dict().items() if ".maintenance." not in k}
    if model.method == "simvq":
        for i, vq in enumerate(model.quantizer.quantizers):
            prefix = f"quantizer.quantizers.{i}.codebook."
            state[prefix + "weight"] = vq.codebook.codebook.detach().clone()
            del state[prefix + "transform.weight"]
    return state


class OutputError(ConfigError):
    """An output an export must not write: it exists (without ``overwrite``), it is the input
    weights, or it is not a file an export wrote. The message is one line."""


def same_file(path: str | os.PathLike, others: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path`` is (or links to) one of ``others``."""
    for other in others:
        try:
            if os.path.samefile(path, other):
                return True
        except OSError:  # one of them does not exist
            continue
    return False


def check_dac_output(path: str | os.PathLike, overwrite: bool = False, keep: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse a ``--format dac`` output that must not be written.

    Args:
        path: the weights file to write.
        overwrite: an existing file may be replaced.
        keep: files never replaced, even with ``overwrite`` (the input weights).

    Raises:
        OutputError: ``path`` is a folder, one of ``keep``, or exists without ``overwrite``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; --format dac writes one weights file")
    if not (path.exists() or path.is_symlink()):
        return
    if same_file(path, keep):
        raise OutputError(f"{path} is the input weights; write the export to another file")
    if not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")


def export_to_dac(model: DiVeQDAC, path: str | os.PathLike, overwrite: bool = False,
                  keep: Iterable[str | os.PathLike] = ()) -> Path:
    """Write ``model`` as a stock DAC weights file that ``dac.model.DAC.load`` and
    ``python -m dac decode --weights_path`` read. The file appears atomically.

    Args:
        model: the trained model.
        path: the weights file to write.
        overwrite: replace ``path`` if it exists (default: refuse).
        keep: files never replaced (the weights ``model`` was read from).

    Raises:
        OutputError: see :func:`check_dac_output`.
        ValueError: the model cannot be exported to stock DAC (:func:`to_stock_dac`).
    """
    path = Path(path)
    keep = list(keep)
    check_dac_output(path, overwrite, keep)
    stock = to_stock_dac(model).cpu()
    with atomic_path(path) as tmp:
        # Through write_file: a full disk is an OSError naming ENOSPC, not torch's zip-writer message.
        write_file(tmp, lambda handle: stock.save(handle, package=False))
        check_dac_output(path, overwrite, keep)  # nothing appeared there meanwhile
    return path
