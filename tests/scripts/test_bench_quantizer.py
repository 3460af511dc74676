"""Smoke test of scripts/bench_quantizer.py (and dac_diveq.bench.quantizer behind it): it runs end
to end and reports every method.

No timing assertions: the numbers depend on the machine and its load.
"""
import pytest

from dac_diveq.bench.measure import frames
from dac_diveq.bench.quantizer import CORE_PAIRS
from tests.conftest import load_script

pytestmark = pytest.mark.slow  # runs the benchmark

import diveq  # noqa: E402,F401  (the test extra: the oracle must be there)


@pytest.mark.timeout(120)
def test_quick_run_reports_every_method(capsys):
    from dac_diveq.quantize import METHODS

    bench = load_script("bench_quantizer")
    assert bench.main(["--quick", "--repeats", "1", "--warmup", "0", "--device", "cpu",
                       "--batch", "2", "--core-n", "512"]) == 0
    out = capsys.readouterr().out

    assert "DAC 44.1 kHz" in out and "DAC 16 kHz" in out
    assert "batch 2 x 33 frames" in out and "batch 2 x 19 frames" in out  # ceil(0.38 s * sr / hop)
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    for method in METHODS:
        # one row per DAC shape
        assert sum(line.startswith(f"| {method} |") for line in rows) == 2, method
    assert sum(line.startswith("| dac (native") for line in rows) == 2
    for method, ref_name, _ in CORE_PAIRS:
        assert any(f'"{method}")`' in line and f"diveq.{ref_name}" in line for line in rows), method


def test_frames_match_dac_shapes():
    assert frames(0.38, 44100, 512) == 33
    assert frames(0.38, 16000, 320) == 19  # exactly 19.0: no float round-up to 20


def test_bad_options_are_one_line_errors(capsys):
    bench = load_script("bench_quantizer")
    assert bench.main(["--repeats", "0"]) == 2
    assert capsys.readouterr().err == "error: --repeats must be >= 1 and --warmup >= 0\n"
