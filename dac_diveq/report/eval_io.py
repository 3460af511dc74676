"""What every evaluation writes: ``per_file.csv`` + ``summary.json`` (atomically), with the
provenance the reports quote (commit, configuration hash, training seed)."""
from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Optional

from ..training.checkpoint import atomic_path


def read_seed(weights: Path) -> Optional[int]:
    """The ``seed`` recorded in the run's ``trainer.pth`` config text, or None."""
    trainer = weights.parent.parent / "trainer.pth"
    if not trainer.is_file():
        return None
    try:
        import torch

        config = torch.load(trainer, map_location="cpu", weights_only=False).get("config")
    except Exception:
        return None
    if isinstance(config, str):
        try:
            config = ast.literal_eval(config)
        except Exception:
            found = re.findall(r"['\"]([\w.]*seed)['\"]\s*:\s*(-?\d+)", config)
            return int(found[0][1]) if found else None
    if isinstance(config, dict):
        for key, value in config.items():
            if (key == "seed" or str(key).endswith(".seed")) and isinstance(value, int):
                return value
    return None


def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def config_hash(kwargs: dict) -> str:
    text = json.dumps(kwargs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, newline="")


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_outputs(folder: Path, rows: list[dict], columns: list[str], summary: dict) -> None:
    """Write ``folder/per_file.csv`` (``columns``) and ``folder/summary.json``, each atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    write_atomic(folder / "per_file.csv", buf.getvalue())
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2, default=_json_value) + "\n")
