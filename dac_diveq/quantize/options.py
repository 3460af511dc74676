"""The quantizer options that models built on the core expose as their own constructor arguments.

:class:`~.core.Quantizer` declares every option once: its keyword-only arguments, their types and
defaults. A model (the codec's ``DiVeQDAC``, the image ``VQVAE`` and ``VQGAN``) needs a subset of
them as *flat constructor arguments of its own*: argbind binds ``VQVAE.noise_var`` from a yml only
if ``noise_var`` is in ``VQVAE.__init__``'s signature, and audiotools' ``BaseModel.save`` records
the constructor arguments as the checkpoint's ``kwargs`` by reading that signature.

Rather than every model repeating those arguments (and drifting from the core's defaults),
:func:`takes_quantizer_options` writes them into a model's signature from the core's declaration.
The model's ``__init__`` receives them, defaults applied, in its ``**options``; afterwards they are
stored on the model under their own names (where ``BaseModel.save`` reads them back) and
:func:`options_of` returns them, e.g. to rebuild the same quantizer around other weights.
"""
from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Callable, Sequence, TypeVar

from .core import Quantizer

#: Options a model may expose, in the order they appear in its signature.
#: The options every model exposes.
COMMON_OPTIONS = ("lookup", "noise_var", "replace_every", "replace_every_after", "replace_slowdown_at",
                  "replace_stop_before_end", "discard_threshold", "discard_rule", "skip_iters", "avg_iters",
                  "latents_per_code", "ema_decay", "kl_weight", "fsq_levels", "kmeans_init", "kmeans_iters")
#: With three more that only matter where the model's loss is the core's ``aux_loss`` (DAC's layers
#: return the commitment and codebook losses unweighted, and keep DAC's N(0, 1) codebook initialisation).
MODEL_OPTIONS = COMMON_OPTIONS + ("commitment_weight", "codebook_weight", "codebook_init")

Model = TypeVar("Model", bound=type)


def core_parameters(names: Sequence[str] = MODEL_OPTIONS, **defaults: Any) -> list[inspect.Parameter]:
    """The core's declaration of ``names`` as constructor parameters.

    Args:
        names: options of :class:`~.core.Quantizer`.
        **defaults: defaults that differ from the core's (e.g. DAC's ``lookup="cosine"``).

    Returns:
        Positional-or-keyword parameters with the core's types and (overridden) defaults.

    Raises:
        TypeError: a name or an override that is not a core option.
    """
    declared = inspect.signature(Quantizer.__init__).parameters
    # The core uses postponed annotations; argbind needs the real types to parse command lines.
    hints = typing.get_type_hints(Quantizer.__init__)
    unknown = sorted((set(names) | set(defaults)) - set(declared))
    if unknown or set(defaults) - set(names):
        raise TypeError(f"not quantizer options of this model: {unknown or sorted(set(defaults) - set(names))}")
    return [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              default=defaults.get(name, declared[name].default), annotation=_plain(hints[name]))
            for name in names]


def _plain(hint: Any) -> Any:
    """``Optional[X]`` -> ``X``: argbind leaves parameters with ``Optional`` types off the command
    line and out of yml binding; the ``None`` default is kept."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        return args[0]
    return hint


def takes_quantizer_options(names: Sequence[str] = MODEL_OPTIONS, **defaults: Any) -> Callable[[Model], Model]:
    """Class decorator: add the quantizer options ``names`` to a model's constructor.

    The decorated ``__init__`` must end with ``**options``. Its public signature becomes its own
    parameters followed by ``names`` (see :func:`core_parameters`), so unknown keyword arguments are
    a ``TypeError`` as with an explicit signature; ``options`` always holds every name, defaults
    applied. The model's ``quantizer_options`` lists the names.

    Args:
        names: the options the model exposes, in signature order.
        **defaults: the model's own defaults where they differ from the core's.
    """
    extra = core_parameters(names, **defaults)

    def decorate(cls: Model) -> Model:
        init = cls.__init__
        own = list(inspect.signature(init).parameters.values())
        if not own or own[-1].kind is not inspect.Parameter.VAR_KEYWORD:
            raise TypeError(f"{cls.__name__}.__init__ must end with **options to take quantizer options")
        signature = inspect.signature(init).replace(parameters=own[:-1] + extra)

        @functools.wraps(init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            del arguments[own[0].name]  # self
            init(self, **arguments)
            for name in names:  # where audiotools' save() reads constructor arguments back
                setattr(self, name, arguments[name])

        __init__.__signature__ = signature  # what argbind and BaseModel.save inspect
        cls.__init__ = __init__
        cls.quantizer_options = tuple(names)
        return cls

    return decorate


def options_of(model: Any) -> dict[str, Any]:
    """The quantizer options a :func:`takes_quantizer_options` model was built with."""
    return {name: getattr(model, name) for name in model.quantizer_options}
