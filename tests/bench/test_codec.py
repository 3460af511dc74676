"""dac_diveq.bench.codec (scripts/bench_codec.py): its plumbing (the benchmark itself needs a quiet machine and long files)."""
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_python


def test_models_audio_ratios_and_table(tmp_path):
    import dac

    from dac_diveq.codec.codec_io import load_model

    from dac_diveq.bench import codec as bench
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
    assert bench.table([dict(rows[0], identical="+1 frame")], 3)[-1].endswith("| +1 frame |")


def test_same_codes_names_the_frames_stock_dac_needs(tmp_path):
    """At 5 s (a multiple of the hop) stock DAC's own file does not decode; ours holds one frame more."""
    import dac
    import torch

    from dac_diveq.codec.codec_io import load_model, save_dac

    from dac_diveq.bench import codec as bench
    stock_path, ours_path, sample_rate = bench.make_models("16khz", True, tmp_path)
    stock, ours = dac.model.DAC.load(str(stock_path)).eval(), load_model(ours_path)
    from audiotools import AudioSignal

    for seconds, verdict in ((5.0, "+1 frame"), (4.99, "yes")):
        signal = AudioSignal(str(bench.make_audio(seconds, sample_rate, tmp_path)))
        with torch.no_grad():
            save_dac(stock.compress(signal, win_duration=5.0), tmp_path / "dac.dac")
            save_dac(ours.compress(signal, win_duration=5.0, normalize_db=-16), tmp_path / "ours.dac", ours)
        assert bench.same_codes(tmp_path / "dac.dac", tmp_path / "ours.dac") == verdict


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


@pytest.mark.slow  # launches both command lines
def test_five_seconds_encode_and_decode_with_both_command_lines(tmp_path):
    """5 s at 16 kHz is a multiple of the hop: stock DAC cannot decode its own file; both decode ours."""
    result = run_python(["scripts/bench_codec.py", "--tiny", "--durations", "5", "--rounds", "1", "--threads", "1",
                         "--work", tmp_path, "--output", tmp_path / "table.md"], timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in (tmp_path / "table.md").read_text().splitlines() if line.startswith("| 5 s |")]
    assert len(rows) == 2 and all(row.endswith("| +1 frame |") for row in rows)
