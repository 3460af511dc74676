"""Export a trained :class:`DiVeQDAC` to Hugging Face ``transformers`` (``DacModel``).

``transformers`` re-implements DAC's generator under its own module names, with plain convolution
weights (no weight norm) and a quantizer that picks codes by cosine similarity, as DAC does. A
folder written here loads with ``DacModel.from_pretrained`` and ``DacFeatureExtractor.from_pretrained``
and encodes and decodes as our model does, for every method: at inference every method is a hard
codeword choice. Models whose codes ``DacModel`` cannot reproduce are refused (:func:`hf_refusal`).

``transformers`` is an optional dependency (the ``hf`` extra); only :func:`export_to_hf` needs it.

An existing folder is written into only with ``overwrite``, and then only the export's own files
in it are replaced (:func:`check_hf_output`): never a folder's other contents, never the input.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Sequence

import torch

from ..errors import ConfigError
from ..training.checkpoint import default_file_mode
from .export import OutputError, same_file, stock_state_dict
from .model import DiVeQDAC

#: The files of an export (``save_pretrained`` of ``DacModel`` and ``DacFeatureExtractor``).
HF_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")

#: DAC's residual unit (``Sequential(Snake1d, WNConv1d k7, Snake1d, WNConv1d k1)``) in HF's names.
_UNIT = ("snake1", "conv1", "snake2", "conv2")


class ExportError(ConfigError):
    """The model cannot be exported in the requested format; the message is one line."""


def hf_refusal(model: DiVeQDAC) -> Optional[str]:
    """Why ``DacModel`` cannot reproduce ``model``'s codes or architecture, or ``None`` if it can."""
    stages = [vq.codebook for vq in model.quantizer.quantizers]
    lookups = sorted({stage.lookup for stage in stages})
    if lookups != ["cosine"]:
        return (f"the model looks codes up by {'/'.join(lookups)} distance; transformers' DacModel always uses "
                "DAC's cosine rule, so it would encode different codes (train with lookup: cosine)")
    if model.method == "fsq":
        return ("FSQ rounds each dimension to its levels; DacModel's table lookup would encode "
                "different codes")
    if any(getattr(stage, "sf_inference", "codeword") == "curve" for stage in stages):
        return ("SF-DiVeQ's curve inference outputs points between codewords that no code stores; "
                "DacModel decodes codewords only")
    rates = list(model.encoder_rates)
    if list(model.decoder_rates) != rates[::-1]:
        return (f"decoder rates {list(model.decoder_rates)} are not the encoder's {rates} reversed, "
                "the only decoder DacConfig describes")
    if model.latent_dim != model.encoder_dim * 2 ** len(rates):
        return (f"latent width {model.latent_dim} differs from encoder_dim x 2^{len(rates)} = "
                f"{model.encoder_dim * 2 ** len(rates)}, the only width DacConfig describes")
    if len(set(model.quantizer.codebook_dim)) != 1:
        return f"codebook dimensions {list(model.quantizer.codebook_dim)} differ between stages; DacConfig has one"
    if 2 ** int(math.log2(model.codebook_size)) != model.codebook_size:
        return f"codebook size {model.codebook_size} is not a power of two, which DacModel requires"
    return None


def hf_config(model: DiVeQDAC) -> dict:
    """``transformers.DacConfig`` arguments describing ``model``."""
    return dict(
        encoder_hidden_size=int(model.encoder_dim),
        downsampling_ratios=[int(r) for r in model.encoder_rates],
        decoder_hidden_size=int(model.decoder_dim),
        n_codebooks=int(model.n_codebooks),
        codebook_size=int(model.codebook_size),
        codebook_dim=int(model.quantizer.codebook_dim[0]),
        quantizer_dropout=float(model.quantizer_dropout),
        sampling_rate=int(model.sample_rate),
    )


