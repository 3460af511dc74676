"""Pieces of the codec evaluation (the whole path runs in tests/scripts/test_evaluate.py)."""
import math

import pytest

from dac_diveq.codec.evaluate import by_bitrate, resolve_weights
from dac_diveq.report.eval_io import EvalError


def test_means_per_ladder_step_skip_failed_metrics():
    rows = [{"file": "a", "n_quantizers": 1, "bitrate_kbps": 0.5, "pesq_wb": 2.0, "stoi": math.nan},
            {"file": "b", "n_quantizers": 1, "bitrate_kbps": 0.5, "pesq_wb": 3.0, "stoi": math.nan},
            {"file": "a", "n_quantizers": 2, "bitrate_kbps": 1.0, "pesq_wb": 4.0, "stoi": 0.9}]
    table = by_bitrate(rows, ["pesq_wb", "stoi"], "n_quantizers")
    assert table == {"1": {"bitrate_kbps": 0.5, "n_files": 2, "pesq_wb": 2.5, "stoi": None},
                     "2": {"bitrate_kbps": 1.0, "n_files": 1, "pesq_wb": 4.0, "stoi": 0.9}}
    assert list(by_bitrate(rows, [], "bitrate_kbps")) == ["0.5", "1"]  # Opus: keyed by kbps


def test_weights_resolve_to_the_best_checkpoint_and_its_run(tmp_path):
    for tag in ("latest", "best"):
        (tmp_path / tag / "diveqdac").mkdir(parents=True)
        (tmp_path / tag / "diveqdac" / "weights.pth").write_bytes(b"w")
    assert resolve_weights(tmp_path) == (tmp_path / "best" / "diveqdac" / "weights.pth", tmp_path)
    assert resolve_weights(tmp_path / "latest" / "diveqdac" / "weights.pth")[1] == tmp_path
    with pytest.raises(EvalError, match="no such file or directory"):
        resolve_weights(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="no weights file in this folder"):
        resolve_weights(tmp_path / "empty")
