"""Hostile files for the reliability probes: pickles whose loading would run a shell command.

Every probe checks that its marker file never appears: a loader that unpickled the payload
would have created it (``touch``) before any error could be raised.
"""
import os
import pickle
from pathlib import Path

import pytest
import torch


class Payload:
    """Unpickling this runs ``touch MARKER`` (what a crafted checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_checkpoint(path: Path, marker: Path, kind: str = "torch") -> Path:
    """Write a file whose unpickling would ``touch marker``.

    Args:
        path: where to write it.
        marker: the file the payload would create.
        kind: ``"torch"`` (``torch.save``'s zip format, what a real checkpoint looks like),
            ``"pickle"`` (a bare pickle, torch's legacy format) or ``"package"`` (a
            ``torch.package`` archive, what audiotools' ``BaseModel.load`` tries first).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    if kind == "torch":
        torch.save({"step": 1, "best": 0.0, "rng": Payload(marker), "state_dict": {}, "metadata": {}}, path)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(Payload(marker)))
    elif kind == "package":
        from torch.package import PackageExporter

        with PackageExporter(str(path)) as exporter:
            exporter.extern(["os", "posix"])
            exporter.save_pickle("DiVeQDAC", "DiVeQDAC.pth", Payload(marker))
    else:
        raise ValueError(kind)
    return path


@pytest.fixture
def marker(tmp_path):
    """The file a payload would create; asserted absent after the test."""
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a crafted file ran its code"
