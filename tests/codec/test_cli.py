"""``python -m dac_diveq encode|decode|info`` end to end, on a tiny DiVeQDAC (real files, no mocks)."""
import os
import pickle
import re
from pathlib import Path

import dac
import numpy as np
import pytest
import soundfile as sf
import torch

from dac_diveq.codec.cli import main
from dac_diveq.codec.codec_io import MODEL_KEY
from dac_diveq.codec.model import DiVeQDAC
from tests.conftest import TINY_DAC, codec_run, run_python



def speechlike(seconds, sr=16000, channels=1, seed=0):
    """Harmonic tone with a wobbling pitch and syllable-rate amplitude modulation."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 20 * seed + 30 * np.sin(2 * np.pi * 3 * t)
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / sr) / k for k in range(1, 8))
    mono = 0.3 * wave * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return np.stack([mono * 0.5 ** c for c in range(channels)], axis=1).astype(np.float32)


def write(path, seconds=0.6, sr=16000, channels=1, seed=0, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, speechlike(seconds, sr, channels, seed), sr, **kwargs)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "weights.pth"
    DiVeQDAC(**TINY_DAC).save(str(path), package=False)
    return path


def run_cli(*args):
    return run_python(["-m", "dac_diveq", *args], timeout=120)


SUMMARY = re.compile(r"^(en|de)coded \d+ files?\b|^using .+ \((checkpoint \S+ of |a weights file outside)")


def cli(capsys, *args, summary=False):
    """``main`` in process: (exit status, stdout, stderr lines). encode/decode end with a summary
    line (:func:`test_summary_line_and_overwrite_policy` checks it) and every command says which
    weights it used (:func:`test_a_run_folder_means_its_best_checkpoint_for_every_command`): both
    left out unless ``summary``."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    return status, out, lines if summary else [line for line in lines if not SUMMARY.match(line)]


def load_codes(path):
    return np.load(path, allow_pickle=True)[()]


