"""scripts/evaluate.py end to end with a tiny random DiVeQDAC, real (synthetic or ARCTIC) speech and
one corrupt file."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dac_diveq.report.eval_io import SUMMARY_KEYS
from tests.conftest import ROOT, run_python

pytestmark = pytest.mark.slow  # launches the evaluation script

SCRIPT = ROOT / "scripts" / "evaluate.py"
ARCTIC = ROOT / "data" / "speech" / "test_real"


def _speech(folder: Path) -> None:
    """Two short 16 kHz speech files in ``folder``."""
    if all((ARCTIC / f"arctic_a000{i}.wav").is_file() for i in (7, 9)):
        for i in (7, 9):
            audio, sr = sf.read(ARCTIC / f"arctic_a000{i}.wav", dtype="float32")
            sf.write(folder / f"a{i}.wav", audio[: int(1.5 * sr)], sr)
        return
    if shutil.which("espeak-ng") is None:
        pytest.fail("needs data/speech/test_real or espeak-ng (apt-get install espeak-ng)")
    from dac_diveq.data.synth import synthesize
    from dac_diveq.data.voices import VoiceSetting

    synthesize("Please call Stella soon.", VoiceSetting("espeak-ng", "en-us", 160), folder / "a7.wav")
    synthesize("Bring six spoons of snow peas.", VoiceSetting("espeak-ng", "en-gb+f3", 160), folder / "a9.wav")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    from dac_diveq.codec.model import DiVeQDAC

    tmp = tmp_path_factory.mktemp("evaluate")
    torch.manual_seed(0)
    model = DiVeQDAC(encoder_dim=8, encoder_rates=[2, 4, 5, 8], decoder_dim=32, decoder_rates=[8, 5, 4, 2],
                     n_codebooks=3, codebook_size=64, sample_rate=16000)
    weights = tmp / "run" / "best" / "diveqdac" / "weights.pth"
    weights.parent.mkdir(parents=True)
    model.save(str(weights), package=False)
    torch.save({"config": str({"seed": 7, "DiVeQDAC.n_codebooks": 3})}, weights.parent.parent / "trainer.pth")
    data = tmp / "data"
    data.mkdir()
    _speech(data)
    (data / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    return tmp, weights, data


def _run(*args):
    return run_python([SCRIPT, *args])


def test_evaluate_writes_rows_summary_and_reports_corrupt_file(setup):
    tmp, weights, data = setup
    out = tmp / "out"
    proc = _run("--weights_path", tmp / "run", "--input", data, "--output", out, "--device", "cpu",
                "--workers", 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "corrupt.wav" in proc.stderr
    # A run folder means its best checkpoint (the CLI's rule), and the weights used are said.
    assert f"using {weights} (checkpoint best of {tmp / 'run'}, step unknown)" in proc.stderr.splitlines()
    rows = list(csv.DictReader(open(out / "per_file.csv")))
    assert len(rows) == 2 * 3
    assert {(r["file"], int(r["n_quantizers"])) for r in rows} == {(f, n) for f in ("a7.wav", "a9.wav")
                                                                   for n in (1, 2, 3)}
    assert list(rows[0]) == ["file", "n_quantizers", "bitrate_kbps", "pesq_wb", "pesq_wb_raw", "pesq_nb",
                             "pesq_nb_raw", "stoi", "estoi", "visqol", "si_sdr", "mel_distance", "stft_distance"]
    # The raw P.862 score is the one behind each MOS-LQO (P.862.2 for wide-band).
    from dac_diveq.metrics.speech import mos_lqo
    assert all(abs(mos_lqo(float(r["pesq_wb_raw"]), "wb") - float(r["pesq_wb"])) < 1e-6 for r in rows)
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("pesq_wb", "stoi", "visqol", "mel_distance"))
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary)[:len(SUMMARY_KEYS)] == list(SUMMARY_KEYS) and summary["domain"] == "speech"
    assert summary["failed"] and summary["failed"][0]["file"] == "corrupt.wav"
    assert summary["files"] == ["a7.wav", "a9.wav", "corrupt.wav"]
    assert summary["method"] == "diveq" and summary["n_codebooks"] == 3 and summary["codebook_size"] == 64
    # The level and window it compressed at (the model's training level, encode's window), the
    # reference set and what the run trained with (its configuration minus the run's own keys).
    assert summary["loudness_db"] == summary["model_loudness_db"] == -16.0 and summary["window_s"] == 5.0
    assert summary["eval_set"] == {"path": data.as_posix(), "split": None}
    assert summary["training_config"] == {"DiVeQDAC.n_codebooks": 3} and summary["training_hash"]
    assert summary["seed"] == 7 and len(summary["config_hash"]) == 12
    assert summary["visqol_mapping"] in ("lattice", "polynomial")
    assert summary["frame_rate"] == pytest.approx(50.0)
    rates = [summary["by_bitrate"][str(n)]["bitrate_kbps"] for n in (1, 2, 3)]
    assert rates == pytest.approx([0.3, 0.6, 0.9]) and rates == sorted(rates)
    stages = summary["codebook"]["stages"]
    assert [s["stage"] for s in stages] == [0, 1, 2]
    for s in stages:
        assert 0 < s["usage"] <= 1 and 1 <= s["perplexity"] <= 64 and 0 <= s["entropy_bits"] <= 6
        assert s["distortion_per_bit"] == pytest.approx(s["distortion"] / 6)


def test_ladder_subset_and_opus_reference(setup):
    tmp, weights, data = setup
    out = tmp / "out2"
    proc = _run("--weights_path", weights, "--input", data, "--output", out, "--ladder", 1, 3,
                "--workers", 1, "--opus_kbps", 8)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["by_bitrate"]) == ["1", "3"]
    if shutil.which("opusenc") and shutil.which("opusdec"):
        rows = list(csv.DictReader(open(out / "opus" / "per_file.csv")))
        assert len(rows) == 2 and {r["n_quantizers"] for r in rows} == {"0"}
        opus = json.loads((out / "opus" / "summary.json").read_text())
        assert list(opus)[:len(SUMMARY_KEYS)] == list(SUMMARY_KEYS) and opus["domain"] == "speech"
        assert opus["method"] == "opus" and opus["by_bitrate"]["8"]["pesq_wb"] > 1.0
    else:
        assert "opus" in proc.stderr.lower()


def test_bad_weights_is_a_one_line_error(tmp_path):
    for bad in (tmp_path / "missing.pth", tmp_path):
        proc = _run("--weights_path", bad, "--input", tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
        assert "Traceback" not in proc.stderr
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    proc = _run("--weights_path", junk, "--input", tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_all_files_failing_exits_nonzero(setup, tmp_path):
    _, weights, _ = setup
    (tmp_path / "bad.wav").write_bytes(b"nonsense")
    proc = _run("--weights_path", weights, "--input", tmp_path, "--output", tmp_path / "out", "--workers", 1)
    assert proc.returncode == 1
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["failed"][0]["file"] == "bad.wav"
