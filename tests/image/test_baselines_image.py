"""FSQ and SimVQ in the VQ-VAE: their confs build a model that trains its encoder and decodes its codes."""
import argbind
import pytest
import torch

from dac_diveq.image.vqvae import VQVAE
from dac_diveq.quantize import BASELINES
from tests.conftest import ROOT


def _model(path: str) -> VQVAE:
    conf = argbind.load_args(str(ROOT / "conf" / "image" / path))
    keys = {k.split(".", 1)[1]: v for k, v in conf.items() if k.startswith("VQVAE.")}
    torch.manual_seed(0)
    return VQVAE(**{**keys, "channels": 8, "res_channels": 4, "n_down": 2, "n_res_blocks": 1})


@pytest.mark.parametrize("size", ["", "quickstart/"])
@pytest.mark.parametrize("method", BASELINES)
def test_conf_builds_a_vqvae_that_trains_and_decodes_its_codes(method, size, monkeypatch):
    monkeypatch.chdir(ROOT)  # $include paths are relative to the repository root
    model = _model(f"{size}vqvae_{method}.yml")
    assert model.method == method
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = model(x)
    ((out["recons"] - x).pow(2).mean() + out["aux_loss"]).backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    if method == "simvq":
        assert model.quantizer.vq.transform.weight.grad is not None
    model.eval()
    with torch.no_grad():
        z_q = model(x)["z_q"]
        codes = model.encode(x)
        decoded = model.quantizer.decode(codes)
    assert codes.max() < model.codebook_size
    torch.testing.assert_close(decoded, z_q, rtol=0, atol=1e-5)
