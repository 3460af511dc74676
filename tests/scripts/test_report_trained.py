"""train.py -> evaluate.py -> report.py on two tiny trained runs (ste and diveq)."""
import json

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_python, tiny_codec_conf

pytestmark = pytest.mark.slow  # trains, evaluates and reports through the scripts


def _run(*args):
    result = run_python(args, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_report_from_two_trained_and_evaluated_runs(tmp_path):
    data = tmp_path / "speech"
    data.mkdir()
    sr = 16000
    t = np.arange(int(1.2 * sr)) / sr
    for i in range(3):
        f0 = 100 + 30 * i + 15 * np.sin(2 * np.pi * 3 * t)
        wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / sr) / k for k in range(1, 8))
        sf.write(data / f"utt{i}.wav", (0.25 * wave * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32), sr)
    evals = []
    for method in ("ste", "diveq"):
        conf = tmp_path / f"{method}.yml"
        conf.write_text(tiny_codec_conf(method, data, data, **{"DiVeQDAC.n_codebooks": 2,
                                                               "DiVeQDAC.codebook_size": 32, "valid_freq": 2}))
        run = tmp_path / "runs" / method
        _run("scripts/train.py", "--args.load", conf, "--save_path", run)
        _run("scripts/evaluate.py", "--weights_path", run, "--input", data, "--output", run / "eval", "--workers", "1")
        summary = json.loads((run / "eval" / "summary.json").read_text())
        assert summary["method"] == method and set(summary["by_bitrate"]) == {"1", "2"}
        evals.append(run / "eval")
    out = tmp_path / "report"
    _run("scripts/report.py", "--runs", *evals, "--output", out, "--title", "tiny")
    text = (out / "README.md").read_text()
    assert "diveq" in text and "ste" in text and "vs ste" in text
    pngs = list(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
