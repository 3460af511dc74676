"""A tiny file never takes the machine: each crafted file below asks its reader for gigabytes (a
numpy array of 10^9 objects, a ``.dac`` sample rate of 16 MHz, a ``codebook_size`` of 2^27). Every
probe runs the real command line in a child whose address space is limited to what it had mapped
after its imports plus 1 GiB (``limited.py``): the file must be refused in one line naming the
bound, before anything is allocated (a reader that tried would die of ``MemoryError`` under the
limit, with another message), and nothing is written."""
import numpy as np
import pytest
import soundfile as sf
import torch

from dac_diveq.codec import codec_io
from dac_diveq.codec.model import DiVeQDAC
from tests.codec.test_cli import speechlike, write
from tests.conftest import TINY_DAC, run_python
from tests.reliability.forge import FORGED, forged_dac, forged_weights, small_weights

pytestmark = pytest.mark.slow  # launches the command line under a memory limit

HEADROOM_MIB = 1024


def limited(*args, timeout=180):
    """``python -m dac_diveq ARGS`` with at most 1 GiB more address space than after its imports."""
    return run_python(["tests/reliability/limited.py", HEADROOM_MIB, "-m", "dac_diveq", *args], timeout=timeout)


def assert_refused(result, *needles, status=1):
    """Exit ``status``, one ``error:`` line on stderr holding every needle, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == status, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """Tiny weights and a real ``.dac`` file they encoded (read-only: tests forge copies)."""
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    DiVeQDAC(**TINY_DAC).save(str(root / "weights.pth"), package=False)
    wav = write(root / "x.wav")
    result = run_python(["-m", "dac_diveq", "encode", wav, "--output", root, "--weights_path", root / "weights.pth"])
    assert result.returncode == 0, result.stderr[-2000:]
    return root


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_a_forged_numpy_array_in_a_weights_file_is_refused_before_allocating(tmp_path, kind):
    path = forged_weights(tmp_path / "forged.pth", FORGED[kind])
    assert path.stat().st_size < 2000
    assert_refused(limited("info", path), str(path), "refused before allocating it",
                   {"object": "object dtype", "bytes": "needs 10000000000 bytes, the file holds 1",
                    "direct": "numpy.ndarray may only be rebuilt"}[kind])


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_forged_codes_in_a_dac_file_are_refused_before_allocating(tmp_path, model_files, kind):
    path = forged_dac(tmp_path / "forged.dac", model_files / "x.dac", codes=FORGED[kind])
    assert path.stat().st_size < 6000
    assert_refused(limited("info", path), str(path), "not a valid .dac file", "refused numpy data")
    result = limited("decode", path, "--output", tmp_path / "out", "--weights_path", model_files / "weights.pth")
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(lines) == 1 and "refused numpy data" in lines[0], result.stderr[-2000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("metadata, needle", [
    ({"sample_rate": 16000 * 1000}, "sample rate 16000000 Hz is outside 1000..384000 Hz"),
    ({"sample_rate": 16000 * 10 ** 12}, "is outside 1000..384000 Hz"),
    ({"original_length": 2 ** 40}, f"exceed the {2 ** 28} samples one file may hold"),
])
def test_dac_metadata_out_of_bounds_is_refused(tmp_path, model_files, metadata, needle):
    path = forged_dac(tmp_path / "forged.dac", model_files / "x.dac", metadata=metadata)
    assert_refused(limited("info", path), str(path), needle)
    result = limited("decode", path, "--output", tmp_path / "out", "--weights_path", model_files / "weights.pth")
    assert needle in result.stderr and result.returncode == 1 and not (tmp_path / "out").exists()


def test_packed_codes_of_a_forged_shape_are_refused(tmp_path, model_files):
    path = forged_dac(tmp_path / "forged.dac", model_files / "x.dac", codes=None,
                      packed_codes=np.zeros(8, np.uint8), codes_shape=np.asarray([1, 2 ** 20, 2 ** 20]),
                      bits_per_code=1)
    assert_refused(limited("info", path), str(path), f"at most {codec_io.MAX_CODES} are accepted")


@pytest.mark.parametrize("rate, needle", [
    (8, "sample rate 8 Hz is outside 1000..384000 Hz"),
    (383993, "resampling 383993 Hz to 16000 Hz would take"),
])
def test_a_wav_header_rate_out_of_bounds_is_refused_before_reading(tmp_path, model_files, rate, needle):
    wav = tmp_path / "odd.wav"
    sf.write(wav, speechlike(0.5, 16000), rate)  # 8000 samples, declared at an odd rate
    result = limited("encode", wav, "--output", tmp_path / "out", "--weights_path", model_files / "weights.pth")
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and lines == [f"error: {wav}: " + lines[0].split(": ", 2)[2]], result.stderr
    assert needle in lines[0] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("state, kwargs, needle", [
    ("real", {"codebook_size": 2 ** 27}, "quantizer.quantizers.0.codebook.weight has shape (64, 8), the model "
                                         "(134217728, 8)"),
    ("real", {"n_codebooks": 10 ** 6}, "its constructor arguments build more than 2072 tensors; the file holds far "
                                       "fewer"),
    ("empty", {"codebook_size": 2 ** 27}, "(262 missing, e.g. "),
])
def test_constructor_arguments_are_checked_against_the_files_tensors_first(tmp_path, state, kwargs, needle):
    path = small_weights(tmp_path / "w.pth", state, **kwargs)
    if state == "empty":
        assert path.stat().st_size < 2000
    assert_refused(limited("info", path, timeout=120), str(path), needle)
