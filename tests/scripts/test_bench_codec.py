"""scripts/bench_codec.py's plumbing (the benchmark itself needs a quiet machine and long files)."""
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import load_script, run_python


def test_models_audio_ratios_and_table(tmp_path):
    import dac

    from dac_diveq.codec.codec_io import load_model

    bench = load_script("bench_codec")
    stock_path, ours_path, sample_rate = bench.make_models("24khz", True, tmp_path)
    stock, ours = dac.model.DAC.load(str(stock_path)), load_model(ours_path)
    assert sample_rate == 24000 and stock.n_codebooks == ours.n_codebooks == 32 and ours.method == "diveq"
    audio = bench.make_audio(3.5, sample_rate, tmp_path)
    info = sf.info(str(audio))
    assert info.samplerate == 24000 and info.frames == int(3.5 * 24000)
    assert np.abs(sf.read(audio)[0]).max() > 0.01
    assert bench.paired_ratio([2.0, 4.0, 3.3], [2.0, 2.0, 3.0]) == pytest.approx(1.1)
    rows = [dict(file="60 s", op="encode", dac=10.0, ours=10.2, ratio=1.02, seconds=60.0, identical=True),
            dict(file="60 s", op="decode", dac=10.0, ours=11.0, ratio=1.1, seconds=60.0, identical=False)]
    lines = bench.table(rows, 3)
    assert "| 60 s | encode | 10.00 | 10.20 | 1.020x | met | 0.167 | 0.170 | yes |" in lines
    assert lines[-1].endswith("| 1.100x | MISSED | 0.167 | 0.183 | NO |")


@pytest.mark.slow  # launches both command lines
def test_a_smoke_run_times_both_command_lines_on_the_same_codes(tmp_path):
    # Outputs of an earlier run: both tools must write theirs again (ours keeps an existing output
    # unless --overwrite, and a kept file would be timed as a skip and compared as stale codes).
    stale = tmp_path / "out" / "speech_6s_ours_0" / "speech_6s.dac"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"codes of an earlier run")
    result = run_python(["scripts/bench_codec.py", "--tiny", "--durations", "6", "--rounds", "1", "--threads", "1",
                         "--ops", "encode", "--work", tmp_path, "--output", tmp_path / "table.md"], timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    row = [line for line in (tmp_path / "table.md").read_text().splitlines() if line.startswith("| 6 s | encode")]
    assert len(row) == 1 and row[0].endswith("| yes |")
