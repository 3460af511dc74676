"""The codec model: DAC architecture with our quantizer, registration into DAC, export to stock DAC."""
import inspect

import dac
import numpy as np
import pytest
import soundfile as sf
import torch
from audiotools import AudioSignal

from dac_diveq.codec.export import export_to_dac, to_stock_dac
from dac_diveq.codec.model import DiVeQDAC
from dac_diveq.codec.register import from_dac, register
from dac_diveq.quantize import METHODS
from dac_diveq.quantize.options import COMMON_OPTIONS, core_parameters
from tests.conftest import TINY_DAC, run_python


def _speechlike(seconds=0.6, sr=16000, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    f0 = 120 + 30 * np.sin(2 * np.pi * 3 * t)
    wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / sr) / k for k in range(1, 8))
    return (0.3 * wave * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_builds_runs_and_round_trips_through_save_and_load(method, tmp_path):
    torch.manual_seed(0)
    model = DiVeQDAC(**TINY_DAC, method=method, skip_iters=2, avg_iters=1)
    x = torch.from_numpy(_speechlike())[None, None]
    for _ in range(3):
        out = model(x, 16000)
        (out["audio"].square().mean() + out["vq/commitment_loss"] + out["vq/codebook_loss"]).backward()
    assert out["codes"].shape[1] == 3 and "stage0/perplexity" in out["vq/metrics"]
    path = model.save(str(tmp_path / "w.pth"), package=False)
    loaded = DiVeQDAC.load(path)
    assert loaded.method == method and loaded.n_codebooks == 3
    model.eval(), loaded.eval()
    assert torch.equal(model(x)["codes"], loaded(x)["codes"])
    assert loaded.quantizer.quantizers[0].codebook.maintenance.step == 3


def test_register_swaps_quantizer_in_place_and_keeps_codes():
    torch.manual_seed(0)
    stock = dac.model.DAC(**TINY_DAC).eval()
    x = torch.from_numpy(_speechlike())[None, None]
    before = stock.encode(stock.preprocess(x, 16000))[1]
    same = register(stock, method="sf_diveq", noise_var=1e-3)
    assert same is stock and type(stock.quantizer).__module__.startswith("dac_diveq")
    assert torch.equal(before, stock.encode(stock.preprocess(x, 16000))[1])
    assert all(q.codebook.maintenance.initialized for q in stock.quantizer.quantizers)
    stock.train()
    out = stock(x, 16000)  # trains with SF-DiVeQ right away: the pretrained codebook is kept
    out["audio"].mean().backward()
    assert stock.quantizer.quantizers[0].codebook.weight.grad is not None


def test_from_dac_builds_our_class_with_the_same_weights():
    torch.manual_seed(0)
    stock = dac.model.DAC(**TINY_DAC).eval()
    ours = from_dac(stock, method="diveq").eval()
    x = torch.from_numpy(_speechlike())[None, None]
    assert torch.equal(stock(x)["codes"], ours(x)["codes"])
    torch.testing.assert_close(stock(x)["audio"], ours(x)["audio"])


@pytest.mark.slow  # launches DAC's CLI
def test_export_to_stock_dac_gives_bit_identical_codes_and_decodes_with_dac_cli(tmp_path):
    torch.manual_seed(0)
    model = DiVeQDAC(**TINY_DAC, method="diveq")
    x = torch.from_numpy(_speechlike())[None, None]
    model(x, 16000)["audio"].mean().backward()  # a training step's worth of state
    model.eval()
    x = torch.from_numpy(_speechlike(seconds=1.5))[None, None]  # longer than the 1 s window: chunked
    weights = export_to_dac(model, tmp_path / "stock.pth")
    stock = dac.model.DAC.load(str(weights)).eval()
    assert type(stock) is dac.model.DAC
    assert torch.equal(stock(x)["codes"], model(x)["codes"])
    signal = AudioSignal(x, 16000)
    # The same window and level (ours defaults to encode's 5 s and the model's level, DAC's method to
    # 1 s and -16 LUFS): the same codes, at a length that is not a whole number of frames.
    short = AudioSignal(x[..., :-160], 16000)
    assert torch.equal(model.compress(short, verbose=False).codes,
                       stock.compress(short, 5.0, verbose=False, normalize_db=model.loudness_db).codes)
    ours_file = model.compress(signal, 1.0, verbose=False)  # chunked
    assert torch.equal(ours_file.codes, stock.compress(signal, verbose=False).codes)
    # A whole number of frames (1.5 s = 75) in one padded chunk: stock DAC's decoder returns 8 samples
    # short and its own file does not decode (DAC's bug, issue 21); ours holds one frame more.
    whole = model.compress(signal, verbose=False)
    assert whole.codes.shape[-1] == 76 and whole.padding
    (tmp_path / "in").mkdir()
    ours_file.save(tmp_path / "in" / "clip.dac")
    whole.save(tmp_path / "in" / "whole.dac")
    # `python -m dac decode` (DAC's own CLI) decodes our .dac files with the exported weights.
    result = run_python(["-m", "dac", "decode", tmp_path / "in", "--output", tmp_path / "out",
                         "--weights_path", weights, "--device", "cpu"])
    assert result.returncode == 0, result.stderr[-2000:]
    for name, artifact in (("clip", ours_file), ("whole", whole)):
        audio, sr = sf.read(tmp_path / "out" / f"{name}.wav")
        assert sr == 16000 and audio.shape[0] == x.shape[-1]
        expected = model.decompress(artifact).audio_data[0, 0].numpy()
        np.testing.assert_allclose(audio, expected, atol=1e-4)


def test_export_refuses_a_lookup_stock_dac_cannot_reproduce():
    model = DiVeQDAC(**TINY_DAC, method="diveq", lookup="euclidean")
    with pytest.raises(ValueError, match="cosine"):
        to_stock_dac(model)


def test_from_dac_honours_every_quantizer_option_called_from_python():
    torch.manual_seed(0)
    stock = dac.model.DAC(**TINY_DAC).eval()
    options = dict(lookup="euclidean", noise_var=2e-3, replace_every=3, replace_every_after=7, replace_slowdown_at=11,
                   replace_stop_before_end=5, discard_threshold=0.2, discard_rule="assignments", skip_iters=9,
                   avg_iters=4, latents_per_code=3, ema_decay=0.9, kl_weight=1e-3, kmeans_init=True, kmeans_iters=5)
    # fsq_levels only applies to method fsq (tests/codec/test_baselines_codec.py builds one).
    assert set(options) | {"fsq_levels"} == set(COMMON_OPTIONS)
    defaults = DiVeQDAC(**TINY_DAC).quantizer_config()
    assert all(defaults[name] != value for name, value in options.items())  # every option is non-default
    ours = from_dac(stock, method="sf_diveq", residual_mode="stagewise", **options)
    assert ours.quantizer_config() == {"method": "sf_diveq", "residual_mode": "stagewise", "fsq_levels": None,
                                       **options}
    for layer in ours.quantizer.quantizers:
        stage = layer.codebook
        schedule = stage.maintenance.schedule
        assert (stage.method, stage.lookup, stage.noise_var, stage.kl_weight) == ("sf_diveq", "euclidean", 2e-3, 1e-3)
        assert (schedule.every_after, schedule.slowdown_at, schedule.stop_before_end) == (7, 11, 5)
        assert (stage.maintenance.discard_threshold, stage.maintenance.discard_rule, stage.maintenance.skip_iters,
                stage.maintenance.avg_iters) == (0.2, "assignments", 9, 4)
        assert stage.maintenance.rows_per_step == -(-TINY_DAC["codebook_size"] * 3 // 4)  # latents_per_code=3
        # Pretrained codewords are kept: neither the warm-up's nor k-means' initialisation replaces them.
        assert stage.maintenance.kmeans_iters == 5 and not stage.maintenance.kmeans_pending
    # The quantizer configuration of one model rebuilds the same quantizer around other weights.
    again = from_dac(stock, **ours.quantizer_config())
    assert again.quantizer_config() == ours.quantizer_config()
    with pytest.raises(TypeError, match="nosuch"):
        from_dac(stock, nosuch=1)


def test_the_codec_takes_the_common_options_with_the_cores_defaults_but_dacs_lookup():
    parameters = inspect.signature(DiVeQDAC).parameters
    assert list(parameters)[-len(COMMON_OPTIONS):] == list(COMMON_OPTIONS)
    for option in core_parameters(COMMON_OPTIONS):
        assert parameters[option.name].default == ("cosine" if option.name == "lookup" else option.default)


def test_unquantized_reconstruction_is_what_the_warm_up_trains(tmp_path):
    """Before initialisation (skip_iters) a training forward passes latents through every stage's
    projections: reconstruct_unquantized must be that same function, in eval mode; the quantized
    eval output differs (it looks codes up)."""
    torch.manual_seed(0)
    model = DiVeQDAC(**TINY_DAC, skip_iters=100, avg_iters=1, quantizer_dropout=0.0)
    audio = 0.1 * torch.randn(2, 1, 3200)
    model.train()
    trained_path = model(audio, 16000)["audio"].detach()
    model.eval()
    bypass = model.reconstruct_unquantized(audio, 16000)
    assert bypass.shape == trained_path.shape
    assert torch.allclose(bypass, trained_path, atol=1e-6)
    assert not torch.allclose(model(audio, 16000)["audio"], bypass, atol=1e-3)


@pytest.mark.slow  # launches the script
def test_autoencoder_ceiling_script_reports_both_columns(tmp_path):
    torch.manual_seed(0)
    model = DiVeQDAC(**TINY_DAC, skip_iters=100, avg_iters=1)
    model.save(str(tmp_path / "weights.pth"), package=False)
    (tmp_path / "clips").mkdir()
    sf.write(tmp_path / "clips" / "a.wav", (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32),
             16000)
    result = run_python(["scripts/autoencoder_ceiling.py", "--weights_path", tmp_path / "weights.pth",
                         "--input", tmp_path / "clips"])
    assert result.returncode == 0, result.stderr[-2000:]
    mean = result.stdout.strip().splitlines()[-1].split("\t")
    assert mean[0] == "mean" and len(mean) == 5 and all(-1 <= float(v) <= 4.7 for v in mean[1:])
