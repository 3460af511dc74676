"""Pieces of the codec evaluation (the whole path runs in tests/scripts/test_evaluate.py)."""
import math

from dac_diveq.codec.evaluate import by_bitrate


def test_means_per_ladder_step_skip_failed_metrics():
    rows = [{"file": "a", "n_quantizers": 1, "bitrate_kbps": 0.5, "pesq_wb": 2.0, "stoi": math.nan},
            {"file": "b", "n_quantizers": 1, "bitrate_kbps": 0.5, "pesq_wb": 3.0, "stoi": math.nan},
            {"file": "a", "n_quantizers": 2, "bitrate_kbps": 1.0, "pesq_wb": 4.0, "stoi": 0.9}]
    table = by_bitrate(rows, ["pesq_wb", "stoi"], "n_quantizers")
    assert table == {"1": {"bitrate_kbps": 0.5, "n_files": 2, "pesq_wb": 2.5, "stoi": None},
                     "2": {"bitrate_kbps": 1.0, "n_files": 1, "pesq_wb": 4.0, "stoi": 0.9}}
    assert list(by_bitrate(rows, [], "bitrate_kbps")) == ["0.5", "1"]  # Opus: keyed by kbps
