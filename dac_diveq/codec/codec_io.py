"""Files of the command line codec: audio in, ``.dac`` files in and out, weights.

Every check raises :class:`InputError` with a one-line reason; the CLI prints it as
``error: <path>: <reason>``. ``.dac`` files use DAC's format (a pickled dict saved with
``np.save``) so that ``python -m dac decode`` reads ours; they are read back here without
unpickling arbitrary objects (DAC's own ``DACFile.load`` uses ``allow_pickle=True``).
"""
from __future__ import annotations

import math
import numbers
import os
import pickle
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from dac.model.base import SUPPORTED_VERSIONS, DACFile

from ..data import bounds
from ..errors import UserError, one_line
from ..training import checkpoint, safe_arrays
from ..training.checkpoint import atomic_path
from ..training.userfiles import file_kind
from .bitpack import bits_per_code, pack_codes, unpack_codes
from .framing import decoder_length, stock_decodable_frames
from .model import GENERATOR, DiVeQDAC

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
#: DAC's code files (read by ``python -m dac decode``) and ours with bit-packed codes (this package only).
DAC_EXTENSION, PACKED_EXTENSION = ".dac", ".dacp"
CODE_EXTENSIONS = (DAC_EXTENSION, PACKED_EXTENSION)
#: First bytes of a packed-codes file, before the ``.npy`` payload. Not a ``.npy`` magic, so
#: ``np.load`` falls back to unpickling, and 0xA7 is no pickle opcode: stock DAC's loader stops
#: at the first byte ("invalid load key") without running anything.
PACKED_MAGIC = b"\xa7DIVEQ-PACKED-CODES\x001\n"
#: Most channels ``compress`` can encode: it measures the input's loudness with audiotools'
#: ITU-R BS.1770 meter, whose channel weights stop at five (DAC's own CLI fails the same way).
MAX_CHANNELS = 5
# Model description stored beside DAC's ``codes``/``metadata`` (DAC's loader ignores it).
MODEL_KEY = "dac_diveq"
MODEL_FIELDS = ("sample_rate", "hop_length", "n_codebooks", "codebook_size")


#: Most codes (code streams x codebooks x frames) one ``.dac`` file may hold: 2^24, 128 MiB as the
#: int64 tensor decoding uses (3 h of 44.1 kHz stereo with 9 codebooks).
MAX_CODES = 2 ** 24


class InputError(UserError):
    """A file the codec cannot use; the message is a one-line reason."""


# ----------------------------------------------------------------------------- files


def find_files(root: Path, extensions: tuple[str, ...],
               on_skip: Optional[Callable[[Path, str], None]] = None) -> list[Path]:
    """Regular files under ``root`` (recursively, case-insensitive extensions), sorted; hidden files
    skipped.

    Args:
        root: the folder.
        extensions: lower-case suffixes to keep.
        on_skip: called as ``on_skip(path, reason)`` for a matching name that is not a regular
            file (a FIFO would block the reader forever, a broken link cannot be read).
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.lower().endswith(extensions) or name.startswith("."):
                continue
            kind = file_kind(path)
            if kind == "file":
                found.append(path)
            elif on_skip is not None:
                on_skip(path, f"not a regular file ({kind}): skipped")
    return sorted(found)


# ----------------------------------------------------------------------------- audio


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """``(audio channels x samples float32, sample_rate)``; rejects unreadable, empty, silent
    and non-finite audio."""
    import soundfile

    kind = file_kind(path)
    if kind == "missing":
        raise InputError("no such file or directory")
    if kind != "file":  # reading a FIFO would block forever
        raise InputError(f"not a regular file ({kind})")
    try:
        header = soundfile.info(str(path))
    except Exception as exc:  # LibsndfileError, TypeError, ... on corrupt or non-audio files
        raise InputError(f"cannot read audio ({one_line(exc)})") from None
    # From the header, before any sample is read: a tiny file may claim hours or 8 Hz.
    check_sample_rate(int(header.samplerate))
    check_length(int(header.frames), int(header.channels), int(header.samplerate))
    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise InputError(f"cannot read audio ({one_line(exc)})") from None
    if data.shape[0] == 0:
        raise InputError("empty audio (0 samples)")
    if not np.isfinite(data).all():
        raise InputError("audio contains NaN or infinite samples")
    if not np.any(data):
        raise InputError("silent audio (all samples are zero): there is no loudness to restore")
    return np.ascontiguousarray(data.T), int(sample_rate)


def check_sample_rate(sample_rate: int) -> None:
    """Refuse a sample rate outside ``bounds.MIN_SAMPLE_RATE..MAX_SAMPLE_RATE`` Hz."""
    _refuse(bounds.sample_rate_problem(sample_rate))


def check_length(length: int, channels: int, sample_rate: int, model_rate: Optional[int] = None) -> None:
    """Refuse audio of more than ``bounds.MAX_SAMPLES`` samples at its rate or, given, the model's."""
    _refuse(bounds.length_problem(length, channels, sample_rate, model_rate))


