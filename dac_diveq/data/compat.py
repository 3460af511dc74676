"""Compatibility shims between ``descript-audiotools`` 0.7.2 and current torchaudio.

audiotools' ``audiotools.core.util.info`` calls ``torchaudio.info`` (falling back to
``torchaudio.backend.soundfile_backend.info``); torchaudio removed both in 2.9. Every
path-based excerpt (``AudioSignal.excerpt`` / ``salient_excerpt``) and therefore DAC's
training data pipeline (``AudioLoader`` / ``AudioDataset``) fails with an
``AttributeError`` there.

:func:`patch_audiotools` replaces that one function with :func:`audio_info`, a
soundfile-based reader returning the attributes audiotools uses. It does nothing when
``torchaudio.info`` exists, and nothing when audiotools is not installed.
"""
from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass
from typing import Callable, Optional, Union

__all__ = ["AudioInfo", "audio_info", "patch_audiotools", "shim_active"]

PathLike = Union[str, "os.PathLike[str]"]

# audiotools' function as found before patching (None until patch_audiotools() replaced it).
_ORIGINAL_INFO: Optional[Callable] = None


@dataclass(frozen=True)
class AudioInfo:
    """Metadata of an audio file, with the fields of audiotools' ``util.Info``."""

    sample_rate: int
    num_frames: int
    num_channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.sample_rate


def audio_info(audio_path: PathLike) -> AudioInfo:
    """Read sample rate, frame count and channel count of ``audio_path`` with soundfile.

    Raises ``FileNotFoundError`` when the file does not exist and ``RuntimeError`` when
    it exists but soundfile cannot read it (a directory, an unsupported or corrupt file);
    both messages name the path.
    """
    import soundfile

    path = os.fspath(audio_path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "audio file not found", path)
    if os.path.isdir(path):
        raise RuntimeError(f"cannot read audio metadata from {path!r}: it is a directory")
    try:
        meta = soundfile.info(path)
    except Exception as exc:  # soundfile.LibsndfileError (a RuntimeError), TypeError, ...
        raise RuntimeError(f"cannot read audio metadata from {path!r}: {exc}") from exc
    if meta.samplerate <= 0:
        raise RuntimeError(f"cannot read audio metadata from {path!r}: sample rate {meta.samplerate}")
    return AudioInfo(
        sample_rate=int(meta.samplerate),
        num_frames=int(meta.frames),
        num_channels=int(meta.channels),
    )


# Marks the replacement so that repeated patching is recognised.
audio_info._dac_diveq_shim = True  # type: ignore[attr-defined]


def shim_active() -> bool:
    """True when audiotools' ``util.info`` is currently this module's replacement."""
    util = sys.modules.get("audiotools.core.util")
    return util is not None and getattr(util.info, "_dac_diveq_shim", False)


def patch_audiotools() -> bool:
    """Install :func:`audio_info` as ``audiotools.core.util.info`` if torchaudio lacks ``info``.

    Idempotent. Also rebinds ``info`` in any already imported ``audiotools`` / ``dac``
    module that holds audiotools' original function under that name. Returns whether
    the shim is active afterwards.
    """
    global _ORIGINAL_INFO
    try:
        import torchaudio
    except ImportError:  # no torchaudio: audiotools cannot be imported either
        return False
    if hasattr(torchaudio, "info"):
        return shim_active()
    try:
        from audiotools.core import util
    except ImportError:  # audiotools is optional for the model-agnostic parts
        return False

    original = util.info
    if getattr(original, "_dac_diveq_shim", False):
        return True
    _ORIGINAL_INFO = original
    for name, module in list(sys.modules.items()):
        if module is None or not (name in ("audiotools", "dac") or name.startswith(("audiotools.", "dac."))):
            continue
        if getattr(module, "info", None) is original:
            setattr(module, "info", audio_info)
    util.info = audio_info
    return True
