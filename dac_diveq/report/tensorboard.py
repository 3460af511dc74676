"""Training curves from TensorBoard logs, or from a trainer checkpoint's validation history."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ..training.userfiles import file_kind
from .runs import read_text, reading

Curve = tuple[np.ndarray, np.ndarray]


def _event_dirs(log_dir: Path) -> list[Path]:
    return sorted({p.parent for p in log_dir.rglob("events.out.tfevents.*")})


def _merge(points: dict[int, float]) -> Curve:
    steps = np.array(sorted(points), dtype=float)
    return steps, np.array([points[int(s)] for s in steps], dtype=float)


def read_scalars(log_dir: Path | str, tags: Sequence[str]) -> dict[str, Curve]:
    """Scalars of the given tags from every event file under ``log_dir``.

    A step logged twice (a resumed run) keeps the value of the newest event file.

    Args:
        log_dir: a TensorBoard log folder (searched recursively).
        tags: scalar tags, e.g. ``val/mel/loss``.

    Returns:
        tag -> (steps, values), sorted by step; tags never logged are absent.
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return {}
    points: dict[str, dict[int, float]] = {}
    for folder in _event_dirs(log_dir):
        for event_file in sorted(folder.glob("events.out.tfevents.*"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
            acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
            acc.Reload()
            available = set(acc.Tags().get("scalars", []))
            for tag in tags:
                if tag in available:
                    for event in acc.Scalars(tag):
                        points.setdefault(tag, {})[int(event.step)] = float(event.value)
    return {tag: _merge(p) for tag, p in points.items() if p}


def history_scalars(checkpoint: Path | str, tags: Sequence[str]) -> dict[str, Curve]:
    """Validation curves from ``trainer.pth``'s ``history`` (a list of {"step", scores}).

    Only ``val/...`` tags can be found there: ``val/mel/loss`` is read as key ``mel/loss``.

    Args:
        checkpoint: path of ``<save_path>/latest/trainer.pth``.
        tags: scalar tags.

    Returns:
        tag -> (steps, values); empty when the file or the keys are missing, or it is unreadable.

    Raises:
        CheckpointError (an ``UntrustedFileError``): the file would run code when loaded.
    """
    checkpoint = Path(checkpoint)
    if file_kind(checkpoint) == "missing":
        return {}
    # torch: only for this fallback
    from ..training.checkpoint import CheckpointError, NotRegularFileError, UntrustedFileError, load_file

    try:
        state = load_file(checkpoint)
    except (UntrustedFileError, NotRegularFileError):
        raise
    except CheckpointError:
        return {}
    history = state.get("history", []) if isinstance(state, dict) else []
    out: dict[str, Curve] = {}
    with reading(checkpoint):
        if not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
            raise TypeError("its history is not a list of mappings")
        for tag in tags:
            if not tag.startswith("val/"):
                continue
            key = tag[len("val/"):]
            points = {int(h["step"]): float(h[key]) for h in history if key in h and "step" in h}
            if points:
                out[tag] = _merge(points)
    return out


#: File beside an evaluation's ``summary.json`` that keeps its run's training curves, so an
#: evaluation copied away from the run (a committed report's ``runs/``) still has them.
CURVES_FILE = "curves.json"


def write_curves(path: Path | str, curves: dict[str, Curve]) -> Path:
    """Save curves as ``{tag: [[step, value], ...]}`` JSON (small: what a report plots)."""
    import json

    path = Path(path)
    data = {tag: [[int(s), float(v)] for s, v in zip(*curve)] for tag, curve in curves.items()}
    path.write_text(json.dumps(data, indent=0) + "\n")
    return path


def read_curves(path: Path | str, tags: Sequence[str]) -> dict[str, Curve]:
    """Curves of ``tags`` from a :func:`write_curves` file (empty when it is missing)."""
    import json

    path = Path(path)
    if file_kind(path) == "missing":
        return {}
    text = read_text(path)
    with reading(path):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(f"a {type(data).__name__}, not a mapping of tags to [step, value] lists")
        curves = {}
        for tag in tags:
            points = data.get(tag)
            if points:
                if not (isinstance(points, list) and all(isinstance(p, list) and len(p) == 2 for p in points)):
                    raise TypeError(f"{tag} is not a list of [step, value] pairs")
                curves[tag] = (np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float))
    return curves


def training_curves(log_dir: Path, checkpoint: Path, tags: Sequence[str],
                    curves_file: Optional[Path] = None) -> tuple[dict[str, Curve], Optional[str]]:
    """Curves from the TensorBoard logs, else from the checkpoint history, else from a saved
    :data:`CURVES_FILE`.

    Args:
        log_dir: ``<save_path>/logs``.
        checkpoint: ``<save_path>/latest/trainer.pth``.
        tags: scalar tags.
        curves_file: ``<eval_dir>/curves.json``, if any.

    Returns:
        (tag -> curve, source description or None when none had any of the tags).
    """
    curves = read_scalars(log_dir, tags)
    if curves:
        return curves, f"TensorBoard ({log_dir})"
    curves = history_scalars(checkpoint, tags)
    if curves:
        return curves, f"checkpoint history ({checkpoint})"
    if curves_file is not None:
        curves = read_curves(curves_file, tags)
        if curves:
            return curves, f"saved curves ({curves_file})"
    return {}, None
