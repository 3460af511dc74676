"""DAC's released layouts: every ``conf/<layout>/<method>.yml`` (``conf/<method>.yml`` for the 16 kHz
one) builds the right DiVeQDAC (hop, codebooks, bitrate, discriminator rate) and agrees with
:data:`dac_diveq.codec.layouts.LAYOUTS`."""
import argbind
import pytest
import torch

from dac_diveq.codec.cli import _describe_model
from dac_diveq.codec.layouts import BASE_LAYOUT, LAYOUTS, bitrate, conf_folder, hop_length, layout_of
from dac_diveq.codec.model import DiVeQDAC, dac_architecture
from dac_diveq.quantize import METHODS
from tests.conftest import ROOT

#: Layout -> (hop length, latent width at DAC's size, kbps with every codebook).
EXPECTED = {"16khz": (320, 1024, 6.0), "24khz": (320, 1024, 24.0), "44khz": (512, 1024, 7.752),
            "44khz_16kbps": (512, 128, 15.504)}


def _conf(layout: str, method: str) -> dict:
    return argbind.load_args(str(ROOT / conf_folder(layout) / f"{method}.yml"))


def _model_keys(conf: dict, **overrides) -> dict:
    keys = {k.split(".", 1)[1]: v for k, v in conf.items() if k.startswith("DiVeQDAC.")}
    return {**keys, **overrides}


@pytest.mark.parametrize("layout", sorted(EXPECTED))
def test_layout_conf_builds_the_released_architecture(layout, monkeypatch):
    monkeypatch.chdir(ROOT)  # $include paths are relative to the repository root
    hop, latent, kbps = EXPECTED[layout]
    conf = _conf(layout, "diveq")
    keys = _model_keys(conf)
    assert {k: keys[k] for k in LAYOUTS[layout]} == LAYOUTS[layout]
    assert conf["Discriminator.sample_rate"] == keys["sample_rate"] and conf["gpu_recipe"] is True
    assert conf["DiVeQDAC.method"] == "diveq" and conf["save_path"] == ("runs/diveq" if layout == BASE_LAYOUT else f"runs/{layout}/diveq")
    assert (keys["latent_dim"] or keys["encoder_dim"] * 2 ** len(keys["encoder_rates"])) == latent
    assert hop_length(keys) == hop and bitrate(keys) == pytest.approx(kbps * 1000, abs=1)
    # The model itself, at tiny widths (the rates, codebooks and bitrate are the layout's).
    tiny = _model_keys(conf, encoder_dim=4, decoder_dim=16, codebook_size=1024, n_codebooks=keys["n_codebooks"],
                       latent_dim=32 if keys.get("latent_dim") else None)
    model = DiVeQDAC(**tiny)
    assert model.hop_length == hop and model.n_codebooks == keys["n_codebooks"]
    assert model.bitrate() == pytest.approx(kbps * 1000, abs=1)
    assert layout_of(dac_architecture(model)) == layout
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 1, 4 * hop) + 0.01, model.sample_rate)
    assert out["codes"].shape == (1, keys["n_codebooks"], 4)
    info = "\n".join(_describe_model(model, ROOT / "w.pth"))
    assert f"bitrate: {kbps:g} kbps with all {keys['n_codebooks']} codebooks" in info
    assert f"hop length: {hop} samples" in info


@pytest.mark.parametrize("layout", sorted(EXPECTED))
def test_every_method_has_a_conf_in_every_layout(layout, monkeypatch):
    monkeypatch.chdir(ROOT)
    for method in METHODS:
        conf = _conf(layout, method)
        assert conf["DiVeQDAC.method"] == method
        assert {k: conf[f"DiVeQDAC.{k}"] for k in LAYOUTS[layout]} == LAYOUTS[layout]
        # The method's own options come from conf/<method>.yml, the rest of the recipe from conf/base.yml.
        assert conf["AdamW.lr"] == 1e-4 and conf["batch_size"] == 72 and conf["lambdas"]["adv/gen_loss"] == 1.0