def hf_module_names(n_rates: int, n_codebooks: int) -> dict[str, str]:
    """Our (DAC's) module path -> ``DacModel``'s, for a generator with ``n_rates`` strided blocks.

    DAC numbers its layers in ``Sequential`` containers (``encoder.block.1.block.0.block.1``);
    ``transformers`` names them (``encoder.block.0.res_unit1.conv1``) and counts blocks from 0.
    """
    names = {
        "encoder.block.0": "encoder.conv1",
        f"encoder.block.{n_rates + 1}": "encoder.snake1",
        f"encoder.block.{n_rates + 2}": "encoder.conv2",
        "decoder.model.0": "decoder.conv1",
        f"decoder.model.{n_rates + 1}": "decoder.snake1",
        f"decoder.model.{n_rates + 2}": "decoder.conv2",
    }
    for i in range(n_rates):
        ours, theirs = f"encoder.block.{i + 1}.block", f"encoder.block.{i}"
        for unit in range(3):  # residual units with dilations 1, 3, 9, then Snake and the strided conv
            names.update({f"{ours}.{unit}.block.{k}": f"{theirs}.res_unit{unit + 1}.{name}" for k, name in enumerate(_UNIT)})
        names[f"{ours}.3"], names[f"{ours}.4"] = f"{theirs}.snake1", f"{theirs}.conv1"
        ours, theirs = f"decoder.model.{i + 1}.block", f"decoder.block.{i}"
        names[f"{ours}.0"], names[f"{ours}.1"] = f"{theirs}.snake1", f"{theirs}.conv_t1"
        for unit in range(3):  # Snake, the transposed conv, then residual units
            names.update({f"{ours}.{unit + 2}.block.{k}": f"{theirs}.res_unit{unit + 1}.{name}" for k, name in enumerate(_UNIT)})
    for q in range(n_codebooks):
        for part in ("in_proj", "out_proj", "codebook"):
            names[f"quantizer.quantizers.{q}.{part}"] = f"quantizer.quantizers.{q}.{part}"
    return names


def hf_state_dict(model: DiVeQDAC) -> dict[str, torch.Tensor]:
    """``model``'s weights under ``DacModel``'s names, weight norm folded into plain weights.

    DAC's convolutions keep weight norm's ``weight_g`` (per output-slice norm) and ``weight_v``
    (direction); ``DacModel`` stores the product ``g * v / ||v||`` that they define, as its own
    conversion of DAC's checkpoints does. Quantizer maintenance state has no place in it.

    Raises:
        ExportError: a weight that has no ``DacModel`` counterpart (another architecture).
    """
    names = hf_module_names(len(model.encoder_rates), model.n_codebooks)
    try:
        state = stock_state_dict(model)  # SimVQ's mapped table baked in
    except ConfigError as error:  # FSQ
        raise ExportError(str(error)) from None
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        module, leaf = key.rsplit(".", 1)
        if module not in names:
            raise ExportError(f"weight {key} has no counterpart in transformers' DacModel")
        if leaf == "weight_v":
            continue  # folded with its weight_g below
        if leaf == "weight_g":
            direction = state[f"{module}.weight_v"]
            value, leaf = torch._weight_norm(direction, value, 0), "weight"
        out[f"{names[module]}.{leaf}"] = value.detach().float().cpu().contiguous()
    return out