def check_resampling(sample_rate: int, model_rate: int) -> None:
    """Refuse rates whose resampling filters would exceed ``bounds.MAX_RESAMPLE_TAPS`` taps."""
    _refuse(bounds.resampling_problem(sample_rate, model_rate))


def _refuse(problem: Optional[str]) -> None:
    if problem is not None:
        raise InputError(problem)


def check_channels(audio: np.ndarray) -> None:
    """Refuse audio (channels x samples) with more channels than ``compress`` can encode."""
    if audio.shape[0] > MAX_CHANNELS:
        raise InputError(f"{audio.shape[0]} channels: at most {MAX_CHANNELS} can be encoded (DAC's loudness "
                         "measure, ITU-R BS.1770, has channel weights for 5); split it into mono or stereo files")


def read_model_input(path: Path, model_rate: int) -> tuple[np.ndarray, int]:
    """:func:`read_audio` for a model of sample rate ``model_rate``: what ``encode`` and
    evaluation both refuse (too many channels, a rate that would take too much to resample, too
    many samples once resampled, nothing left once resampled).

    Returns:
        ``(audio channels x samples float32, sample_rate)``.

    Raises:
        InputError: the file cannot be encoded (one line).
    """
    audio, sample_rate = read_audio(path)
    check_channels(audio)
    check_resampling(sample_rate, model_rate)
    check_length(audio.shape[1], audio.shape[0], sample_rate, model_rate)
    if audio.shape[1] * model_rate // sample_rate == 0:
        raise InputError(f"too short ({audio.shape[1]} samples at {sample_rate} Hz)")
    return audio, sample_rate


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM wav (as ``python -m dac decode``), ``audio`` channels x samples, written atomically."""
    import soundfile

    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), np.clip(audio, -1.0, 1.0).T, sample_rate, subtype="PCM_16", format="WAV")


# ----------------------------------------------------------------------------- weights


def find_weights(path: Path) -> checkpoint.ResolvedWeights:
    """The weights ``path`` means, by the package's one rule (:data:`checkpoint.TAGS`): a weights
    file itself, or a run folder's ``best`` generator, else its ``latest``.

    Raises:
        InputError: no weights file there (one line).
    """
    try:
        return checkpoint.resolve_weights(path, (GENERATOR,))
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None


def load_model(path: Path):
    """The codec of a weights file or run folder (:func:`find_weights`), in eval mode on the CPU.

    A :class:`DiVeQDAC` file (``DiVeQDAC.save(path, package=False)``) gives that model; a stock
    ``dac.model.DAC`` file (``python -m dac download``, ``export --format dac``) gives a
    :class:`DiVeQDAC` with its weights and DAC's own quantizer (``ste``, DAC's cosine lookup:
    the codes stock DAC writes). Tensors only (``weights_only``; never a ``torch.package``
    archive, whose unpickling runs the code it carries), and every weight must match the
    configuration the file records (``strict``).

    Args:
        path: a weights file, a run folder or a tag folder.

    Returns:
        The model; its ``source`` is the :class:`~dac_diveq.training.checkpoint.ResolvedWeights`
        it came from (``source.describe()``: the line commands print).

    Raises:
        InputError: no weights there, or a file that is not a DiVeQDAC or DAC weights file (one line).
    """
    found = find_weights(path)
    model = load_weights_file(found.path)
    model.source = found
    return model


def load_weights_file(path: Path):
    """:func:`load_model` of one weights file (no run folder resolution).

    Args:
        path: a DiVeQDAC or stock DAC weights file.

    Returns:
        The :class:`DiVeQDAC` in eval mode; for stock DAC weights ``stock_dac`` is True.

    Raises:
        InputError: unreadable, hostile or foreign file, or weights that do not fit the
            configuration the file records (one line, without the file's name).
    """
    from dac.model.dac import DAC

    from .register import from_dac

    try:
        blob = checkpoint.read_weights(path)
    except checkpoint.UntrustedFileError as exc:
        raise InputError(f"refusing to load it: {exc.reason}") from None
    except checkpoint.NotWeightsError as exc:
        raise InputError(exc.reason) from None
    except checkpoint.CheckpointError as exc:
        raise InputError(f"cannot read weights ({exc.reason}); expected a file written by "
                         "DiVeQDAC.save(path, package=False) or a stock DAC weights file") from None
    if "method" in blob["metadata"]["kwargs"]:
        model = _build(DiVeQDAC, blob, path)
    else:  # DAC's own quantizer, read as the STE it was trained with: the same codes
        model = from_dac(_build(DAC, blob, path), method="ste")
        model.metadata, model.stock_dac = blob["metadata"], True
    return model.eval()


def _build(cls: type, blob: dict, path: Path):
    """:func:`checkpoint.build_model`, its one-line error as an :class:`InputError` naming the class."""
    try:
        return checkpoint.build_model(cls, blob, path)
    except checkpoint.CheckpointError as exc:
        kind = "DiVeQDAC" if cls is DiVeQDAC else "DiVeQDAC or stock DAC"
        raise InputError(f"not a {kind} weights file of a matching configuration ({exc.reason})") from None


def model_description(model) -> dict:
    return {name: int(getattr(model, name)) for name in MODEL_FIELDS} | {"method": str(model.method)}


# ----------------------------------------------------------------------------- .dac files


def save_dac(artifact: DACFile, path: Path, model=None, packed: bool = False) -> None:
    """``artifact`` in DAC's ``.dac`` format (readable by ``dac.DACFile.load``), written atomically,
    with the model's sample rate, hop length and codebooks alongside when ``model`` is given.

    With ``packed`` (needs ``model``) the codes are stored in ``ceil(log2 K)`` bits each
    (:mod:`.bitpack`) instead of DAC's 16-bit integers: the file then holds the bitrate the codec
    is named for, starts with :data:`PACKED_MAGIC` (its own format, named ``.dacp`` by the CLI),
    and only this package (not ``python -m dac``) reads it.
    """
    codes = artifact.codes.cpu().numpy()
    if packed:
        if model is None:
            raise ValueError("packed codes need the model (its codebook size)")
        bits = bits_per_code(int(model.codebook_size))
        stored = {"packed_codes": pack_codes(codes, bits), "codes_shape": np.asarray(codes.shape, dtype=np.int64),
                  "bits_per_code": bits}
    else:
        stored = {"codes": codes.astype(np.uint16)}
    artifacts = {
        **stored,
        "metadata": {
            "input_db": np.asarray(artifact.input_db.cpu() if torch.is_tensor(artifact.input_db)
                                   else artifact.input_db, dtype=np.float32),
            "original_length": int(artifact.original_length),
            "sample_rate": int(artifact.sample_rate),
            "chunk_length": int(artifact.chunk_length),
            "channels": int(artifact.channels),
            "padding": bool(artifact.padding),
            "dac_version": SUPPORTED_VERSIONS[-1],
        },
    }
    if model is not None:
        artifacts[MODEL_KEY] = model_description(model)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            if packed:
                handle.write(PACKED_MAGIC)
            np.save(handle, artifacts)


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays (checked before they are allocated: :mod:`..training.safe_arrays`),
    dtypes, scalars and plain Python values; refuses every other global."""

    ALLOWED = safe_arrays.numpy_globals(object_scalars=True)

    def find_class(self, module: str, name: str):
        found = self.ALLOWED.get(f"{module}.{name}")
        if found is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return found


def _read_artifacts(path: Path) -> dict:
    from numpy.lib import format as npy

    try:
        with open(path, "rb") as handle:
            if handle.read(len(PACKED_MAGIC)) != PACKED_MAGIC:  # a packed-codes file: .npy after it
                handle.seek(0)
            version = npy.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = npy.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = npy.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            if dtype != np.dtype(object) or shape != ():
                raise ValueError(f"holds a {dtype} array of shape {shape}, not DAC's dict")
            value = _ArrayUnpickler(handle).load()
    except Exception as exc:  # truncated, corrupt, not .npy, forbidden objects
        raise InputError(f"not a valid .dac file ({one_line(exc)[:200]})") from None
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype == object:
        value = value[()]
    value = safe_arrays.plain(value)
    if not isinstance(value, dict):
        raise InputError("not a valid .dac file (no artifacts dict)")
    return value


def has_packed_codes(path: Path) -> bool:
    """Whether a code file stores its codes bit-packed (``save_dac(..., packed=True)``; files
    written before packed files had their own magic held them in a ``.dac``)."""
    return "packed_codes" in _read_artifacts(path)


def _integer(metadata: dict, key: str, minimum: int) -> int:
    value = metadata.get(key)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)) \
            or int(value) < minimum:
        raise InputError(f"not a valid .dac file (metadata {key}={value!r})")
    return int(value)


