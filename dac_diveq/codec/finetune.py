"""Fine-tuning from DAC's released checkpoints (``scripts/train.py --load_weights``).

A stock ``dac.model.DAC`` weights file fixes the generator's architecture; the configuration fixes
the quantizer (method and every option) and the recipe. The parts of the recipe that depend on the
architecture follow the checkpoint: the discriminator's sample rate and the data's (the loaders
resample to the generator's rate). A configuration key that says otherwise (a conf written for
another layout) is refused with one line naming the key, rather than silently overridden.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, never
DAC's ``torch.package`` path, which would run code from the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from dac.model.dac import DAC
from dac.model.discriminator import Discriminator

from ..errors import WeightsError
from ..training import checkpoint
from .layouts import conf_folder, layout_of
from .model import DiVeQDAC, dac_architecture
from .register import from_dac

#: Generator keys that describe the architecture: a conf that sets one must agree with the checkpoint.
ARCHITECTURE_KEYS = ("sample_rate", "encoder_dim", "encoder_rates", "latent_dim", "decoder_dim", "decoder_rates",
                     "n_codebooks", "codebook_size", "codebook_dim")
#: Generator keys that are training options: the conf's value is used when it sets one.
TRAINING_KEYS = ("quantizer_dropout",)


class FinetuneError(WeightsError):
    """A checkpoint that cannot start this run, or a configuration that contradicts it (one line)."""


@dataclass
class Start:
    """What a fine-tuning run starts from.

    Attributes:
        generator: the stock generator's weights in a :class:`DiVeQDAC` with the conf's quantizer.
        discriminator_sample_rate: the rate the discriminator must analyse (the generator's).
        layout: the released layout the checkpoint has (``"44khz"``, ...), or ``None``.
    """

    generator: DiVeQDAC
    discriminator_sample_rate: int
    layout: Optional[str]


def explicit_keys(args: Mapping[str, Any], argv: Sequence[str]) -> set[str]:
    """The argbind keys the user set: those of the ``--args.load`` yml (its includes resolved) and
    those given on the command line. argbind's parsed ``args`` also holds every default, which a
    conf did not choose and which must not count as contradicting a checkpoint."""
    from ..training.config import load_yml

    keys: set[str] = set()
    if args.get("args.load"):
        keys |= set(load_yml(args["args.load"]))  # YAML's safe loader, as every yml is read
    keys |= {arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--")}
    return keys


def _read(path: str | os.PathLike, what: str) -> dict:
    """``{"state_dict", "metadata": {"kwargs"}}`` of an audiotools weights file, tensors only."""
    path = Path(path)
    if not path.is_file():
        option = "--load_weights" if what == "generator" else "--load_discriminator"
        raise FinetuneError(f"{option} {path}: no such file")
    try:  # tensors only; a torch.package archive or a pickle that imports code is refused unread
        blob = checkpoint.load_file(path)
    except checkpoint.CheckpointError as exc:
        raise FinetuneError(f"{path}: cannot read it as a DAC {what} weights file ({exc.reason})") from None
    kwargs = blob.get("metadata", {}).get("kwargs") if isinstance(blob, dict) else None
    if not isinstance(blob, dict) or not isinstance(blob.get("state_dict"), dict) or not isinstance(kwargs, dict):
        raise FinetuneError(f"{path}: not a DAC {what} weights file (no state_dict and metadata kwargs; "
                            "expected a file of `python -m dac download` or a DAC training run)")
    return blob


def read_stock_dac(path: str | os.PathLike) -> DAC:
    """The ``dac.model.DAC`` of a stock weights file (e.g. ``weights_44khz_8kbps_0.0.1.pth``).

    Raises:
        FinetuneError: unreadable, not a DAC generator, or one of our own checkpoints (those
            continue with ``--resume``, or export with ``python -m dac_diveq export --format dac``).
    """
    blob = _read(path, "generator")
    kwargs = dict(blob["metadata"]["kwargs"])
    if "method" in kwargs:
        raise FinetuneError(f"{path} is a DiVeQDAC checkpoint, not a stock DAC one: continue its run with "
                            "--resume, or export it first (python -m dac_diveq export --format dac)")
    try:
        checkpoint.check_arguments(DAC, kwargs, blob["state_dict"])  # before DAC(**kwargs) allocates
        model = DAC(**kwargs)
        model.load_state_dict(blob["state_dict"], strict=True)
    except Exception as exc:  # kwargs of another class, or weights that do not fit them
        reason = " ".join(str(exc).split())[:200]
        raise FinetuneError(f"{path}: not a dac.model.DAC checkpoint ({reason})") from None
    return model


def load_stock_discriminator(model: Discriminator, path: str | os.PathLike) -> Discriminator:
    """Fill ``model`` (built from the conf, at the generator's sample rate) with a stock
    ``dac.model.discriminator.Discriminator`` weights file.

    The file's own ``kwargs`` cannot describe it: DAC's discriminator does not keep its constructor
    arguments, so audiotools records their defaults whatever they were. The weights must fit the
    conf's discriminator exactly instead.

    Raises:
        FinetuneError: unreadable, or weights of another discriminator.
    """
    blob = _read(path, "discriminator")
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise FinetuneError(f"--load_discriminator {path} does not fit the configuration's Discriminator "
                            f"(rates, periods, fft_sizes, bands): {reason}") from None
    return model


def _effective_latent(settings: Mapping[str, Any]) -> Optional[int]:
    """The latent width a set of ``DiVeQDAC`` arguments gives (``None``: DAC's ``encoder_dim x 2^n``)."""
    if settings.get("latent_dim") is not None:
        return int(settings["latent_dim"])
    if settings.get("encoder_dim") is None or settings.get("encoder_rates") is None:
        return None
    return int(settings["encoder_dim"]) * 2 ** len(settings["encoder_rates"])


def check_conf(architecture: Mapping[str, Any], conf: Mapping[str, Any], explicit: set[str],
               path: str | os.PathLike) -> None:
    """Refuse a configuration that sets an architecture key to another value than the checkpoint's.

    Args:
        architecture: the checkpoint's :func:`~.model.dac_architecture`.
        conf: argbind's parsed arguments (``DiVeQDAC.<key>``, ``Discriminator.sample_rate``).
        explicit: the keys the user set (:func:`explicit_keys`); the others follow the checkpoint.
        path: the checkpoint, for the message.

    Raises:
        FinetuneError: naming the first contradicting key, the checkpoint's value and a way out.
    """
    layout = layout_of(architecture)
    where = f"DAC's {layout} layout" if layout else "a custom DAC layout"
    fix = (f"use a conf for it ({conf_folder(layout)}/<method>.yml, conf/finetune/<method>.yml) or drop the key"
           if layout else "use conf/finetune/<method>.yml or drop the key")
    settings = {key: conf.get(f"DiVeQDAC.{key}") for key in ARCHITECTURE_KEYS}
    for key in ARCHITECTURE_KEYS:
        name = f"DiVeQDAC.{key}"
        if key == "latent_dim":
            ours, theirs = _effective_latent(settings), architecture["latent_dim"]
            if not {name, "DiVeQDAC.encoder_dim", "DiVeQDAC.encoder_rates"} & explicit or ours is None:
                continue
        elif name not in explicit:
            continue
        else:
            ours, theirs = conf[name], architecture[key]
        if _normalise(ours) != _normalise(theirs):
            raise FinetuneError(f"--load_weights {path} is {where} with {key} {_normalise(theirs)}, but the "
                                f"configuration sets {name}: {_normalise(ours)}; {fix}")
    rate = conf.get("Discriminator.sample_rate")
    if "Discriminator.sample_rate" in explicit and rate != architecture["sample_rate"]:
        raise FinetuneError(f"--load_weights {path} is {where} at {architecture['sample_rate']} Hz, but the "
                            f"configuration sets Discriminator.sample_rate: {rate}; {fix}")


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return value


def start_from(path: str | os.PathLike, quantizer_config: Mapping[str, Any], conf: Mapping[str, Any],
               explicit: set[str]) -> Start:
    """Everything a fine-tuning run takes from a stock DAC checkpoint.

    Args:
        path: a stock ``dac.model.DAC`` weights file.
        quantizer_config: ``method``, ``residual_mode`` and every quantizer option of the conf
            (they all reach the new quantizer).
        conf: argbind's parsed arguments.
        explicit: the keys the user set (:func:`explicit_keys`).

    Returns:
        The :class:`Start`: the generator with the checkpoint's architecture, encoder, decoder,
        codebooks and projections (marked initialised: no re-initialisation from latents), and the
        sample rate the discriminator must use.

    Raises:
        FinetuneError: unreadable files, or a conf that contradicts the checkpoint.
    """
    stock = read_stock_dac(path)
    architecture = dac_architecture(stock)
    check_conf(architecture, conf, explicit, path)
    for key in TRAINING_KEYS:
        if f"DiVeQDAC.{key}" in explicit:
            # from_dac copies the stock model's value; the conf's choice wins for training options.
            setattr(stock.quantizer, key, conf[f"DiVeQDAC.{key}"])
    generator = from_dac(stock, **quantizer_config)
    return Start(generator, int(stock.sample_rate), layout_of(architecture))


def conf_quantizer_config(conf: Mapping[str, Any]) -> dict[str, Any]:
    """``method``, ``residual_mode`` and every quantizer option from argbind's parsed arguments
    (which hold the conf's values and :class:`DiVeQDAC`'s defaults for the rest)."""
    names = ("method", "residual_mode", *DiVeQDAC.quantizer_options)
    return {name: conf[f"DiVeQDAC.{name}"] for name in names if f"DiVeQDAC.{name}" in conf}
