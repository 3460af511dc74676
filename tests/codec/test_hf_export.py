"""Export to Hugging Face ``transformers``: for a trained tiny model of every method, ``DacModel`` decodes
our codes to our audio, encodes real speech to our codes, and the CLI round trip matches ``decode``."""
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from dac_diveq.codec.cli import main
from dac_diveq.codec.hf_export import ExportError, export_to_hf, hf_refusal
from dac_diveq.codec.model import DiVeQDAC
from dac_diveq.quantize import METHODS
from tests.conftest import FAST_MAINTENANCE, ROOT, TINY_DAC

import transformers  # noqa: E402  (the hf / test extra: a missing package fails, never skips)
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

REAL = ROOT / "data" / "speech" / "test_real"
#: Frames whose HF codes may differ from ours: each must be a cosine-similarity float tie at its first
#: differing stage (the two implementations round differently; measured: 1 of the 854 frames of the
#: three real clips, for one method), and they are at most this fraction of a method's frames.
MAX_TIE_FRACTION = 0.005
TIE = 1e-5


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[torch.Tensor]:
    """Real 16 kHz speech (the registry clips of data/speech/test_real, 10 s at most each), or
    espeak-ng speech where the data are not prepared."""
    clips = sorted(REAL.glob("*.wav")) if REAL.is_dir() else []
    if not clips:
        if shutil.which("espeak-ng") is None:
            pytest.fail("needs data/speech/test_real (scripts/prepare_data.py) or espeak-ng")
        from dac_diveq.data.synth import synthesize
        from dac_diveq.data.voices import VoiceSetting

        clips = [tmp_path_factory.mktemp("speech") / "s.wav"]
        synthesize("Bring six spoons of fresh snow peas for your brother Bob.",
                   VoiceSetting("espeak-ng", "en-us", 150), clips[0])
    out = []
    for clip in clips:
        audio, sr = sf.read(clip, dtype="float32", always_2d=True)
        assert sr == 16000
        out.append(torch.from_numpy(audio[: 10 * sr, 0].copy())[None, None])
    return out


