"""Fine-tuning from stock DAC checkpoints (``codec.finetune``): each released layout (tiny widths, its rates
and codebook counts) starts a run with the conf's quantizer; a conf of another layout is refused."""
import argbind
import dac
import pytest
import torch
from dac.model.discriminator import Discriminator

from dac_diveq.codec.finetune import FinetuneError, explicit_keys, load_stock_discriminator, read_stock_dac, start_from
from dac_diveq.codec.layouts import LAYOUTS, conf_folder
from dac_diveq.codec.model import DiVeQDAC
from tests.conftest import ROOT

#: DAC's released layouts at tiny widths: same sample rates, strides, codebook counts and sizes.
TINY_WIDTHS = dict(encoder_dim=4, decoder_dim=16)


def tiny_layout(name: str) -> dict:
    """``LAYOUTS[name]`` with tiny widths (a narrow latent stays narrower than ``encoder_dim x 16``)."""
    layout = {**LAYOUTS[name], **TINY_WIDTHS}
    if layout["latent_dim"] is not None:
        layout["latent_dim"] = 32
    return layout


def stock_checkpoint(name: str, folder, seed: int = 0):
    """A stock ``dac.model.DAC`` of layout ``name`` saved as DAC saves its released weights."""
    torch.manual_seed(seed)
    model = dac.model.DAC(**tiny_layout(name)).eval()
    path = folder / f"dac_{name}.pth"
    model.save(str(path), package=False)
    return model, path


