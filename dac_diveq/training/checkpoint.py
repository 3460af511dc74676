"""Checkpoints in DAC's folder layout, written atomically, and the package's one atomic-write helper.

``save_path/<tag>/<model>/weights.pth`` (+ ``optimizer.pth``, ``scheduler.pth``) for every trained
model (``diveqdac`` and ``discriminator`` for the codec; ``vqvae``/``vqgan``/``codegpt`` and
``discriminator`` for images), plus ``save_path/<tag>/trainer.pth`` (step, best score, history,
every rank's RNG state, the configuration text). Each tag is a symlink to a complete folder under
``save_path/.checkpoints``, replaced with one ``os.replace``: a process killed mid-save leaves the
previous ``latest`` intact.

Every checkpoint folder names the run that wrote it (``.owner``: the id in ``save_path/.run_id``),
and garbage collection deletes only this run's folders that none of its tags points to: a
``.checkpoints`` shared by two runs (a symlink to one store) or holding other folders loses
nothing of theirs, and a link in the store is never followed.

Every file is read with ``torch.load(weights_only=True)``: a checkpoint is data, never code. A file
that would import anything else (a crafted pickle, a ``torch.package`` archive) is refused unread
with one line naming it (:class:`UntrustedFileError`).
"""
from __future__ import annotations

import contextlib
import errno
import inspect
import math
import os
import platform
import pickle
import random
import re
import shutil
import sys
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from ..errors import UserError
from . import safe_arrays, userfiles

STORE = ".checkpoints"
WEIGHTS = "weights.pth"
#: In the run folder: the run's id (made at its first save), which its checkpoint folders carry.
RUN_ID = ".run_id"
#: In every checkpoint folder (complete or ``.partial``): the id of the run that wrote it.
OWNER = ".owner"
#: Which checkpoint a run folder means, most preferred first (see :func:`resolve_weights`): the one
#: rule of every command that takes a run folder (the codec's encode/decode/info/export and
#: evaluate, the image scripts). ``best`` is the checkpoint validation scored best, the one an
#: evaluation reports and an export should ship; ``latest`` serves a run that never validated.
TAGS = ("best", "latest")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, unreadable or does not match the configuration."""


class UntrustedFileError(CheckpointError):
    """A file that would run or import code when loaded; it is refused unread."""


class NotRegularFileError(CheckpointError):
    """A checkpoint path that is a named pipe, socket or device: refused unopened (a pipe would
    block the reader forever)."""


#: What checkpoints written before RNG states were stored as tensors need besides tensors and plain
#: data: numpy's RNG state was pickled as an ``ndarray`` of ``uint32``. These rebuild an array and
#: nothing else, checked before it is allocated (:mod:`.safe_arrays`: no object dtype, never more
#: bytes than the file holds for it), as ``(object, "pickled name")`` pairs.
_LEGACY_GLOBALS = tuple((obj, name) for name, obj in {
    **safe_arrays.numpy_globals(), **safe_arrays.allowed_classes(),
    f"numpy.dtypes.{type(np.dtype(np.uint32)).__name__}": type(np.dtype(np.uint32))}.items())


# ----------------------------------------------------------------------------- atomic files


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: Optional[int] = None) -> Iterator[Path]:
    """A hidden temporary path beside ``path``, renamed onto ``path`` when the block succeeds.

    A file written through it exists complete under its final name or not at all, so an
    interrupted writer never leaves a half-written file that a reader (or a resumed run) takes
    for a finished one.

    Args:
        path: the final file; its folder is created.
        mode: permission bits of the final file; default: what ``open`` would give under the
            current umask (0644 under umask 022; ``mkstemp`` itself creates 0600 files).

    Yields:
        The temporary path to write to; removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode() if mode is None else mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def default_file_mode() -> int:
    """Permission bits of a new file under the process umask (``0o666 & ~umask``)."""
    mask = os.umask(0)  # the only portable way to read it: set, then put back at once
    os.umask(mask)
    return 0o666 & ~mask


# ----------------------------------------------------------------------------- provenance


