"""A fused Snake activation: the same function as DAC's, compiled into one loop.

DAC's ``snake(x, alpha) = x + sin(alpha x)^2 / (alpha + 1e-9)`` runs as five element-wise
passes forward and about ten backward; in the CPU quickstart that is a quarter of the training
step. ``torch.compile`` (inductor) fuses it into one pass each way: measured 1.9x faster on the
activation alone (see ``docs/benchmarks.md``). :func:`fuse_snake` swaps the ``forward`` of every
``Snake1d`` of a model in place, keeping the parameters, their names and the state dict, so
checkpoints and optimizers do not notice.
"""
from __future__ import annotations

import types
import warnings
from typing import Callable, Optional

import torch
from torch import nn

_FUSED: Optional[Callable] = None
_FAILED = False


def snake_reference(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """DAC's Snake, written as plain PyTorch (what gets compiled)."""
    shape = x.shape
    x = x.reshape(shape[0], shape[1], -1)
    x = x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)
    return x.reshape(shape)


def fused_snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Snake through the compiled kernel; falls back to eager (once, with a warning) when
    the compiler is unavailable on this machine."""
    global _FUSED, _FAILED
    if _FAILED:
        return snake_reference(x, alpha)
    if _FUSED is None:
        import torch._dynamo

        # One graph per (channels, grad mode, ...) variant of a model's activations: allow
        # enough of them that none falls back to eager.
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        _FUSED = torch.compile(snake_reference, dynamic=True)
    try:
        return _FUSED(x, alpha)
    except Exception as exc:  # no C++ compiler, unsupported platform, ...
        _FAILED = True
        warnings.warn(f"fused Snake unavailable, using DAC's ({type(exc).__name__}: {exc})".splitlines()[0],
                      RuntimeWarning)
        return snake_reference(x, alpha)


def _fused_forward(self, x: torch.Tensor) -> torch.Tensor:
    return fused_snake(x, self.alpha)


def fuse_snake(model: nn.Module) -> int:
    """Make every ``dac.nn.layers.Snake1d`` of ``model`` use :func:`fused_snake`.

    Returns:
        the number of activations switched.
    """
    from dac.nn.layers import Snake1d

    count = 0
    for module in model.modules():
        if isinstance(module, Snake1d):
            module.forward = types.MethodType(_fused_forward, module)
            count += 1
    return count