def _trained(method: str, steps: int = 4, residual_mode: str = "stagewise") -> DiVeQDAC:
    """A tiny model a few optimizer steps from its initialisation (replacement and SF-DiVeQ's
    initialisation from latents included), in eval mode."""
    torch.manual_seed(0)
    model = DiVeQDAC(**TINY_DAC, method=method, residual_mode=residual_mode, **{k: v for k, v in FAST_MAINTENANCE.items()
                                                    if k in ("replace_every", "replace_every_after", "skip_iters",
                                                             "avg_iters", "latents_per_code")})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = 0.1 * torch.randn(2, 1, 3200)
    for _ in range(steps):
        out = model(x, 16000)
        loss = F.l1_loss(out["audio"], x[..., : out["audio"].shape[-1]]) + out["vq/commitment_loss"] + \
            out["vq/codebook_loss"] + out.get("vq/kl_loss", 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _ties(model: DiVeQDAC, x: torch.Tensor, ours: torch.Tensor, theirs: torch.Tensor) -> int:
    """Frames whose codes differ; asserts that each first differing stage is a float tie."""
    differs = (ours != theirs).any(1)[0]  # frames
    if not differs.any():
        return 0
    latents = model.encode(x)[2][0]  # N*d x T, identical up to the first differing stage
    d = model.quantizer.codebook_dim[0]
    for t in differs.nonzero().flatten().tolist():
        stage = int((ours[0, :, t] != theirs[0, :, t]).nonzero()[0])
        z = F.normalize(latents[stage * d:(stage + 1) * d, t], dim=0)
        codebook = F.normalize(model.quantizer.quantizers[stage].codebook.codebook, dim=1)  # SimVQ: mapped
        similarity = codebook @ z
        gap = (similarity[ours[0, stage, t]] - similarity[theirs[0, stage, t]]).abs().item()
        assert gap < TIE, f"frame {t}, stage {stage}: codes differ by {gap:.2e} in cosine similarity, not a tie"
    return int(differs.sum())


# SimVQ: its mapped codebook is baked into DacModel's plain table.
@pytest.mark.parametrize("method, residual_mode",
                         [(m, "stagewise") for m in METHODS] + [("diveq", "joint"), ("simvq", "stagewise")])
def test_dacmodel_reproduces_our_codes_and_audio(method, residual_mode, tmp_path, speech):
    model = _trained(method, residual_mode=residual_mode)
    folder = export_to_hf(model, tmp_path / "hf")
    hf = transformers.DacModel.from_pretrained(folder).eval()
    extractor = transformers.DacFeatureExtractor.from_pretrained(folder)
    assert (extractor.sampling_rate, extractor.hop_length) == (16000, model.hop_length)
    assert hf.config.hop_length == model.hop_length and hf.config.n_codebooks == model.n_codebooks
    ties = frames = 0
    with torch.inference_mode():
        for x in speech:
            x = x[..., : x.shape[-1] // model.hop_length * model.hop_length]
            codes = model.encode(x)[1]
            hf_codes = hf.encode(x).audio_codes
            assert hf_codes.shape == codes.shape
            ties, frames = ties + _ties(model, x, codes, hf_codes), frames + codes.shape[-1]
            # Decoding our codes: the same audio (also with fewer codebooks, a lower bitrate).
            for n in (model.n_codebooks, 1):
                ours = model.decode(model.quantizer.from_codes(codes[:, :n])[0])[:, 0]
                theirs = hf.decode(audio_codes=codes[:, :n]).audio_values
                assert (ours - theirs).abs().max().item() <= 1e-4
    assert ties <= MAX_TIE_FRACTION * frames, f"{ties} of {frames} frames are float ties"


def test_cli_round_trip_matches_decode(tmp_path, speech, capsys):
    """ours -> `export --format hf` -> DacModel decodes the `encode` CLI's codes to `decode`'s audio."""
    from audiotools import AudioSignal

    from dac_diveq.codec.codec_io import load_dac

    weights = tmp_path / "weights.pth"
    _trained("diveq").save(str(weights), package=False)
    clip = tmp_path / "clip.wav"
    sf.write(clip, speech[0][0, 0, : 3 * 16000].numpy(), 16000)  # shorter than a window: one padded chunk
    assert main(["export", str(weights), "--format", "hf", "--output", str(tmp_path / "hf")]) == 0
    assert "DacModel.from_pretrained" in capsys.readouterr().out
    assert main(["encode", str(clip), "--output", str(tmp_path / "codes"), "--weights_path", str(weights),
                 "--device", "cpu"]) == 0
    assert main(["decode", str(tmp_path / "codes" / "clip.dac"), "--output", str(tmp_path / "decoded"),
                 "--weights_path", str(weights), "--device", "cpu"]) == 0
    expected, sr = sf.read(tmp_path / "decoded" / "clip.wav", dtype="float32")

    artifact, _ = load_dac(tmp_path / "codes" / "clip.dac")
    hf = transformers.DacModel.from_pretrained(tmp_path / "hf").eval()
    with torch.inference_mode():
        audio = hf.decode(audio_codes=artifact.codes).audio_values
    signal = AudioSignal(audio[:, None], hf.config.sampling_rate)
    signal.normalize(artifact.input_db)  # compress measured the loudness; the .dac file keeps it
    # decompress fills the decoder's short tail (odd strides, under one frame) with zeros.
    got = F.pad(signal.audio_data[0, 0], (0, max(artifact.original_length - signal.signal_length, 0)))
    got = got[: artifact.original_length].numpy()
    assert sr == 16000 and got.shape == expected.shape
    # decode writes 16-bit samples: one quantisation step on top of the model's float tolerance.
    assert np.abs(got - expected).max() <= 1e-4 + 1 / 2 ** 15


def test_models_dacmodel_cannot_reproduce_are_refused_in_one_line(tmp_path, capsys):
    euclidean = DiVeQDAC(**TINY_DAC, method="diveq", lookup="euclidean")
    assert "cosine" in hf_refusal(euclidean)
    with pytest.raises(ExportError, match="cosine"):
        export_to_hf(euclidean, tmp_path / "hf")
    narrow = DiVeQDAC(**{**TINY_DAC, "latent_dim": 64})  # as DAC's 44 kHz 16 kbps model: a narrow latent
    assert "latent width 64" in hf_refusal(narrow)
    curve = DiVeQDAC(**TINY_DAC, method="sf_diveq")
    for vq in curve.quantizer.quantizers:
        vq.codebook.sf_inference = "curve"
    assert "curve" in hf_refusal(curve)
    weights = tmp_path / "euclidean.pth"
    euclidean.save(str(weights), package=False)
    assert main(["export", str(weights), "--format", "hf", "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {weights}: cannot export to transformers") and "cosine" in err[0]
    assert not (tmp_path / "out").exists()
    assert main(["export", str(weights), "--format", "dac", "--output", str(tmp_path / "stock.pth")]) == 1
    assert "cosine" in capsys.readouterr().err and not (tmp_path / "stock.pth").exists()


def test_cli_export_dac_writes_a_stock_checkpoint(tmp_path, capsys):
    import dac

    weights = tmp_path / "weights.pth"
    model = _trained("sf_diveq", steps=3)
    model.save(str(weights), package=False)
    assert main(["export", str(weights), "--format", "dac", "--output", str(tmp_path / "stock.pth")]) == 0
    stock = dac.model.DAC.load(str(tmp_path / "stock.pth")).eval()
    x = 0.1 * torch.randn(1, 1, 3200)
    with torch.inference_mode():
        assert torch.equal(stock.encode(x)[1], model.encode(x)[1])