def processor() -> str:
    """The machine's processor in words: the CPU model, its cores and whether it computes bfloat16
    natively (AVX512-BF16 or AMX: ``amp: auto`` trains in bf16 there), and, when CUDA is available,
    the GPU's name. Machines differ between sittings (a step's time changes 2-3x with native bf16),
    so every run and report says which one it ran on."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), name)
    except OSError:  # not Linux
        pass
    bf16 = ", native bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ""
    cpu = f"{name} ({os.cpu_count()} cores{bf16})"
    return f"{torch.cuda.get_device_name()}, {cpu}" if torch.cuda.is_available() else cpu


def environment() -> dict[str, Any]:
    """What a seeded run's numbers depend on besides the code and the configuration: torch's
    intra-op thread count (1 and 2 threads give different weights after a few steps: reductions
    are split differently), the torch and numpy versions, and the processor (what its step times
    mean). Plain ``str``/``int`` values: ``torch.__version__`` is a ``TorchVersion``, which a
    weights-only load refuses."""
    return {"threads": int(torch.get_num_threads()), "torch": str(torch.__version__), "numpy": str(np.__version__),
            "processor": processor()}


# ----------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """Every generator a training step may draw from (torch CPU/CUDA, numpy, Python), as tensors
    and plain data only (``torch.load(weights_only=True)`` reads them back without an allow-list)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (or the ``ndarray`` form of older checkpoints)."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    if torch.is_tensor(keys):
        keys = keys.numpy().astype(np.uint32)
    np.random.set_state((name, keys, *rest))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rng_problem(state: Any) -> str:
    """What is wrong with one rank's RNG state as :func:`rng_state` writes it ('' if nothing)."""
    if not isinstance(state, dict) or not {"torch", "numpy", "python"} <= set(state):
        return "its RNG state is not a dict of torch, numpy and python states"
    if not (torch.is_tensor(state["torch"]) and state["torch"].dtype == torch.uint8
            and state["torch"].shape == torch.get_rng_state().shape):
        return "its torch RNG state is not torch.get_rng_state()'s byte tensor"
    numpy_state = state["numpy"]
    if not (isinstance(numpy_state, (tuple, list)) and len(numpy_state) == 5 and numpy_state[0] == "MT19937"
            and (torch.is_tensor(numpy_state[1]) or isinstance(numpy_state[1], np.ndarray))
            and tuple(numpy_state[1].shape) == (624,)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numpy_state[2:])):
        return "its numpy RNG state is not (name, 624 keys, pos, has_gauss, cached)"
    python_state = state["python"]
    if not (isinstance(python_state, (tuple, list)) and len(python_state) == 3
            and python_state[0] == random.Random.VERSION and isinstance(python_state[1], (tuple, list))
            and len(python_state[1]) == 625 and all(type(v) is int for v in python_state[1])):
        return "its python RNG state is not random.getstate()'s"
    return ""


def check_trainer_state(state: Any, path: Path, rank: int = 0) -> dict[str, Any]:
    """Check a ``trainer.pth`` before anything of it is used; return this rank's RNG state.

    A file that loads safely may still hold anything (``rng={}``, ``step='x'``): each is a one-line
    error naming the file, not a traceback in the middle of a resume.

    Raises:
        CheckpointError: what is wrong, in one line.
    """
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path} is not a trainer state ({what})")

    if not (isinstance(state, dict) and {"step", "best", "rng"} <= set(state)):
        raise bad("no step, best and rng")
    if type(state["step"]) is not int or state["step"] < 0:
        raise bad(f"step {str(state['step'])[:40]!r} is not a count of steps")
    if isinstance(state["best"], bool) or not isinstance(state["best"], (int, float)) or math.isnan(state["best"]):
        raise bad(f"best {str(state['best'])[:40]!r} is not a score")
    for key in ("history", "environment"):
        if not isinstance(state.get(key, []), list):
            raise bad(f"{key} is not a list")
    rng = state["rng"]
    if isinstance(rng, list):
        if not 0 <= rank < len(rng):
            raise bad(f"it holds RNG states of {len(rng)} rank(s), this is rank {rank}")
        rng = rng[rank]
    problem = _rng_problem(rng)
    if problem:
        raise bad(problem)
    return rng


