"""FSQ and SimVQ in the codec: their confs build a DiVeQDAC whose codes decode, and ``info`` states
the true bitrate (log2 of FSQ's level product per code) and how files store the codes."""
import math

import argbind
import numpy as np
import pytest
import torch

from dac_diveq.codec.bitpack import bits_per_code, pack_codes, unpack_codes
from dac_diveq.codec.cli import _describe_model
from dac_diveq.codec.model import DiVeQDAC
from dac_diveq.quantize import BASELINES
from tests.conftest import ROOT

SIZES = ("", "cpu/", "quickstart/")


def _model(path: str) -> DiVeQDAC:
    conf = argbind.load_args(str(ROOT / "conf" / path))
    keys = {k.split(".", 1)[1]: v for k, v in conf.items() if k.startswith("DiVeQDAC.")}
    torch.manual_seed(0)
    return DiVeQDAC(**{**keys, "encoder_dim": 4, "decoder_dim": 16})  # tiny widths, the conf's quantizer


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("method", BASELINES)
def test_conf_builds_a_codec_whose_codes_decode(method, size, monkeypatch):
    monkeypatch.chdir(ROOT)  # $include paths are relative to the repository root
    model = _model(f"{size}{method}.yml").eval()
    assert model.method == method
    stage = model.quantizer.quantizers[0].codebook
    assert stage.method == method and stage.codebook_size == model.codebook_size
    audio = torch.randn(1, 1, 8 * model.hop_length) * 0.1
    with torch.no_grad():
        out = model(audio, model.sample_rate)
        z_q, _, _ = model.quantizer.from_codes(out["codes"])
    torch.testing.assert_close(z_q, out["z"], rtol=0, atol=1e-4)
    assert out["codes"].max() < model.codebook_size


def test_fsq_bitrate_is_log2_of_the_level_product_and_files_store_whole_bits(monkeypatch):
    monkeypatch.chdir(ROOT)
    model = _model("cpu/fsq.yml")
    assert model.fsq_levels == [8, 5, 5, 5] and model.codebook_size == 1000
    assert model.bitrate() == pytest.approx(50 * 12 * math.log2(1000))  # 5.98 kbps, not 6
    info = "\n".join(_describe_model(model, ROOT / "w.pth"))
    assert "12 x 1000 entries (9.966 bits, dim 4); fsq levels [8, 5, 5, 5]" in info
    assert "method: fsq (residual_mode stagewise)\n" in info
    assert "bitrate: 5.979 kbps with all 12 codebooks" in info
    assert "storage: 10 bits per code in packed .dacp files, 16 in DAC's .dac" in info
    codes = np.random.default_rng(0).integers(0, 1000, size=(1, 12, 30))
    bits = bits_per_code(model.codebook_size)
    assert np.array_equal(unpack_codes(pack_codes(codes, bits), codes.shape, bits), codes)


def test_simvq_info_is_a_plain_codebook(monkeypatch):
    monkeypatch.chdir(ROOT)
    info = "\n".join(_describe_model(_model("cpu/simvq.yml"), ROOT / "w.pth"))
    assert "12 x 1024 entries (10 bits, dim 8)\n" in info and "fsq levels" not in info


TINY = dict(encoder_dim=4, encoder_rates=[2, 2], decoder_dim=16, decoder_rates=[2, 2], n_codebooks=3,
            sample_rate=16000)


def test_simvq_exports_to_stock_dac_with_its_mapped_codebook_baked_in():
    from dac_diveq.codec.export import to_stock_dac

    torch.manual_seed(0)
    model = DiVeQDAC(**TINY, codebook_size=64, codebook_dim=8, method="simvq", lookup="cosine").eval()
    stock = to_stock_dac(model)
    audio = torch.randn(1, 1, 64) * 0.1
    with torch.no_grad():
        assert torch.equal(stock(audio, 16000)["codes"], model(audio, 16000)["codes"])


def test_fsq_is_refused_by_the_dac_exports():
    from dac_diveq.codec.export import to_stock_dac
    from dac_diveq.codec.hf_export import hf_refusal

    model = DiVeQDAC(**TINY, codebook_size=125, codebook_dim=3, method="fsq", fsq_levels=[5, 5, 5])
    with pytest.raises(ValueError, match="FSQ rounds each dimension"):
        to_stock_dac(model)
    assert hf_refusal(model).startswith("FSQ rounds each dimension")