def load_dac(path: Path) -> tuple[DACFile, Optional[dict]]:
    """A ``.dac`` file (ours or stock DAC's) as ``(DACFile, model description or None)``, checked
    for internal consistency."""
    kind = file_kind(path)
    if kind == "missing":
        raise InputError("no such file or directory")
    if kind == "a folder":
        raise InputError("is a directory, not a .dac file")
    if kind != "file":  # reading a named pipe would block forever
        raise InputError(f"not a regular file ({kind})")
    artifacts = _read_artifacts(path)
    metadata, codes = artifacts.get("metadata"), artifacts.get("codes")
    if codes is None and "packed_codes" in artifacts:
        codes = _unpacked_codes(artifacts)
    if not isinstance(metadata, dict) or not isinstance(codes, np.ndarray):
        raise InputError("not a valid .dac file (no codes or metadata)")
    if metadata.get("dac_version") not in SUPPORTED_VERSIONS:
        raise InputError(f"unsupported .dac version {metadata.get('dac_version')!r} "
                         f"(supported: {', '.join(SUPPORTED_VERSIONS)})")
    if codes.ndim != 3 or codes.dtype.kind not in "ui" or 0 in codes.shape:
        raise InputError(f"not a valid .dac file (codes of shape {codes.shape}, dtype {codes.dtype})")
    _check_codes(codes.size)
    original_length = _integer(metadata, "original_length", 1)
    sample_rate = _integer(metadata, "sample_rate", 1)
    chunk_length = _integer(metadata, "chunk_length", 1)
    channels = _integer(metadata, "channels", 1)
    check_sample_rate(sample_rate)
    check_length(original_length, channels, sample_rate)
    padding = metadata.get("padding")
    if not isinstance(padding, (bool, np.bool_)):
        raise InputError(f"not a valid .dac file (metadata padding={padding!r})")
    try:
        input_db = np.asarray(metadata.get("input_db"), dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise InputError("not a valid .dac file (metadata input_db)") from None
    if input_db.size == 0 or not np.isfinite(input_db).all():
        raise InputError("not a valid .dac file (metadata input_db is not finite)")
    if codes.shape[0] != channels * input_db.size:
        raise InputError(f"not a valid .dac file ({codes.shape[0]} code streams for {channels} channel(s))")
    frames = codes.shape[-1]
    if (padding and frames != chunk_length) or frames % chunk_length:
        raise InputError(f"not a valid .dac file ({frames} frames in chunks of {chunk_length})")
    if codes.dtype.kind == "i" and codes.min() < 0:
        raise InputError("not a valid .dac file (negative codes)")
    extra = artifacts.get(MODEL_KEY)
    if extra is not None and not (isinstance(extra, dict) and all(
            isinstance(extra.get(k), (numbers.Integral, np.integer)) for k in MODEL_FIELDS)):
        raise InputError("not a valid .dac file (bad model description)")
    dac_file = DACFile(codes=torch.from_numpy(codes.astype(np.int64)), chunk_length=chunk_length,
                       original_length=original_length, input_db=torch.from_numpy(input_db),
                       channels=channels, sample_rate=sample_rate, padding=bool(padding),
                       dac_version=metadata["dac_version"])
    return dac_file, extra


def _check_codes(count: int) -> None:
    """Refuse a ``.dac`` file of more than :data:`MAX_CODES` codes (before they are unpacked or
    widened to int64)."""
    if count > MAX_CODES:
        raise InputError(f"not a valid .dac file ({count} codes; at most {MAX_CODES} are accepted)")


def _unpacked_codes(artifacts: dict) -> np.ndarray:
    """The codes of a file written with ``packed=True``, checked before anything is allocated."""
    packed, shape, bits = artifacts.get("packed_codes"), artifacts.get("codes_shape"), artifacts.get("bits_per_code")
    if not (isinstance(packed, np.ndarray) and packed.dtype == np.uint8 and isinstance(shape, np.ndarray)
            and shape.shape == (3,) and shape.dtype.kind in "ui" and (shape > 0).all()
            and isinstance(bits, (numbers.Integral, np.integer)) and 1 <= int(bits) <= 16):
        raise InputError("not a valid .dac file (packed codes without their shape or width)")
    count = math.prod(int(n) for n in shape)  # Python integers: a forged shape cannot overflow
    _check_codes(count)
    if count * int(bits) > packed.size * 8:  # also what keeps a forged shape from allocating much
        raise InputError(f"not a valid .dac file ({packed.size} bytes of packed codes for shape {tuple(shape)})")
    return unpack_codes(packed, tuple(int(n) for n in shape), int(bits))


def method_mismatch(extra: Optional[dict], model) -> str:
    """What differs when a ``.dac`` file records another quantizer method than ``model``'s ('' when
    it does not, or names none): the shapes agree (:func:`check_dac_matches`), so it would decode,
    but its codes index another model's codebooks."""
    recorded = extra.get("method") if extra else None
    if recorded is None or str(recorded) == str(model.method):
        return ""
    return (f"encoded by a {recorded} model, decoding with {model.method} weights: the codes index "
            "another model's codebooks")


def check_dac_matches(dac_file: DACFile, extra: Optional[dict], model) -> None:
    """Raise :class:`InputError` unless ``model`` can decode ``dac_file``: same model description
    when the file has one, codes within the codebooks, and as many frames as the length needs."""
    if extra is not None:
        ours = model_description(model)
        diff = [f"{k} {int(extra[k])} (weights: {ours[k]})" for k in MODEL_FIELDS if int(extra[k]) != ours[k]]
        if diff:
            raise InputError("encoded by a different model: " + ", ".join(diff))
    codes = dac_file.codes
    if codes.shape[1] > model.n_codebooks:
        raise InputError(f"has {codes.shape[1]} codebooks, the model only {model.n_codebooks}")
    top = int(codes.max())
    if top >= model.codebook_size:
        raise InputError(f"code {top} is out of range for codebook size {model.codebook_size}")
    check_resampling(dac_file.sample_rate, model.sample_rate)
    check_length(dac_file.original_length, dac_file.channels, dac_file.sample_rate, model.sample_rate)
    # Samples at the model's rate, as audiotools' (julius') resampling in ``compress`` returns them.
    samples = dac_file.original_length * model.sample_rate // dac_file.sample_rate
    frames = codes.shape[-1]
    if dac_file.padding:
        # DAC's own count, or the one our encoder writes so that stock DAC can decode it (.framing).
        expected = stock_decodable_frames(model, dac_file.original_length, dac_file.sample_rate)
        accepted = {-(-samples // model.hop_length), expected}
    else:
        per_chunk = decoder_length(model, dac_file.chunk_length, padded=False)
        expected = dac_file.chunk_length * -(-samples // per_chunk) if per_chunk > 0 else -1
        accepted = {expected}
    if frames not in accepted:
        raise InputError(f"{frames} frames do not fit {dac_file.original_length} samples at "
                         f"{dac_file.sample_rate} Hz with this model (expected {expected}): "
                         "the file was encoded by a different model or is corrupt")