def load_state_into(obj: Any, path: Path) -> None:
    """``obj.load_state_dict`` (an optimizer's, a scheduler's) of a checkpoint file.

    Raises:
        CheckpointError: the file is unreadable, or its state does not fit ``obj`` (an empty or
            another optimizer's state): one line naming it.
    """
    state = load_file(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a {type(obj).__name__} state")
    try:
        obj.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CheckpointError(f"{path} is not a state of this {type(obj).__name__} "
                              f"({type(exc).__name__}: {reason})") from None


# ----------------------------------------------------------------------------- run checkpoints


def prepare_run_folder(save_path: str | os.PathLike) -> Path:
    """Create the run folder and check that files can be written in it, before any training.

    Raises:
        CheckpointError: it is a file, under a file, not writable or on a read-only file system
            (one line), rather than a traceback from TensorBoard's writer or the first save.
    """
    root = Path(save_path)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = ("it is a file, not a folder" if root.exists() and not root.is_dir()
                  else exc.strerror or str(exc))
        raise CheckpointError(f"cannot use {root} as the run folder (save_path): {reason}") from None
    for tag in TAGS:
        check_tag(root / tag)
    return root


def save(save_path: str | os.PathLike, tags: list[str], models: dict[str, Any], extra: dict[str, Any]) -> Path:
    """Write one checkpoint and point every tag in ``tags`` at it.

    A save that fails (a full disk, a lost mount, an interrupt) removes what it wrote and leaves
    every tag where it was.

    Args:
        save_path: run folder.
        tags: e.g. ``["latest"]``, ``["latest", "best"]`` or ``["latest", "10000"]``.
        models: ``{folder_name: (model, {"optimizer.pth": obj, ...})}``; models are audiotools
            ``BaseModel``s saved with ``save(..., package=False)``.
        extra: trainer state saved as ``trainer.pth``.

    Returns:
        the folder written.

    Raises:
        CheckpointError: the checkpoint could not be written (one line naming the step, the
            folder and the previous checkpoint, which is intact).
    """
    root = Path(save_path)
    store = root / STORE
    step = int(extra.get("step", 0))
    folder = store / f"step{step:08d}-{uuid.uuid4().hex[:8]}"
    tmp = folder.with_name(folder.name + ".partial")
    try:
        owner = run_id(root, create=True)
        store.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        (tmp / OWNER).write_text(owner + "\n")  # first: an interrupted save's leftovers are ours too
        for name, (model, files) in models.items():
            (tmp / name).mkdir()
            write_file(tmp / name / WEIGHTS, lambda handle: model.save(handle, package=False))
            for filename, obj in files.items():
                write_file(tmp / name / filename, lambda handle: torch.save(obj, handle))
        write_file(tmp / "trainer.pth", lambda handle: torch.save(extra, handle))
        os.replace(tmp, folder)
        for tag in tags:
            _point(root, tag, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if store.is_dir():
            _collect_garbage(root)  # the new folder too, unless a tag already points to it
        if isinstance(exc, OSError):
            raise CheckpointError(_save_failure(root, step, exc)) from None
        raise
    _collect_garbage(root)
    return folder


class _RecordingWriter:
    """A binary file that remembers the ``OSError`` its ``write`` raised.

    ``torch.save`` reports a failed write (a full disk) as an opaque ``RuntimeError`` of its zip
    writer (``[enforce fail at inline_container.cc] unexpected pos``); the recorded error says
    what happened (``ENOSPC``).
    """

    def __init__(self, handle: Any) -> None:
        self.handle, self.error = handle, None

    @property
    def name(self) -> str:
        """The file's path, as a file object names it."""
        return self.handle.name

    def write(self, data: Any) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def write_file(path: Path, dump: Callable[[Any], Any]) -> None:
    """Write one checkpoint file through :class:`_RecordingWriter`, flushed to the disk.

    Raises:
        OSError: the write failed (with its errno: ``ENOSPC`` for a full disk), even when the
            writer reported it as a ``RuntimeError``.
    """
    with open(path, "wb") as handle:
        writer = _RecordingWriter(handle)
        try:
            dump(writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise
        handle.flush()
        os.fsync(handle.fileno())


def _point(root: Path, tag: str, folder: Path) -> None:
    """Switch the tag ``root/tag`` to ``folder`` with one atomic rename of a new symlink."""
    link = root / tag
    new_link = root / f".{tag}.{uuid.uuid4().hex[:8]}.link"
    os.symlink(os.path.relpath(folder, root), new_link)
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)
    os.replace(new_link, link)


def _save_failure(root: Path, step: int, exc: OSError) -> str:
    """The one line of a failed save: what happened, and which checkpoint a resume will use."""
    what = "no space left on device" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
    previous = stored_step(root / "latest")
    kept = (f"the previous checkpoint at step {previous} is intact ({root / 'latest'})" if previous is not None
            else "no earlier checkpoint exists")
    return f"{what} while saving step {step} to {root}; {kept}"


def stored_step(tag: Path) -> Optional[int]:
    """The step of the checkpoint a tag points to, from its folder's name (None: no such checkpoint)."""
    if not tag.exists():
        return None
    match = re.fullmatch(r"step(\d+)-[0-9a-f]+", Path(os.path.realpath(tag)).name)
    return int(match.group(1)) if match else None


def checkpoint_folder(save_path: str | os.PathLike, tag: str = "latest") -> Optional[Path]:
    """The folder a resume reads: ``save_path/tag``, or None when there is no checkpoint at all.

    A tag whose target is gone (a store copied without it, a folder deleted by hand) is not
    taken for "no checkpoint", which would silently restart from step 0: the newest complete
    checkpoint in the store is used instead, and the choice is said on stderr.

    Raises:
        CheckpointError: ``tag`` is a dangling link and no complete checkpoint is left.
    """
    root = Path(save_path)
    link = root / tag
    check_tag(link)
    if link.exists():
        return link
    if not link.is_symlink():
        return None
    complete = sorted((entry for entry in (root / STORE).glob("step*") if entry.is_dir()
                       and not entry.name.endswith(".partial") and (entry / "trainer.pth").is_file()),
                      key=lambda entry: entry.name) if (root / STORE).is_dir() else []
    if not complete:
        raise CheckpointError(f"{link} points to {os.readlink(link)}, which does not exist, and no complete "
                              f"checkpoint is left in {root / STORE}; remove {link} to start from step 0")
    print(f"warning: {link} points to {os.readlink(link)}, which does not exist; resuming from the newest "
          f"complete checkpoint, {complete[-1]}", file=sys.stderr)
    return complete[-1]


def check_tag(link: Path) -> None:
    """Refuse a tag (``latest``, ``best``) that is neither a folder nor a link (a user's regular
    file or named pipe of that name): it would be taken for "no checkpoint", and the first save
    would fail only after training.

    Raises:
        CheckpointError: one line naming it.
    """
    kind = userfiles.file_kind(link)
    if kind not in ("a folder", "missing", "a broken link"):  # a dangling tag: see checkpoint_folder
        raise CheckpointError(f"{link} is {'a regular file' if kind == 'file' else kind}, not a checkpoint "
                              f"(a link to a checkpoint folder); move it out of the run folder")


def load_trainer_state(save_path: str | os.PathLike, tag: str = "latest") -> Optional[dict[str, Any]]:
    """The ``trainer.pth`` of ``save_path/tag`` (see :func:`checkpoint_folder`), or None if there is
    no such checkpoint."""
    folder = checkpoint_folder(save_path, tag)
    if folder is None or userfiles.file_kind(folder / "trainer.pth") == "missing":
        return None
    return load_file(folder / "trainer.pth")


def remove_partials(save_path: str | os.PathLike) -> None:
    """Remove what this run's interrupted saves left in the store (``*.partial`` folders): on a full
    disk they hold the space the next save needs. Another run's are kept (:func:`_ours`)."""
    root = Path(save_path)
    store = root / STORE
    if store.is_dir():
        owner = run_id(root)
        for partial in store.glob("*.partial"):
            if _ours(partial, owner, root):
                shutil.rmtree(partial, ignore_errors=True)


def load_file(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` of a checkpoint file on the CPU.

    Tensors and plain data only (and the numpy arrays of older checkpoints' RNG states): a
    file that would import anything else is refused unread.

    Raises:
        UntrustedFileError: the file would run or import code (a crafted pickle, a
            ``torch.package`` archive); one line naming the file.
        NotRegularFileError: a named pipe, socket or device (or a folder), refused unopened.
        CheckpointError: the file is missing, truncated or not a PyTorch file (one line).
    """
    path = Path(path)
    kind = userfiles.file_kind(path)
    if kind not in ("file", "missing"):  # a named pipe would block torch.load forever
        failure = NotRegularFileError(f"cannot read checkpoint file {path} (not a regular file: {kind})")
        failure.reason = f"not a regular file: {kind}"
        raise failure
    try:
        with torch.serialization.safe_globals(list(_LEGACY_GLOBALS)):
            return safe_arrays.plain(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # a corrupt or hostile file is a user-facing error, not a traceback
        raise _load_failure(path, exc) from None


def _load_failure(path: Path, exc: Exception) -> CheckpointError:
    """The one-line error of a file ``torch.load(weights_only=True)`` refused or could not read;
    its ``reason`` attribute is the message without the file's name (for callers that name it)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if _is_torch_package(path):
        error, reason = UntrustedFileError, ("it is a torch.package archive, which runs the code it carries; "
                                             "pass a weights file written with save(path, package=False)")
    elif isinstance(exc, pickle.UnpicklingError) and safe_arrays.refusal(str(exc)):
        error, reason = CheckpointError, f"{safe_arrays.refusal(str(exc))} (refused before allocating it)"
    elif isinstance(exc, pickle.UnpicklingError) and found:
        error, reason = UntrustedFileError, (f"it would import {found.group(1)} (a checkpoint holds tensors and "
                                             "plain data only, and is never allowed to run code)")
    elif isinstance(exc, pickle.UnpicklingError):
        error, reason = CheckpointError, "not a PyTorch checkpoint of tensors and plain data"
    elif isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        error, reason = CheckpointError, exc.strerror or str(exc)
    else:  # a truncated zip, random bytes, ...: the first sentence of torch's message
        first = " ".join(str(exc).split()).split(". ")[0][:120] or type(exc).__name__
        error, reason = CheckpointError, f"truncated, or not a PyTorch checkpoint: {first}"
    if error is UntrustedFileError:
        failure = error(f"refusing to load {path}: {reason}")
    else:
        failure = error(f"cannot read checkpoint file {path} ({reason})")
    failure.reason = reason
    return failure


def _is_torch_package(path: Path) -> bool:
    """Whether ``path`` is a ``torch.package`` archive (a zip with a ``.data/version`` record and
    no ``data.pkl``), which ``torch.load`` cannot read and audiotools would import and run."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(name.endswith(".data/version") for name in names) and not any(
        name.endswith("data.pkl") for name in names)


#: Elements a non-strict load may build that the file does not hold (2^24: 64 MiB of float32).
MAX_UNLOADED_ELEMENTS = 2 ** 24


class ArgumentsMismatch(ValueError):
    """A weights file's constructor arguments do not describe its own tensors (one line)."""


class _RegistrationBudget:
    """Stops a model's construction once it registers more parameters and buffers than ``limit``:
    a file's ``n_codebooks = 10**9`` would otherwise build modules for minutes, even on the
    meta device."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count, self.handles = limit, 0, []

    def __enter__(self) -> "_RegistrationBudget":
        from torch.nn.modules import module

        self.handles = [module.register_module_parameter_registration_hook(self._count),
                        module.register_module_buffer_registration_hook(self._count)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()

    def _count(self, *args: Any) -> None:
        self.count += 1
        if self.count > self.limit:
            raise ArgumentsMismatch(f"its constructor arguments build more than {self.limit} tensors; "
                                    "the file holds far fewer")


def check_arguments(cls: type, kwargs: dict[str, Any], state: dict[str, Any], strict: bool = True) -> None:
    """Check that constructor arguments read from a weights file describe the file's own tensors,
    before ``cls(**kwargs)`` allocates anything.

    Constructor arguments come from the file's metadata: a 1.3 kB file may say ``codebook_size =
    2**27`` (a 4 GB codebook). The model is first built on the meta device (no memory), within a
    budget of registered tensors (4 x the file's + 1024: ``n_codebooks = 10**6`` stops there), and
    every tensor it has is compared with the file's before the real one is built.

    Args:
        cls: the model class.
        kwargs: the constructor arguments (from the file).
        state: the file's state dict.
        strict: every tensor of the model must be in the file; otherwise the ones the file lacks
            may hold at most :data:`MAX_UNLOADED_ELEMENTS` elements.

    Raises:
        ArgumentsMismatch: the arguments do not fit the file's tensors (one line).
        Exception: whatever the constructor raises for arguments it rejects.
    """
    with _RegistrationBudget(4 * len(state) + 1024), torch.device("meta"):
        meta = cls(**kwargs)
    if strict:  # the same words as for a real model's mismatch (state_mismatch)
        reason = state_mismatch(meta, state)
        if reason:
            raise ArgumentsMismatch(reason)
        return
    unloaded = 0
    for key, value in meta.state_dict().items():
        if not torch.is_tensor(value):
            continue
        found = state.get(key)
        if found is None:
            unloaded += value.numel()
        elif not torch.is_tensor(found) or found.shape != value.shape:
            shape = tuple(found.shape) if torch.is_tensor(found) else type(found).__name__
            raise ArgumentsMismatch(f"{key} has shape {shape}, the model {tuple(value.shape)}")
    if unloaded > MAX_UNLOADED_ELEMENTS:
        raise ArgumentsMismatch(f"its constructor arguments build {unloaded} elements the file does not hold")


class NotWeightsError(CheckpointError):
    """A readable file that is not a model weights file (no ``state_dict`` and metadata kwargs)."""


def read_weights(path: str | os.PathLike) -> dict[str, Any]:
    """An audiotools weights file (``save(path, package=False)``), tensors only, checked for form.

    Args:
        path: the file.

    Returns:
        ``{"state_dict": {...}, "metadata": {"kwargs": {...}, ...}}``.

    Raises:
        UntrustedFileError, CheckpointError: see :func:`load_file`.
        NotWeightsError: the file holds something else (one line naming it).
    """
    blob = load_file(path)
    metadata = blob.get("metadata") if isinstance(blob, dict) else None
    if not (isinstance(blob.get("state_dict") if isinstance(blob, dict) else None, dict)
            and isinstance(metadata, dict) and isinstance(metadata.get("kwargs"), dict)):
        error = NotWeightsError(f"{path} is not a model weights file (no state_dict and metadata kwargs)")
        error.reason = "not a model weights file (no state_dict and metadata kwargs)"
        raise error
    return blob


def state_mismatch(model: torch.nn.Module, state: dict[str, Any]) -> str:
    """Why ``state`` does not fit ``model`` exactly, in one line ('' when it does).

    Missing and unexpected keys and the first tensor of another shape are named before torch's
    own (long, multi-line) message is needed.
    """
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    parts = [f"{len(missing)} missing, e.g. {missing[0]}"] if missing else []
    parts += [f"{len(unexpected)} unexpected, e.g. {unexpected[0]}"] if unexpected else []
    if parts:
        return "; ".join(parts)
    for key, value in state.items():
        expected = own[key]
        if torch.is_tensor(expected) and (not torch.is_tensor(value) or value.shape != expected.shape):
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            return f"{key} has shape {shape}, the model {tuple(expected.shape)}"
    return ""


def build_model(cls: type, blob: dict[str, Any], path: str | os.PathLike, strict: bool = True,
                **overrides: Any) -> Any:
    """``cls`` built from the constructor arguments a weights file records, filled with its tensors.

    Args:
        cls: the model class (``DiVeQDAC``, ``dac.model.DAC``, ``VQVAE``, ...).
        blob: what :func:`read_weights` returned.
        path: the file, for messages.
        strict: every tensor of the model must be in the file and vice versa.
        **overrides: constructor arguments replacing the recorded ones.

    Returns:
        The model (train mode, as ``BaseModel.load``), with ``metadata`` set.

    Raises:
        CheckpointError: arguments the class rejects, or tensors that do not fit them (one line).
    """
    parameters = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    # audiotools records every argument it finds; a class with **options takes them all.
    kwargs = {key: value for key, value in {**blob["metadata"]["kwargs"], **overrides}.items()
              if takes_any or key in parameters}
    try:
        check_arguments(cls, kwargs, blob["state_dict"], strict)  # before anything is allocated
        model = cls(**kwargs)
        reason = state_mismatch(model, blob["state_dict"]) if strict else ""
        if not reason:
            model.load_state_dict(blob["state_dict"], strict=strict)
    except Exception as exc:  # another class's or configuration's file: one line, not a traceback
        reason = " ".join(str(exc).replace(f"for {cls.__name__}:", "").split())[:160]
    if reason:
        error = CheckpointError(f"{path} is not a {cls.__name__} weights file of a matching configuration "
                                f"({reason})")
        error.reason = reason  # without the file's name, for callers that name it
        raise error
    model.metadata = blob["metadata"]
    return model


def load_model(cls: type, path: str | os.PathLike, strict: bool = True, **overrides: Any) -> Any:
    """An audiotools ``BaseModel`` subclass built from a weights file, safely: the package's one
    model loader (:func:`read_weights`, then :func:`build_model`).

    ``BaseModel.load`` first tries the file as a ``torch.package`` archive, whose unpickling
    imports and runs the code the archive carries; this reads tensors only and builds the model
    from the constructor arguments recorded in the file's metadata.

    Args:
        cls: the model class (``DiVeQDAC``, ``dac.model.DAC``, ``VQVAE``, ...).
        path: a weights file written by ``save(path, package=False)``.
        strict: every tensor of the model must be in the file and vice versa.
        **overrides: constructor arguments replacing the recorded ones.

    Returns:
        The model (train mode, as ``BaseModel.load``), with ``metadata`` set.

    Raises:
        CheckpointError: an unreadable, hostile or foreign file (one line naming it).
    """
    try:
        blob = read_weights(path)
    except NotWeightsError as exc:
        raise NotWeightsError(f"{exc}; expected a file written by {cls.__name__}.save(path, package=False)") from None
    return build_model(cls, blob, path, strict, **overrides)


def load_weights(model: torch.nn.Module, path: str | os.PathLike, identity_keys: Sequence[str]) -> dict[str, Any]:
    """Load an audiotools ``BaseModel`` weights file into ``model``.

    The identity keys are compared before any tensor is loaded, so a checkpoint of another
    configuration is named by what differs (``method``, ``codebook_size``, ...) rather than by
    the first tensor whose shape happens to differ.

    Args:
        model: the (unwrapped) model to fill.
        path: a ``weights.pth`` written by ``BaseModel.save(..., package=False)``.
        identity_keys: constructor arguments that must agree, checked in this order (each track
            declares its own: ``TrainLoop.identity_keys``); a key is checked only when the
            checkpoint recorded it and the model has it.

    Returns:
        The file's metadata (``{"kwargs": ...}``).

    Raises:
        CheckpointError: unreadable file, an identity key that differs, or weights that do not
            fit the model (one line).
    """
    blob = load_file(path)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise CheckpointError(f"{path} is not a model weights file")
    metadata = blob.get("metadata") or {}
    saved = metadata.get("kwargs", {})
    for key in identity_keys:
        if key in saved and hasattr(model, key) and saved[key] != getattr(model, key):
            raise CheckpointError(
                f"checkpoint {path} has {key}={saved[key]!r} but the configuration says {getattr(model, key)!r}")
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {path} was written by another configuration ({first[0] if first else exc})") from None
    return metadata


class SafeLoad:
    """Mixin for audiotools ``BaseModel`` subclasses: ``load`` is :func:`load_model`.

    Put it before ``BaseModel`` (``class VQVAE(SafeLoad, BaseModel)``): ``BaseModel.load`` tries
    every file as a ``torch.package`` archive first, which runs the code the archive carries.
    """

    @classmethod
    def load(cls, location: str | os.PathLike, *args: Any, package_name: Optional[str] = None,
             strict: bool = False, **kwargs: Any) -> Any:
        """``BaseModel.load``'s signature (``package_name`` is ignored: packages are refused).

        Raises:
            CheckpointError: an unreadable, hostile or foreign file (one line naming it).
        """
        return load_model(cls, location, strict=strict, **kwargs)


@dataclass(frozen=True)
class ResolvedWeights:
    """Where :func:`resolve_weights` found a model's weights.

    Attributes:
        path: the ``weights.pth`` file.
        model: the model folder name it sits in (``diveqdac``, ``vqvae``, ...), or None for a
            bare file outside a run checkpoint.
        run: the run folder (``save_path``) it belongs to; for a bare file, its folder.
        tag: the checkpoint tag it was found under (``best``, ``latest``, ``10000``), or None.
        step: the training step of that checkpoint (from its stored folder's name), or None.
    """

    path: Path
    model: Optional[str]
    run: Path
    tag: Optional[str] = None
    step: Optional[int] = None

    def describe(self) -> str:
        """One line for stderr: which weights a command uses, e.g. ``using runs/x/best/diveqdac/weights.pth
        (checkpoint best of runs/x, step 1200)``."""
        if self.tag is None:
            return f"using {self.path} (a weights file outside a run checkpoint: step unknown)"
        step = f"step {self.step}" if self.step is not None else "step unknown"
        return f"using {self.path} (checkpoint {self.tag} of {self.run}, {step})"


def resolve_weights(path: str | os.PathLike, models: Sequence[str], tags: Sequence[str] = TAGS,
                    bare: bool = True) -> ResolvedWeights:
    """Find a model's weights from what a user passes: a weights file or a folder.

    A folder is searched for ``<tag>/<model>/weights.pth`` (tags in order, then models in
    order), then ``<model>/weights.pth`` (a tag folder itself) and, with ``bare``,
    ``weights.pth``.

    Args:
        path: a weights file, a run folder or a tag folder.
        models: accepted model folder names, preferred first.
        tags: checkpoint tags to look in, preferred first.
        bare: accept a file (or a folder's ``weights.pth``) outside any ``<model>`` folder.

    Returns:
        The :class:`ResolvedWeights`.

    Raises:
        FileNotFoundError: nothing fitting at ``path`` (a one-line message, without the path).
    """
    path = Path(path)
    kind = userfiles.file_kind(path)
    if kind == "file":
        if path.parent.name in models:
            return _resolved(path)
        if not bare:
            raise FileNotFoundError(f"expected a weights file inside a {'/'.join(models)} folder of a run checkpoint")
        return ResolvedWeights(path, None, path.parent)
    if kind == "missing":
        raise FileNotFoundError("no such file or directory")
    if kind != "a folder":
        raise FileNotFoundError(f"not a weights file or a folder ({kind})")
    candidates = [Path(tag) / name / WEIGHTS for tag in tags for name in models]
    candidates += [Path(name) / WEIGHTS for name in models]
    if bare:
        candidates.append(Path(WEIGHTS))
    for relative in candidates:
        found = userfiles.file_kind(path / relative)
        if found not in ("file", "missing"):  # refused here, not taken for "no weights"
            raise FileNotFoundError(f"{relative} is not a regular file ({found})")
        if found == "file":
            return _resolved(path / relative) if len(relative.parts) > 1 else ResolvedWeights(path / relative, None, path)
    raise FileNotFoundError(f"no weights file in this folder (looked for {', '.join(map(str, candidates))})")


def _resolved(weights: Path) -> ResolvedWeights:
    """A weights file in DAC's layout, ``<run>/<tag>/<model>/weights.pth``, with its tag and step."""
    tag_folder = weights.parents[1]
    return ResolvedWeights(weights, weights.parent.name, weights.parents[2], tag_folder.name,
                           _checkpoint_step(tag_folder))


def _checkpoint_step(folder: Path) -> Optional[int]:
    """The step of a checkpoint folder: from its stored name, else its ``trainer.pth`` (None: neither)."""
    step = stored_step(folder)
    if step is not None or not (folder / "trainer.pth").is_file():
        return step
    try:
        state = load_file(folder / "trainer.pth")
    except CheckpointError:
        return None  # the weights may still be usable; the step is only reported
    value = state.get("step") if isinstance(state, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ----------------------------------------------------------------------------- internals


def run_id(save_path: str | os.PathLike, create: bool = False) -> Optional[str]:
    """The id of the run in ``save_path`` (its ``.run_id`` file), which its checkpoints carry.

    Args:
        save_path: the run folder.
        create: make one if there is none (at a run's first save). The checkpoints the run's
            tags point to then become its own: folders written before checkpoints named their run.

    Returns:
        The id, or None when the run has none and ``create`` is off.
    """
    root = Path(save_path)
    path = root / RUN_ID
    try:
        text = path.read_text().strip() if path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    if re.fullmatch(r"[0-9a-f]{32}", text) or not create:
        return text or None
    ident = uuid.uuid4().hex
    with atomic_path(path) as tmp:
        tmp.write_text(ident + "\n")
    store = os.path.realpath(root / STORE)
    for tag in root.iterdir():
        target = Path(os.path.realpath(tag))
        if tag.is_symlink() and str(target.parent) == store and target.is_dir() and _owner(target) is None:
            (target / OWNER).write_text(ident + "\n")
    return ident


def _owner(folder: Path) -> Optional[str]:
    """The run id a checkpoint folder carries (None: none, unreadable)."""
    try:
        return (folder / OWNER).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _ours(entry: Path, owner: Optional[str], root: Path) -> bool:
    """Whether ``entry`` of the store is a folder this run wrote.

    A link is never followed, and a folder that names another run (or none) is not ours; except
    an interrupted save's ``.partial`` folder that names no run in a store that is the run's own
    folder (not a link): leftovers of saves older than owner files.
    """
    if entry.is_symlink() or not entry.is_dir():
        return False
    owner_of = _owner(entry)
    if owner_of is not None:
        return owner_of == owner
    return entry.name.endswith(".partial") and not (root / STORE).is_symlink()


def _collect_garbage(root: Path) -> None:
    """Remove this run's stored checkpoints that none of its tags points to, and leftovers of its
    interrupted saves; nothing another run (or a user) put in the store, and no link's target."""
    store = root / STORE
    owner = run_id(root)
    referenced = {os.path.realpath(p) for p in root.iterdir() if p.is_symlink()}
    for entry in store.iterdir():
        if os.path.realpath(entry) not in referenced and _ours(entry, owner, root):
            shutil.rmtree(entry, ignore_errors=True)
    for stale in root.glob(".*.link"):
        stale.unlink(missing_ok=True)