def files_under(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else []


@pytest.mark.slow  # launches the CLI
def test_folder_round_trip_mirrors_tree_and_keeps_length_and_rate(tmp_path, weights):
    """Subprocess, as users run it: an unchunked, a chunked (> win_duration), a 44.1 kHz, a stereo
    22.05 kHz ogg and an mp3 file come back at their own sample rate, length and channels."""
    src = tmp_path / "in"
    inputs = {
        "short.wav": write(src / "short.wav", 1.3),
        "a/long.flac": write(src / "a" / "long.flac", 3.0, seed=1),
        "a/b/cd.wav": write(src / "a" / "b" / "cd.wav", 0.7, sr=44100, seed=2),
        "a/b/stereo.ogg": write(src / "a" / "b" / "stereo.ogg", 0.9, sr=22050, channels=2),
        "a/b/talk.mp3": write(src / "a" / "b" / "talk.mp3", 0.9),
    }
    enc = run_cli("encode", src, "--output", tmp_path / "codes", "--weights_path", weights,
                  "--win_duration", 2.0, "--device", "cpu")
    assert enc.returncode == 0, enc.stderr
    assert "encoded 5 files, " in enc.stderr and "failed" not in enc.stderr and "Traceback" not in enc.stderr
    assert [p.relative_to(tmp_path / "codes").as_posix() for p in files_under(tmp_path / "codes")] == sorted(
        str(Path(k).with_suffix(".dac")) for k in inputs)
    short, long = load_codes(tmp_path / "codes" / "short.dac"), load_codes(tmp_path / "codes" / "a" / "long.dac")
    assert short["metadata"]["padding"] and not long["metadata"]["padding"]  # unchunked / chunked
    assert long["codes"].shape[-1] > long["metadata"]["chunk_length"]
    assert long[MODEL_KEY]["codebook_size"] == 64
    dac_file = dac.DACFile.load(tmp_path / "codes" / "a" / "long.dac")  # stock DAC reads our files
    assert dac_file.codes.shape[:2] == (1, 3)

    dec = run_cli("decode", tmp_path / "codes", "--output", tmp_path / "wav", "--weights_path", weights)
    assert dec.returncode == 0, dec.stderr
    assert "decoded 5 files, " in dec.stderr and "failed" not in dec.stderr
    for rel, original in inputs.items():
        info, out = sf.info(str(original)), sf.info(str(tmp_path / "wav" / Path(rel).with_suffix(".wav")))
        assert (out.samplerate, out.frames, out.channels) == (info.samplerate, info.frames, info.channels), rel
    audio, _ = sf.read(tmp_path / "wav" / "a" / "long.wav")
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert not [p for p in files_under(tmp_path) if ".partial" in p.name]


@pytest.mark.slow  # launches the CLI
def test_info_of_checkpoint_gives_frame_rate_bitrates_and_parameters(tmp_path, weights):
    result = run_cli("info", weights)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "method: diveq" in out and "sample rate: 16000 Hz" in out
    assert "frame rate: 50 Hz" in out and "codebooks: 3 x 64" in out
    assert "bitrate: 0.9 kbps with all 3 codebooks" in out  # 50 Hz x 3 x log2(64) = 900 b/s
    assert re.findall(r"^\s+(\d): ([\d.]+) kbps$", out, re.M) == [("1", "0.3"), ("2", "0.6"), ("3", "0.9")]
    n_params = sum(p.numel() for p in DiVeQDAC(**TINY_DAC).parameters())
    assert f"parameters: {n_params:,}" in out


def test_info_of_training_folder_and_dac_file(tmp_path, weights, capsys):
    folder = tmp_path / "run" / "latest" / "diveqdac"
    folder.mkdir(parents=True)
    (folder / "weights.pth").write_bytes(weights.read_bytes())
    status, out, err = cli(capsys, "info", tmp_path / "run")
    assert status == 0 and not err and "0.9 kbps" in out

    write(tmp_path / "x.wav", 1.5, sr=44100)
    assert cli(capsys, "encode", tmp_path / "x.wav", "--output", tmp_path, "--weights_path", weights)[0] == 0
    status, out, err = cli(capsys, "info", tmp_path / "x.dac")
    assert status == 0 and not err
    for expected in ("sample rate: 44100 Hz", "channels: 1", "duration: 1.500 s (66150 samples)",
                     # 24000 samples at 16 kHz are 75 frames; one more lets stock DAC decode it (framing.py)
                     "codebooks in file: 3", "frames: 76 (unchunked", "bitrate: 0.9 kbps"):
        assert expected in out


def test_info_prints_the_configuration_a_run_trained_with(tmp_path, weights, capsys):
    from dac_diveq.training import checkpoint

    run = tmp_path / "run"
    model = DiVeQDAC(**TINY_DAC)
    recorded = {"DiVeQDAC.method": "diveq", "lambdas": {"mel/loss": 15.0}, "num_iters": 900, "seed": 3}
    checkpoint.save(run, ["latest"], {"diveqdac": (model, {})}, {"step": 1, "config": str(recorded)})
    status, out, _ = cli(capsys, "info", run)
    assert status == 0 and "training configuration: 4 values recorded by the run (--config prints them)" in out
    status, out, _ = cli(capsys, "info", run, "--config")
    assert status == 0
    assert out.splitlines()[-5:] == ["training configuration (as the run resolved and recorded it):",
                                     "  DiVeQDAC.method: 'diveq'", "  lambdas: {'mel/loss': 15.0}",
                                     "  num_iters: 900", "  seed: 3"]
    status, out, _ = cli(capsys, "info", weights)  # a weights file outside a run folder
    assert "training configuration: not recorded (a weights file outside a run folder)" in out


def test_encoding_is_deterministic_and_n_quantizers_limits_codebooks(tmp_path, weights, capsys):
    wav = write(tmp_path / "x.wav", 2.5)
    for name, extra in (("a", []), ("b", []), ("q1", ["--n_quantizers", 1])):
        assert cli(capsys, "encode", wav, "--output", tmp_path / name, "--weights_path", weights,
                   "--win_duration", 1.0, *extra)[0] == 0
    a, b, q1 = (load_codes(tmp_path / n / "x.dac") for n in ("a", "b", "q1"))
    assert a["codes"].shape[1] == 3 and np.array_equal(a["codes"], b["codes"])
    assert q1["codes"].shape[1] == 1 and np.array_equal(q1["codes"], a["codes"][:, :1])
    assert cli(capsys, "decode", tmp_path / "q1" / "x.dac", "--output", tmp_path / "out",
               "--weights_path", weights)[0] == 0
    assert sf.info(str(tmp_path / "out" / "x.wav")).frames == 40000
    status, _, err = cli(capsys, "encode", wav, "--output", tmp_path / "q4", "--weights_path", weights,
                         "--n_quantizers", 4)
    assert status == 2 and err == ["error: --n_quantizers: must be between 1 and 3 for this model"]


def test_decompress_returns_the_original_length_where_dacs_fails(weights):
    """Rates [8, 5, 4, 2] decode 8 samples short of the 20800 encoded; DAC's reshape fails on DAC's
    frame count, ours fills the tail; our compress writes one frame more, which DAC decodes."""
    from audiotools import AudioSignal

    model = DiVeQDAC.load(str(weights)).eval()
    signal = AudioSignal(torch.from_numpy(speechlike(1.3).T)[None], 16000)
    artifact = model.compress(signal, win_duration=5.0)
    assert artifact.codes.shape[-1] == 20800 // 320 + 1
    assert dac.model.DAC.decompress(model, artifact).audio_data.shape == (1, 1, 20800)
    artifact.codes = artifact.codes[..., :-1]  # DAC's own count
    with pytest.raises(RuntimeError, match="invalid"):
        dac.model.DAC.decompress(model, artifact)
    assert model.decompress(artifact).audio_data.shape == (1, 1, 20800)


def check_rejected(status, err, path, out_dir, reason):
    assert status != 0
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and reason in err[0], err
    assert files_under(out_dir) == []


@pytest.mark.parametrize("case, reason", [
    ("missing", "no such file"),
    ("corrupt", "cannot read audio"),
    ("text", "cannot read audio"),
    ("empty", "empty audio"),
    ("silent", "silent audio"),
    ("nan", "NaN or infinite"),
    ("inf", "NaN or infinite"),
])
def test_bad_audio_is_rejected_in_one_line_without_output(tmp_path, weights, capsys, case, reason):
    path = tmp_path / f"{case}.wav"
    if case == "corrupt":
        good = write(tmp_path / "good.wav").read_bytes()
        path.write_bytes(good[:20] + bytes(range(256)) * 4)
        (tmp_path / "good.wav").unlink()
    elif case == "text":
        path.write_text("not audio at all\n")
    elif case in ("empty", "silent", "nan", "inf"):
        data = {"empty": np.zeros((0, 1)), "silent": np.zeros((8000, 1))}.get(case, speechlike(0.5))
        if case in ("nan", "inf"):
            data[100] = np.nan if case == "nan" else np.inf
        sf.write(path, data, 16000, subtype="FLOAT")
    status, _, err = cli(capsys, "encode", path, "--output", tmp_path / "out", "--weights_path", weights)
    check_rejected(status, err, path, tmp_path / "out", reason)


@pytest.mark.slow  # launches the CLI
def test_missing_input_from_the_command_line(tmp_path, weights):
    result = run_cli("encode", tmp_path / "nope.wav", "--output", tmp_path / "out", "--weights_path", weights)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.wav'}: no such file or directory"


@pytest.fixture
def good_dac(tmp_path, weights, capsys):
    write(tmp_path / "x.wav", 1.0)
    assert cli(capsys, "encode", tmp_path / "x.wav", "--output", tmp_path / "codes", "--weights_path", weights)[0] == 0
    return tmp_path / "codes" / "x.dac"


class Boom:
    """Runs a shell command when unpickled (what ``np.load(allow_pickle=True)`` would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("case, reason", [
    ("missing", "no such file"),
    ("truncated", "not a valid .dac file"),
    ("garbage", "not a valid .dac file"),
    ("pickle_payload", "refusing to load"),
    ("version", "unsupported .dac version"),
    ("codes_out_of_range", "out of range for codebook size 64"),
    ("too_many_codebooks", "has 4 codebooks, the model only 3"),
    ("other_model", "encoded by a different model: sample_rate 24000"),
    ("frames_mismatch", "frames do not fit"),
])
def test_bad_dac_files_are_rejected_in_one_line_without_output(tmp_path, weights, capsys, good_dac, case, reason):
    path = tmp_path / f"{case}.dac"
    artifacts = load_codes(good_dac)
    if case == "truncated":
        path.write_bytes(good_dac.read_bytes()[:-40])
    elif case == "garbage":
        path.write_bytes(os.urandom(300))
    elif case == "pickle_payload":
        with open(path, "wb") as handle:
            np.save(handle, np.array({"codes": Boom(tmp_path / "pwned")}, dtype=object), allow_pickle=True)
    elif case != "missing":
        artifacts.pop(MODEL_KEY) if case != "other_model" else None  # as written by stock DAC
        if case == "version":
            artifacts["metadata"]["dac_version"] = "9.9.9"
        elif case == "codes_out_of_range":
            artifacts["codes"][0, 1, 2] = 100
        elif case == "too_many_codebooks":
            artifacts["codes"] = np.concatenate([artifacts["codes"], artifacts["codes"][:, :1]], axis=1)
        elif case == "other_model":
            artifacts[MODEL_KEY]["sample_rate"] = 24000
        elif case == "frames_mismatch":  # e.g. a 24 kHz model with the same hop
            artifacts["metadata"]["original_length"] = int(artifacts["metadata"]["original_length"] * 1.5)
        with open(path, "wb") as handle:
            np.save(handle, artifacts)
    status, _, err = cli(capsys, "decode", path, "--output", tmp_path / "out", "--weights_path", weights)
    check_rejected(status, err, path, tmp_path / "out", reason)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("case, reason", [
    ("missing", "no such file"),
    ("corrupt", "cannot read weights"),
    ("folder_without_weights", "no weights file in this folder"),
    ("image_model", "not a DiVeQDAC weights file of a matching configuration (310 missing, e.g. "),
    ("other_config", "not a DiVeQDAC weights file of a matching configuration (8 unexpected, e.g. "),
])
def test_bad_weights_are_rejected_in_one_line(tmp_path, weights, capsys, case, reason):
    path = tmp_path / "w.pth"
    if case == "corrupt":
        path.write_bytes(weights.read_bytes()[:1000])
    elif case == "folder_without_weights":
        path = tmp_path / "run"
        path.mkdir()
    elif case == "image_model":  # a quantizer method, but not the codec's (stock DAC weights are accepted)
        from dac_diveq.image import VQVAE

        VQVAE(channels=8, res_channels=4, n_down=1, n_res_blocks=1, codebook_dim=4, codebook_size=8).save(
            str(path), package=False)
    elif case == "other_config":  # a 4-codebook state dict under this 3-codebook configuration
        data = torch.load(weights, weights_only=True)
        data["state_dict"] = DiVeQDAC(**{**TINY_DAC, "n_codebooks": 4}).state_dict()
        torch.save(data, path)
    wav = write(tmp_path / "x.wav")
    status, _, err = cli(capsys, "encode", wav, "--output", tmp_path / "out", "--weights_path", path)
    check_rejected(status, err, path, tmp_path / "out", reason)


def test_folder_with_a_bad_file_encodes_the_others_and_fails_at_the_end(tmp_path, weights, capsys):
    src = tmp_path / "in"
    write(src / "one.wav", 0.8)
    write(src / "sub" / "two.flac", 1.2, seed=1)
    (src / "sub" / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    (src / "notes.txt").write_text("ignored")
    status, _, err = cli(capsys, "encode", src, "--output", tmp_path / "out", "--weights_path", weights, summary=True)
    assert err.pop(0).startswith(f"using {weights} ")
    assert status == 1 and len(err) == 2
    assert err[0].startswith(f"error: {src / 'sub' / 'bad.wav'}: ")
    assert err[1].startswith("encoded 2 files, 2.0 s of audio in ") and err[1].endswith("; 1 failed")
    assert "cannot read audio" in err[0]
    assert [p.relative_to(tmp_path / "out").as_posix() for p in files_under(tmp_path / "out")] == [
        "one.dac", "sub/two.dac"]


def test_a_bug_keeps_its_traceback_and_the_folders_other_files_go_on(tmp_path, weights, capsys, monkeypatch):
    src = tmp_path / "in"
    write(src / "one.wav", 0.8)
    write(src / "two.wav", 0.8, seed=1)
    real = DiVeQDAC.compress

    def compress(self, *args, **kwargs):  # the first file meets a bug, the second does not
        if not compress.done:
            compress.done = True
            raise ZeroDivisionError("a bug in the codec")
        return real(self, *args, **kwargs)

    compress.done = False
    monkeypatch.setattr(DiVeQDAC, "compress", compress)
    status, _, err = cli(capsys, "encode", src, "--output", tmp_path / "out", "--weights_path", weights, summary=True)
    text = "\n".join(err)
    assert status == 1 and "Traceback (most recent call last)" in text and "ZeroDivisionError: a bug in the codec" in text
    assert "(the traceback above is a bug; please report it)" in text
    assert err[-1].startswith("encoded 1 file, ") and err[-1].endswith("; 1 failed")
    assert len(files_under(tmp_path / "out")) == 1


def test_a_user_error_shows_its_traceback_with_debug_only(tmp_path, weights, capsys):
    missing = tmp_path / "nowhere.pth"
    plain = cli(capsys, "info", missing)
    debug = cli(capsys, "info", missing, "--debug")
    assert plain[0] == debug[0] != 0
    assert len(plain[2]) == 1 and plain[2][0].startswith("error: ") and "Traceback" not in plain[2][0]
    assert "Traceback (most recent call last)" in debug[2][0] and debug[2][-1] == plain[2][0]


def test_summary_line_and_overwrite_policy(tmp_path, weights, capsys):
    """Every run ends with files, audio duration, real-time factor, bytes and the effective bitrate;
    existing outputs are kept (and counted) unless --overwrite."""
    src = tmp_path / "in"
    write(src / "a.wav", 1.0)
    write(src / "b.wav", 1.0, seed=1)
    args = ("encode", src, "--output", tmp_path / "out", "--weights_path", weights)
    status, _, err = cli(capsys, *args, summary=True)
    size = sum(p.stat().st_size for p in files_under(tmp_path / "out"))
    match = re.fullmatch(r"encoded 2 files, 2\.0 s of audio in [\d.]+ s \(real-time factor [\d.]+\); "
                         r"wrote ([\d.]+) kB = ([\d.]+) kbps", err[-1])
    assert status == 0 and match, err
    assert float(match.group(1)) == pytest.approx(size / 1000, abs=0.05)
    assert float(match.group(2)) == pytest.approx(size * 8 / 2.0 / 1000, abs=0.05)
    first = (tmp_path / "out" / "a.dac").stat().st_mtime_ns
    status, _, err = cli(capsys, *args, summary=True)
    assert status == 0 and err[-1] == "encoded 0 files; skipped 2 existing (--overwrite replaces them)"
    assert (tmp_path / "out" / "a.dac").stat().st_mtime_ns == first
    status, _, err = cli(capsys, *args, "--overwrite", summary=True)
    assert status == 0 and err[-1].startswith("encoded 2 files, ")
    status, _, err = cli(capsys, "decode", tmp_path / "out", "--output", tmp_path / "wav", "--weights_path", weights,
                         summary=True)
    assert status == 0 and err[-1].startswith("decoded 2 files, 2.0 s of audio in ")


def test_packed_codes_are_the_codecs_bitrate_and_decode_the_same(tmp_path, weights, capsys):
    """--packed stores 6 bits per code for a 64-word codebook (DAC's format: 16); the codes and the
    decoded audio are those of the unpacked file, and DAC's own files still decode."""
    from dac_diveq.codec.codec_io import PACKED_MAGIC, _read_artifacts, has_packed_codes, load_dac

    wav = write(tmp_path / "x.wav", 2.0)
    for name, extra in (("plain", ()), ("packed", ("--packed",))):
        assert cli(capsys, "encode", wav, "--output", tmp_path / name, "--weights_path", weights, *extra)[0] == 0
        assert cli(capsys, "decode", tmp_path / name, "--output", tmp_path / f"{name}_wav",
                   "--weights_path", weights)[0] == 0
    plain, packed = tmp_path / "plain" / "x.dac", tmp_path / "packed" / "x.dacp"
    assert not (tmp_path / "packed" / "x.dac").exists()  # .dac stays DAC's format
    assert has_packed_codes(packed) and not has_packed_codes(plain)
    assert torch.equal(load_dac(plain)[0].codes, load_dac(packed)[0].codes)
    codes = load_dac(plain)[0].codes
    assert packed.read_bytes().startswith(PACKED_MAGIC)
    packed_codes = _read_artifacts(packed)["packed_codes"]
    assert packed_codes.size == -(-codes.numel() * 6 // 8)  # 6 bits per code
    assert packed.stat().st_size < plain.stat().st_size
    assert np.array_equal(sf.read(tmp_path / "plain_wav" / "x.wav")[0], sf.read(tmp_path / "packed_wav" / "x.wav")[0])
    status, out, _ = cli(capsys, "info", packed)
    assert status == 0 and "codes stored packed to 6 bits each" in out  # ceil(log2 64)
    assert dac.DACFile.load(plain).codes.shape == codes.shape  # the default stays DAC's format
    # Stock DAC stops at the packed file's first byte (no KeyError deep in its decoder, nothing run),
    # and its CLI's folder search (*.dac) passes it by.
    with pytest.raises(pickle.UnpicklingError, match="pickle"):
        dac.DACFile.load(packed)
    status, out, _ = cli(capsys, "info", plain)
    assert status == 0 and "codes stored as DAC's 16-bit integers" in out


@pytest.mark.slow  # launches DAC's CLI
def test_stock_dac_cli_decodes_the_dac_files_and_passes_the_packed_ones_by(tmp_path, weights):
    from dac_diveq.codec.export import export_to_dac

    stock = export_to_dac(DiVeQDAC.load(str(weights)), tmp_path / "stock.pth")
    wav = write(tmp_path / "x.wav", 1.0)  # a whole number of frames: stock DAC needs our extra frame
    for extra in ((), ("--packed",)):
        assert run_cli("encode", wav, "--output", tmp_path / "codes", "--weights_path", weights, *extra).returncode == 0
    assert sorted(p.name for p in (tmp_path / "codes").iterdir()) == ["x.dac", "x.dacp"]
    result = run_python(["-m", "dac", "decode", tmp_path / "codes", "--output", tmp_path / "out",
                         "--weights_path", stock, "--device", "cpu"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.wav"] and sf.info(tmp_path / "out" / "x.wav").frames == 16000


@pytest.mark.parametrize("command, target, needle", [
    ("info", "x.wav", "is a WAV file; `info` takes weights (a .pth file or training folder) or a .dac/.dacp file"),
    ("decode", "x.wav", "is a WAV file; `decode` takes .dac or .dacp files (encode the audio first)"),
    ("encode", "x.dac", "is a .dac file; `encode` takes audio files (.wav, .flac, .mp3, .ogg)"),
])
def test_a_file_of_the_wrong_kind_is_named_in_one_line(tmp_path, weights, capsys, command, target, needle):
    wav = write(tmp_path / "x.wav")
    assert cli(capsys, "encode", wav, "--output", tmp_path, "--weights_path", weights)[0] == 0
    args = [command, tmp_path / target] + ([] if command == "info" else ["--weights_path", weights])
    status, out, err = cli(capsys, *args)
    assert status != 0 and not out and err == [f"error: {tmp_path / target}: {needle}"]


@pytest.mark.parametrize("trained_at", [-24.0, -16.0])
def test_encode_decode_is_the_forward_pass_at_the_training_level(tmp_path, capsys, trained_at):
    """The level is one fact: ``encode`` normalises to the level the weights record, and the
    round trip through the files equals the model's own forward pass at that level (restored to
    the input's loudness), not at DAC's -16 LUFS."""
    from audiotools import AudioSignal

    torch.manual_seed(0)
    path = tmp_path / "weights.pth"
    DiVeQDAC(**TINY_DAC, loudness_db=trained_at).save(str(path), package=False)
    model = DiVeQDAC.load(str(path)).eval()
    assert model.loudness_db == trained_at
    # Not a whole number of frames: at 1.0 s the file holds one frame more than the forward pass
    # encodes, so that stock DAC can decode it (framing.py), and the last samples differ.
    clip = write(tmp_path / "in" / "clip.wav", seconds=0.99)
    status, _, _ = cli(capsys, "encode", clip, "--output", tmp_path / "codes", "--weights_path", path,
                       "--device", "cpu")
    assert status == 0
    status, _, _ = cli(capsys, "decode", tmp_path / "codes" / "clip.dac", "--output", tmp_path / "out",
                       "--weights_path", path, "--device", "cpu", "--overwrite")
    assert status == 0
    decoded, _ = sf.read(tmp_path / "out" / "clip.wav", dtype="float32")

    def forward_at(level):
        signal = AudioSignal(str(clip))
        loudness = signal.loudness()
        with torch.no_grad():
            out = model(signal.clone().normalize(level).audio_data, 16000)["audio"]
        out = AudioSignal(out[..., :signal.signal_length], 16000).normalize(loudness)
        return out.audio_data[0, 0].numpy()

    expected, other = forward_at(trained_at), forward_at(-16.0 if trained_at != -16.0 else -30.0)
    decoded = decoded[:expected.size]  # the forward pass of this layout drops the last partial frame
    scale = np.abs(expected).max()
    assert np.abs(decoded - expected).max() < 2e-3 * scale  # the wav file's 16-bit rounding
    assert np.abs(decoded - other).max() > 2e-2 * scale     # another level is another output
    # The user can override it; a bad level is one line.
    status, _, err = cli(capsys, "encode", clip, "--output", tmp_path / "c2", "--weights_path", path,
                         "--loudness_db", "loud")
    assert status == 2 and len(err) == 1 and "--loudness_db" in err[0]


def using_lines(capsys_err_lines):
    return [line for line in capsys_err_lines if line.startswith("using ")]


def test_a_run_folder_means_its_best_checkpoint_for_every_command(tmp_path, capsys):
    """encode, decode, info and export read a run folder's best checkpoint (else latest), as
    scripts/evaluate.py does, and each says which file and step in one stderr line."""
    run = tmp_path / "run"
    files = codec_run(run, {2: 0, 4: 1}, best=2)
    line = f"using {run / 'best' / 'diveqdac' / 'weights.pth'} (checkpoint best of {run}, step 2)"
    wav = write(tmp_path / "x.wav", 0.7)
    commands = [("encode", wav, "--output", tmp_path / "codes", "--weights_path", run),
                ("decode", tmp_path / "codes" / "x.dac", "--output", tmp_path / "wav", "--weights_path", run),
                ("info", run), ("info", tmp_path / "codes" / "x.dac", "--weights_path", run),
                ("export", run, "--output", tmp_path / "stock.pth")]
    for args in commands:
        status, _, err = cli(capsys, *args, summary=True)
        assert status == 0 and using_lines(err) == [line], (args, err)
    # The codes are those of best's weights, not latest's.
    assert cli(capsys, "encode", wav, "--output", tmp_path / "from_best", "--weights_path", files[2])[0] == 0
    assert cli(capsys, "encode", wav, "--output", tmp_path / "from_latest", "--weights_path", files[4])[0] == 0
    codes = load_codes(tmp_path / "codes" / "x.dac")["codes"]
    assert np.array_equal(codes, load_codes(tmp_path / "from_best" / "x.dac")["codes"])
    assert not np.array_equal(codes, load_codes(tmp_path / "from_latest" / "x.dac")["codes"])


def test_stock_dac_weights_are_described_and_encode_to_dacs_codes(tmp_path, weights, capsys):
    from audiotools import AudioSignal

    from dac_diveq.codec.codec_io import load_dac

    torch.manual_seed(3)
    stock = dac.model.DAC(**TINY_DAC).eval()
    stock.save(str(tmp_path / "stock.pth"), package=False)
    assert cli(capsys, "export", weights, "--output", tmp_path / "ours_as_dac.pth")[0] == 0
    for path in (tmp_path / "stock.pth", tmp_path / "ours_as_dac.pth"):
        status, out, err = cli(capsys, "info", path)
        assert status == 0 and not err
        assert "format: stock DAC weights (dac.model.DAC" in out and "codebooks: 3 x 64" in out
    wav = write(tmp_path / "x.wav", 0.71)  # 35.5 frames: not a length stock DAC's decoder falls short of
    status, _, err = cli(capsys, "encode", wav, "--output", tmp_path / "codes", "--weights_path", tmp_path / "stock.pth")
    assert status == 0 and not err
    with torch.no_grad():
        theirs = stock.compress(AudioSignal(str(wav)), win_duration=5.0)
    assert torch.equal(load_dac(tmp_path / "codes" / "x.dac")[0].codes, theirs.codes)
    assert cli(capsys, "decode", tmp_path / "codes", "--output", tmp_path / "wav",
               "--weights_path", tmp_path / "stock.pth")[0] == 0
    assert sf.info(str(tmp_path / "wav" / "x.wav")).frames == 11360


def test_dacs_model_type_spelling_reads_dacs_downloaded_weights(tmp_path, capsys, monkeypatch):
    """``--model_type/--model_bitrate/--model_tag`` name the file ``python -m dac download`` keeps;
    this CLI never downloads: a missing one is one line saying how to get it."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    wav = write(tmp_path / "x.wav", 0.7)
    args = ("encode", wav, "--output", tmp_path / "codes", "--model_type", "16khz")
    cache = tmp_path / "home" / ".cache" / "descript" / "dac" / "weights_16khz_8kbps_0.0.5.pth"
    status, _, err = cli(capsys, *args)
    assert status == 2 and err == [f"error: --model_type: {cache} is not downloaded; run `python -m dac download "
                                   "--model_type 16khz --model_bitrate 8kbps` first, or pass --weights_path"]
    cache.parent.mkdir(parents=True)
    dac.model.DAC(**TINY_DAC).save(str(cache), package=False)
    status, _, err = cli(capsys, *args, summary=True)
    assert status == 0 and err[0].startswith(f"using {cache} ")
    status, _, err = cli(capsys, "encode", wav, "--model_type", "44khz", "--model_bitrate", "4kbps")
    assert status == 2 and len(err) == 1 and "DAC has no 44khz 4kbps model" in err[0]
    status, _, err = cli(capsys, "encode", wav, "--output", tmp_path / "o")
    assert status == 2 and err[0].startswith("error: --weights_path: required (") and "--model_type" in err[0]


def test_an_unknown_option_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["encode", str(tmp_path / "x.wav"), "--model_typ", "16khz"])
    assert exited.value.code == 2 and "unrecognized arguments: --model_typ 16khz" in capsys.readouterr().err
