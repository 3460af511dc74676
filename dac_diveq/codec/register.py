"""Swap the quantizer of an existing DAC model for ours, keeping its weights."""
from __future__ import annotations

import torch
from dac.model.dac import DAC

from ..errors import WeightsError
from .dac_layers import ResidualVectorQuantize
from .model import DiVeQDAC, dac_architecture


def _quantizer_config(rvq: torch.nn.Module) -> dict:
    return dict(
        input_dim=rvq.quantizers[0].in_proj.in_channels,
        n_codebooks=rvq.n_codebooks,
        codebook_size=rvq.codebook_size,
        codebook_dim=list(rvq.codebook_dim),
        quantizer_dropout=float(rvq.quantizer_dropout),
    )


def register(model: DAC, method: str = "diveq", residual_mode: str = "stagewise", lookup: str = "cosine",
             **options) -> DAC:
    """Replace ``model.quantizer`` in place by a :class:`ResidualVectorQuantize` with ``method``.

    Codebooks and projections are kept (a pretrained 44/24/16 kHz DAC included) and marked as
    initialised, so SF-DiVeQ does not re-initialise them from latents. With ``lookup="cosine"``
    (DAC's rule, the default) the registered model produces the same codes as before.

    Args:
        model: a ``dac.model.DAC`` (or subclass).
        method, residual_mode, lookup, **options: the quantizer's configuration.

    Returns:
        ``model`` itself.
    """
    old = model.quantizer
    param = next(old.parameters())
    new = ResidualVectorQuantize(**_quantizer_config(old), method=method, residual_mode=residual_mode,
                                 lookup=lookup, **options)
    new.load_state_dict(old.state_dict(), strict=False)
    for vq in new.quantizers:
        vq.codebook.maintenance.mark_initialized()
    model.quantizer = new.to(device=param.device, dtype=param.dtype).train(old.training)
    return model


def from_dac(model: DAC, method: str = "diveq", residual_mode: str = "stagewise", **options) -> DiVeQDAC:
    """A :class:`DiVeQDAC` with ``model``'s architecture and weights (e.g. DAC's released 16 kHz model).

    Every argument reaches the new model explicitly: the architecture from ``model``, the quantizer
    configuration from the call. To keep a configured model's quantizer, pass
    ``**configured.quantizer_config()``; options not given take :class:`DiVeQDAC`'s defaults.

    Args:
        model: a ``dac.model.DAC``.
        method, residual_mode: the quantizer's estimator and residual mode.
        **options: quantizer options (:data:`~dac_diveq.quantize.options.COMMON_OPTIONS`); an unknown
            name is a ``TypeError``.
    """
    ours = DiVeQDAC(**dac_architecture(model), method=method, residual_mode=residual_mode, **options)
    missing, unexpected = ours.load_state_dict(model.state_dict(), strict=False)
    if unexpected or [k for k in missing if ".maintenance." not in k]:
        raise WeightsError(f"weights do not match the architecture: missing {missing}, unexpected {unexpected}")
    for vq in ours.quantizer.quantizers:
        vq.codebook.maintenance.mark_initialized()
    return ours
