"""Quality against training steps (the ``long`` size): seeds are the unit, checked by hand."""
import math

import pytest

from dac_diveq.report.runs import Run
from dac_diveq.report.steps import steps_curves, write_steps


def _run(tmp_path, method, seed, step, stoi):
    """A speech run at 12 quantizers scoring ``stoi`` (file -> value) at checkpoint ``step``."""
    rows = [{"file": f, "n_quantizers": 12, "bitrate_kbps": 6.0, "stoi": v} for f, v in stoi.items()]
    return Run(tmp_path / f"{method}{seed}_{step}", {"method": method, "seed": seed, "step": step}, rows, ["stoi"])


def test_each_point_is_the_mean_over_seeds_of_per_seed_file_means(tmp_path):
    runs = [_run(tmp_path, "diveq", 0, 1000, {"a": 0.5, "b": 0.7}),   # seed mean 0.6
            _run(tmp_path, "diveq", 1, 1000, {"a": 0.8, "b": 0.8}),   # seed mean 0.8
            _run(tmp_path, "diveq", 0, 2000, {"a": 0.9, "b": 0.7}),
            _run(tmp_path, "ste", 0, 1000, {"a": 0.4, "b": math.nan})]  # a failed file is left out
    curves = steps_curves(runs, "stoi", 12)
    assert list(curves) == ["diveq", "ste"] and [s for s, _ in curves["diveq"]] == [1000, 2000]
    first = curves["diveq"][0][1]
    # two seed means 0.6 and 0.8: mean 0.7, half-width t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.1414 / 1.414
    assert first.n == 2 and first.mean == pytest.approx(0.7) and first.half_width == pytest.approx(12.7062 * 0.1, rel=1e-4)
    assert curves["diveq"][1][1].n == 1 and math.isnan(curves["diveq"][1][1].half_width)
    assert curves["ste"][0][1].mean == pytest.approx(0.4)
    text = write_steps(runs, ["stoi"], 12, "12 quantizers", tmp_path / "out")
    assert "| diveq | 1000 | 2 | 0.700 ± 1.271 |" in text and "| diveq | 2000 | 1 | 0.800 |" in text
    assert (tmp_path / "out" / "steps_stoi.png").stat().st_size > 0 and "](steps_stoi.png)" in text


def test_a_run_without_its_step_is_refused(tmp_path):
    run = _run(tmp_path, "diveq", 0, None, {"a": 0.5})
    with pytest.raises(ValueError, match="records no training step"):
        steps_curves([run], "stoi", 12)
