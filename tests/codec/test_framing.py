"""Our ``.dac`` files decode with stock DAC at every length (``dac_diveq.codec.framing``).

Stock DAC's decoder returns ``frames * hop - 8`` samples at 16 and 24 kHz (decoder rates 8, 5, 4,
2), so its ``decompress`` fails on unchunked files whose right pad is shorter than that; stock
DAC's own ``compress`` is the oracle that a length breaks, its ``decompress`` the one that ours
does not.
"""
import dac
import pytest
import torch
from audiotools import AudioSignal

from dac_diveq.codec.codec_io import check_dac_matches, load_dac, save_dac
from dac_diveq.codec.framing import decoder_length, stock_decodable_frames
from dac_diveq.codec.layouts import LAYOUTS
from dac_diveq.codec.register import from_dac


def tiny_pair(layout):
    """A stock DAC of a released layout at tiny widths and the same weights as our DiVeQDAC
    (DAC's cosine lookup: the same codes)."""
    torch.manual_seed(0)
    architecture = {**LAYOUTS[layout], "encoder_dim": 4, "decoder_dim": 16}
    stock = dac.model.DAC(**architecture).eval()
    return stock, from_dac(stock, method="diveq").eval()


def noise(samples, rate, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return AudioSignal(0.1 * torch.randn(1, 1, samples, generator=generator), rate)


@pytest.mark.parametrize("layout, deficit", [("16khz", 8), ("24khz", 8), ("44khz", 0)])
def test_decoder_length_is_the_real_decoders(layout, deficit):
    stock, _ = tiny_pair(layout)
    for frames in (1, 7):
        latent = torch.zeros(1, stock.latent_dim, frames)
        with torch.no_grad():
            padded = stock.decode(latent).shape[-1]
            stock.padding = False
            unpadded = stock.decode(torch.zeros(1, stock.latent_dim, 40)).shape[-1]
            stock.padding = True
        assert decoder_length(stock, frames) == padded == frames * stock.hop_length - deficit
        assert decoder_length(stock, 40, padded=False) == unpadded


# (layout, input rate, samples): lengths at which stock DAC's own file does not decode.
BREAKING = [("16khz", 16000, 960), ("16khz", 16000, 953), ("16khz", 16000, 64000), ("16khz", 44100, 44100),
            ("16khz", 48000, 945), ("24khz", 24000, 24000), ("24khz", 16000, 16000), ("24khz", 48000, 48000)]


@pytest.mark.parametrize("layout, rate, samples", BREAKING)
def test_our_files_decode_with_stock_dac_where_dacs_own_do_not(tmp_path, layout, rate, samples):
    stock, ours = tiny_pair(layout)
    signal = noise(samples, rate)
    with pytest.raises(RuntimeError, match="invalid for input of size"):
        stock.decompress(stock.compress(signal, win_duration=5.0))  # DAC's bug, on DAC's own file
    path = tmp_path / "x.dac"
    save_dac(ours.compress(signal, win_duration=5.0, normalize_db=-16), path, ours)
    decoded = stock.decompress(dac.DACFile.load(path))  # stock DAC's own reader and decoder
    assert decoded.audio_data.shape == (1, 1, samples) and decoded.sample_rate == rate
    assert torch.isfinite(decoded.audio_data).all()
    artifact, extra = load_dac(path)
    check_dac_matches(artifact, extra, ours)  # and ours reads its own file
    assert ours.decompress(artifact).audio_data.shape == (1, 1, samples)


@pytest.mark.parametrize("layout, rate, samples", [("16khz", 16000, 950), ("16khz", 44100, 30000),
                                                   ("44khz", 44100, 44100), ("16khz", 16000, 96000)])
def test_other_lengths_keep_dacs_codes(layout, rate, samples):
    """Where stock DAC decodes its own file (and for chunked files, above the window) our codes are
    its codes, frame for frame."""
    stock, ours = tiny_pair(layout)
    signal = noise(samples, rate, seed=1)
    theirs = stock.compress(signal, win_duration=5.0)
    mine = ours.compress(signal, win_duration=5.0, normalize_db=-16)
    assert torch.equal(mine.codes, theirs.codes)
    assert stock_decodable_frames(ours, samples, rate) * ours.hop_length >= samples * ours.sample_rate // rate


def test_a_file_of_dacs_frame_count_still_decodes_with_ours(tmp_path):
    """Files written before (or by stock DAC) hold one frame fewer at these lengths: still accepted."""
    stock, ours = tiny_pair("16khz")
    artifact = stock.compress(noise(960, 16000), win_duration=5.0)
    path = tmp_path / "old.dac"
    save_dac(artifact, path, ours)
    loaded, extra = load_dac(path)
    check_dac_matches(loaded, extra, ours)
    assert ours.decompress(loaded).audio_data.shape == (1, 1, 960)
