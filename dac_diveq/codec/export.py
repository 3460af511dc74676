"""Export a trained :class:`DiVeQDAC` as a stock ``dac.model.DAC`` checkpoint."""
from __future__ import annotations

import os
from pathlib import Path

from dac.model.dac import DAC

from ..training.checkpoint import atomic_path
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
    state = {k: v for k, v in model.state_dict().items() if ".maintenance." not in k}
    stock.load_state_dict(state, strict=True)
    return stock.to(next(model.parameters()).device).eval()


def export_to_dac(model: DiVeQDAC, path: str | os.PathLike) -> Path:
    """Write ``model`` as a stock DAC weights file that ``dac.model.DAC.load`` and
    ``python -m dac decode --weights_path`` read. The file appears atomically."""
    path = Path(path)
    stock = to_stock_dac(model).cpu()
    with atomic_path(path) as tmp:
        stock.save(str(tmp), package=False)
    return path