def check_hf_output(folder: str | os.PathLike, overwrite: bool = False, keep: Iterable[str | os.PathLike] = (),
                    names: Sequence[str] = HF_FILES) -> None:
    """Refuse an ``--format hf`` output folder that must not be written.

    A folder that exists is written into only with ``overwrite``, and then only files named
    ``names`` are replaced, each only if an earlier export wrote it: ``config.json`` of a
    transformers DAC model, ``preprocessor_config.json`` of its feature extractor, the other
    names beside such a ``config.json``. Nothing else in the folder is touched.

    Args:
        folder: the folder to write.
        overwrite: an existing folder may be written into.
        keep: files never replaced, even with ``overwrite`` (the input weights).
        names: the files the export writes.

    Raises:
        OutputError: ``folder`` is a file; it exists without ``overwrite``; a file to replace is
            one of ``keep`` or not an earlier export's.
    """
    folder = Path(folder)
    if not (folder.exists() or folder.is_symlink()):
        return
    if not folder.is_dir():
        raise OutputError(f"{folder} is a file; the hf format writes a folder")
    if not overwrite:
        raise OutputError(f"{folder} exists; pass --overwrite to write the export into it (only an earlier "
                          f"export's {', '.join(names)} are replaced, nothing else in it)")
    exported = _json_field(folder / "config.json", "model_type") == "dac"
    for name in names:
        path = folder / name
        if not (path.exists() or path.is_symlink()):
            continue
        if same_file(path, keep):
            raise OutputError(f"{path} is the input weights; write the export to another folder")
        if name == "preprocessor_config.json":
            ours = _json_field(path, "feature_extractor_type") == "DacFeatureExtractor"
        else:
            ours = exported and path.is_file()
        if not ours:
            raise OutputError(f"{path} is not a file of an earlier transformers DAC export; refusing to replace "
                              "it (write the export to another folder)")


def _json_field(path: Path, key: str) -> object:
    """``key`` of the JSON object in ``path`` (None: no such file, not JSON, not an object)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def export_to_hf(model: DiVeQDAC, folder: str | os.PathLike, overwrite: bool = False,
                 keep: Iterable[str | os.PathLike] = ()) -> Path:
    """Write ``model`` as a ``transformers`` DAC folder (``config.json``, ``model.safetensors``,
    ``preprocessor_config.json``) that ``DacModel.from_pretrained(folder)`` and
    ``DacFeatureExtractor.from_pretrained(folder)`` load.

    A new folder appears complete or not at all (written beside it, then renamed). An existing
    folder is refused unless ``overwrite``; then the export's files are written into it, each
    replacing an earlier export's with one rename, and nothing else in it is touched
    (:func:`check_hf_output`).

    Args:
        model: the trained model.
        folder: the folder to write.
        overwrite: write into ``folder`` if it exists (default: refuse).
        keep: files never replaced (the weights ``model`` was read from).

    Raises:
        ExportError: the model cannot be reproduced by ``DacModel`` (:func:`hf_refusal`), or
            ``transformers`` is not installed.
        OutputError: see :func:`check_hf_output`.
    """
    reason = hf_refusal(model)
    if reason:
        raise ExportError(f"cannot export to transformers: {reason}")
    folder, keep = Path(folder), list(keep)
    check_hf_output(folder, overwrite, keep)
    try:
        from transformers import DacConfig, DacFeatureExtractor, DacModel
    except ImportError:
        raise ExportError("the hf format needs transformers: pip install 'dac-diveq[hf]'") from None
    config = DacConfig(**hf_config(model))
    hf_model = DacModel(config)
    # strict: every DacModel weight comes from ours, and nothing of ours is left over.
    hf_model.load_state_dict(hf_state_dict(model), strict=True)
    extractor = DacFeatureExtractor(feature_size=1, sampling_rate=config.sampling_rate, hop_length=config.hop_length)
    into = folder.is_dir()
    parent = folder if into else folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{folder.name or 'hf'}.", suffix=".partial"))
    try:
        hf_model.eval().save_pretrained(staging, safe_serialization=True)
        extractor.save_pretrained(staging)
        for path in staging.iterdir():  # safetensors writes its file 0600: the umask's rule instead
            os.chmod(path, default_file_mode())
        if into:
            names = sorted(path.name for path in staging.iterdir())
            check_hf_output(folder, overwrite, keep, names)  # what save_pretrained wrote, checked again
            for name in names:
                os.replace(staging / name, folder / name)
        else:
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 is for the staging only
            os.rename(staging, folder)  # fails if a folder with files appeared there meanwhile
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set, then put back at once
    os.umask(mask)
    return mask