def _conf(path: str, **overrides) -> tuple[dict, set]:
    """A conf's parsed keys (as argbind gives them to train.py) and the keys it sets."""
    conf = argbind.load_args(str(ROOT / path))
    conf.update(overrides)
    return conf, set(conf)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_a_stock_checkpoint_of_every_layout_starts_a_run_with_the_confs_quantizer(name, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    stock, path = stock_checkpoint(name, tmp_path)
    conf, explicit = _conf("conf/finetune/diveq.yml")
    options = dict(method="diveq", noise_var=2e-3, replace_every=7, lookup="cosine")
    start = start_from(path, options, conf, explicit)
    model = start.generator
    assert start.layout == name
    assert start.discriminator_sample_rate == LAYOUTS[name]["sample_rate"]
    assert isinstance(model, DiVeQDAC) and model.method == "diveq"
    assert model.noise_var == 2e-3 and model.replace_every == 7
    assert (model.sample_rate, list(model.encoder_rates), model.n_codebooks, model.latent_dim) == (
        stock.sample_rate, list(stock.encoder_rates), stock.n_codebooks, stock.latent_dim)
    # Codebooks and projections kept (marked initialised), so the codes are DAC's.
    x = 0.1 * torch.randn(1, 1, 4 * model.hop_length)
    with torch.no_grad():
        assert torch.equal(model.eval().encode(x)[1], stock.encode(x)[1])
    assert all(vq.codebook.maintenance.initialized for vq in model.quantizer.quantizers)
    # DAC's recipe's quantizer dropout, from the conf: the checkpoint records none (False = 0).
    assert read_stock_dac(path).quantizer.quantizer_dropout == 0
    assert model.quantizer.quantizer_dropout == 0.5


def test_the_finetune_recipe_sets_quantizer_dropout_and_a_user_can_override_it(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    _, path = stock_checkpoint("16khz", tmp_path)
    conf, explicit = _conf("conf/finetune/ste.yml")
    assert conf["DiVeQDAC.quantizer_dropout"] == 0.5 and "DiVeQDAC.quantizer_dropout" in explicit
    conf["DiVeQDAC.quantizer_dropout"] = 0.25
    assert start_from(path, {"method": "ste"}, conf, explicit).generator.quantizer.quantizer_dropout == 0.25


@pytest.mark.parametrize("name, other", [("16khz", "24khz"), ("24khz", "44khz"), ("44khz", "16khz"),
                                         ("44khz", "44khz_16kbps")])
def test_a_conf_of_another_layout_is_refused_naming_the_key(name, other, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    _, path = stock_checkpoint(name, tmp_path)
    # The other layout's conf at the checkpoint's tiny widths: what differs is the layout itself.
    conf, explicit = _conf(f"{conf_folder(other)}/diveq.yml", **{f"DiVeQDAC.{k}": v for k, v in TINY_WIDTHS.items()})
    with pytest.raises(FinetuneError) as caught:
        start_from(path, {"method": "diveq"}, conf, explicit)
    message = str(caught.value)
    assert "\n" not in message and f"is DAC's {name} layout" in message
    assert f"({conf_folder(name)}/<method>.yml" in message
    differing = [k for k in ("sample_rate", "encoder_rates", "latent_dim", "n_codebooks")
                 if LAYOUTS[name][k] != LAYOUTS[other][k]]
    assert f"configuration sets DiVeQDAC.{differing[0]}:" in message


def test_its_own_layout_conf_is_accepted_and_the_discriminator_rate_is_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    _, path = stock_checkpoint("24khz", tmp_path)
    conf, explicit = _conf("conf/24khz/ste.yml", **{f"DiVeQDAC.{k}": v for k, v in TINY_WIDTHS.items()})
    assert start_from(path, {"method": "ste"}, conf, explicit).discriminator_sample_rate == 24000
    conf["Discriminator.sample_rate"] = 16000
    with pytest.raises(FinetuneError, match="configuration sets Discriminator.sample_rate: 16000"):
        start_from(path, {"method": "ste"}, conf, explicit)


def test_a_stock_discriminator_fills_the_confs_and_another_is_refused(tmp_path):
    torch.manual_seed(1)
    small = dict(rates=[], periods=[2], fft_sizes=[256], bands=[[0.0, 0.5], [0.5, 1.0]])
    stock = Discriminator(sample_rate=44100, **small)
    stock.save(str(tmp_path / "disc.pth"), package=False)
    ours = load_stock_discriminator(Discriminator(sample_rate=44100, **small), tmp_path / "disc.pth")
    for a, b in zip(ours.state_dict().values(), stock.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(FinetuneError, match="does not fit the configuration's Discriminator"):
        load_stock_discriminator(Discriminator(sample_rate=44100, **{**small, "periods": [2, 3]}), tmp_path / "disc.pth")


def test_files_that_are_not_stock_dac_generators_are_refused_in_one_line(tmp_path):
    ours = tmp_path / "ours.pth"
    DiVeQDAC(**tiny_layout("16khz")).save(str(ours), package=False)
    with pytest.raises(FinetuneError, match="is a DiVeQDAC checkpoint.*--resume"):
        read_stock_dac(ours)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FinetuneError, match="cannot read it"):
        read_stock_dac(tmp_path / "junk.pth")
    torch.save({"state_dict": {}, "metadata": {"kwargs": {"n_codebooks": 3}}}, tmp_path / "empty.pth")
    with pytest.raises(FinetuneError, match="not a dac.model.DAC checkpoint"):
        read_stock_dac(tmp_path / "empty.pth")
    with pytest.raises(FinetuneError, match="no such file"):
        read_stock_dac(tmp_path / "missing.pth")


def test_explicit_keys_are_the_confs_and_the_command_lines(monkeypatch):
    monkeypatch.chdir(ROOT)
    keys = explicit_keys({"args.load": "conf/44khz/diveq.yml"}, ["scripts/train.py", "--num_iters=3",
                                                                 "--DiVeQDAC.noise_var", "0.01"])
    assert {"DiVeQDAC.sample_rate", "DiVeQDAC.method", "Discriminator.sample_rate", "num_iters",
            "DiVeQDAC.noise_var"} <= keys
    assert "DiVeQDAC.sample_rate" not in explicit_keys({"args.load": "conf/finetune/diveq.yml"}, [])
