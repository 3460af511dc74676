"""Bit-packed codes: exact round trip, the size the bitrate promises, refusals."""
import numpy as np
import pytest

from dac_diveq.codec.bitpack import bits_per_code, pack_codes, unpack_codes


@pytest.mark.parametrize("codebook_size", [2, 64, 1000, 1024, 4096])
def test_round_trip_is_exact_and_takes_the_promised_bits(codebook_size):
    rng = np.random.default_rng(codebook_size)
    bits = bits_per_code(codebook_size)
    codes = rng.integers(0, codebook_size, size=(2, 12, 157))
    codes.flat[0], codes.flat[-1] = 0, codebook_size - 1  # the extremes
    packed = pack_codes(codes, bits)
    assert packed.dtype == np.uint8 and packed.size == -(-codes.size * bits // 8)
    assert np.array_equal(unpack_codes(packed, codes.shape, bits), codes)


def test_bits_per_code_and_refusals():
    assert [bits_per_code(k) for k in (1, 2, 3, 1024, 1025)] == [1, 1, 2, 10, 11]
    with pytest.raises(ValueError, match=r"codes must be in \[0, 1024\)"):
        pack_codes(np.array([1024]), 10)
    with pytest.raises(ValueError, match="needed"):
        unpack_codes(np.zeros(3, np.uint8), (12, 10), 10)
    # A 6-kbps stream (12 codebooks x 1024 words at 50 frames/s): 6000 bits per second once packed.
    assert pack_codes(np.zeros((12, 50), int), bits_per_code(1024)).size * 8 == 6000
