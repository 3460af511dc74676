"""DAC's training recipe on a tiny real model: every method trains, checkpoints are atomic,
resume continues exactly."""
import functools
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from audiotools.data.datasets import AudioDataset
from dac.model.discriminator import Discriminator
from dac.nn import loss as dac_losses
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dac_diveq.codec.model import DiVeQDAC
from dac_diveq.codec.trainer import Components, TrainConfig, Trainer
from dac_diveq.data import loaders
from dac_diveq.errors import ConfigError
from dac_diveq.quantize import METHODS
from dac_diveq.training import checkpoint
from tests.conftest import FAST_MAINTENANCE, TINY_DAC

pytestmark = pytest.mark.slow  # trains codecs


@pytest.fixture(scope="module")
def audio_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    sr = 16000
    for split, n in (("train", 6), ("val", 2)):
        (root / split).mkdir()
        for i in range(n):
            t = np.arange(int((0.8 + 0.2 * i) * sr)) / sr
            f0 = 100 + 25 * i + 20 * np.sin(2 * np.pi * 2 * t)
            wave = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / sr) / k for k in range(1, 6))
            sf.write(root / split / f"{split}{i}.wav", (0.2 * wave * (0.5 + 0.5 * np.sin(6 * t))).astype(np.float32), sr)
    return {"train": {"speech": [str(root / "train")]}, "val": {"speech": [str(root / "val")]}}


def _trainer(folders, save_path, method="diveq", num_iters=4, adversarial=False, seed=0, amp="none",
             adversarial_from=0, **options):
    torch.manual_seed(seed)
    model = DiVeQDAC(**{**TINY_DAC, **FAST_MAINTENANCE, **options}, method=method)
    lambdas = {"mel/loss": 15.0, "vq/commitment_loss": 0.25, "vq/codebook_loss": 1.0, "vq/kl_loss": 1.0}
    disc = opt_d = sched_d = gan = None
    if adversarial:
        lambdas.update({"adv/gen_loss": 1.0, "adv/feat_loss": 2.0})
        disc = Discriminator(sample_rate=16000, rates=[], periods=[2, 3], fft_sizes=[256], bands=[[0.0, 0.5], [0.5, 1.0]])
        opt_d = torch.optim.AdamW(disc.parameters(), 1e-4)
        sched_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, 0.999)
        gan = dac_losses.GANLoss(disc)
    opt_g = torch.optim.AdamW(model.parameters(), 1e-3)
    sched_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, 0.999)
    transform = loaders.build_transform(postprocess=["VolumeNorm", "RescaleAudio"])
    train = loaders.build_dataset(folders["train"], 16000, transform,
                                  make_dataset=functools.partial(AudioDataset, duration=0.2, n_examples=1000))
    val = loaders.build_dataset(folders["val"], 16000, transform,
                                make_dataset=functools.partial(AudioDataset, duration=0.5, n_examples=2))
    mel = dac_losses.MelSpectrogramLoss(n_mels=[20, 40], window_lengths=[128, 512])
    stft = dac_losses.MultiScaleSTFTLoss(window_lengths=[512, 128])
    parts = Components(model, opt_g, sched_g, disc, opt_d, sched_d, train, val, mel, stft,
                       dac_losses.L1Loss(), gan)
    config = TrainConfig(save_path=str(save_path), num_iters=num_iters, batch_size=2, valid_freq=2, log_freq=1,
                         val_batch_size=2, lambdas=lambdas, sample_freq=2, amp=amp,
                         adversarial_from=adversarial_from)
    return Trainer(config, parts, torch.device("cpu"))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_with_real_dac_losses(method, audio_folders, tmp_path):
    trainer = _trainer(audio_folders, tmp_path, method=method, num_iters=4)
    scores = trainer.run()
    assert trainer.step == 4
    assert np.isfinite(scores["mel/loss"]) and 1.0 <= scores["pesq_wb"] <= 4.7 and -1 <= scores["stoi"] <= 1
    assert (tmp_path / "latest" / "diveqdac" / "weights.pth").exists()
    assert os.listdir(tmp_path / "logs")  # TensorBoard event files
    reloaded = DiVeQDAC.load(str(tmp_path / "latest" / "diveqdac" / "weights.pth"))
    assert reloaded.method == method


@pytest.mark.parametrize("method, options", [
    ("fsq", dict(codebook_size=125, codebook_dim=3, fsq_levels=[5, 5, 5])),
    ("simvq", dict(skip_iters=0)),
    ("ste", dict(kmeans_init=True, skip_iters=0)),
])
def test_baselines_and_kmeans_init_train_save_and_reload(method, options, audio_folders, tmp_path):
    trainer = _trainer(audio_folders, tmp_path, method=method, num_iters=4, **options)
    scores = trainer.run()
    assert trainer.step == 4 and np.isfinite(scores["mel/loss"])
    reloaded = DiVeQDAC.load(str(tmp_path / "latest" / "diveqdac" / "weights.pth"))
    assert reloaded.method == method
    assert (reloaded.fsq_levels, reloaded.kmeans_init) == (options.get("fsq_levels"), options.get("kmeans_init", False))
    model = trainer.parts.generator
    for ours, theirs in zip(model.quantizer.quantizers, reloaded.quantizer.quantizers):
        torch.testing.assert_close(ours.codebook.codebook.detach().cpu(), theirs.codebook.codebook.detach())
        assert not theirs.codebook.maintenance.kmeans_pending


@pytest.mark.parametrize("adversarial", [False, True])
def test_bf16_autocast_trains_and_stays_close_to_float32(adversarial, audio_folders, tmp_path):
    """``amp: bf16`` (autocast around the generator and the discriminator) against float32 from the same
    weights on one fixed batch: the losses agree within a few percent step by step while rounding has not
    yet compounded (4 steps; later the two trajectories drift apart by chance, up to ~6 % at step 8 for
    some seeds, before and after any change to the model), agree on average over 8 steps, and training
    lowers them."""
    trainers = {amp: _trainer(audio_folders, tmp_path / amp, adversarial=adversarial, amp=amp, skip_iters=0)
                for amp in ("none", "bf16")}
    data = trainers["none"].parts.train_data
    batch = data.collate([data[i] for i in range(2)])
    mel = {}
    for amp, trainer in trainers.items():
        torch.manual_seed(1)  # the same DiVeQ noise draws for both
        signal = trainer.prepare_batch(batch)
        mel[amp] = np.array([trainer.train_step(signal)["mel/loss"].item() for _ in range(8)])
    f32, bf16 = mel["none"], mel["bf16"]
    assert not np.array_equal(f32, bf16)  # the bf16 path ran in bf16
    assert np.all(np.abs(bf16[:4] - f32[:4]) / f32[:4] < 0.05), (f32, bf16)
    assert abs(bf16.mean() - f32.mean()) / f32.mean() < 0.05, (f32, bf16)
    assert bf16[-2:].mean() < 0.9 * bf16[0], bf16


def test_adversarial_training_step_updates_the_discriminator(audio_folders, tmp_path):
    trainer = _trainer(audio_folders, tmp_path, adversarial=True, num_iters=2)
    before = [p.detach().clone() for p in trainer.parts.discriminator.parameters()]
    trainer.run()
    after = list(trainer.parts.discriminator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    assert (tmp_path / "latest" / "discriminator" / "weights.pth").exists()


def test_the_discriminator_joins_at_adversarial_from(audio_folders, tmp_path):
    trainer = _trainer(audio_folders, tmp_path, adversarial=True, num_iters=3, adversarial_from=2)
    before = [p.detach().clone() for p in trainer.parts.discriminator.parameters()]
    batch = trainer.prepare_batch(trainer.collate()([trainer.train_data[i] for i in range(2)]))
    terms = trainer.train_step(batch)  # step 0: reconstruction only
    assert "adv/gen_loss" not in terms and "adv/disc_loss" not in terms
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.parts.discriminator.parameters()))
    assert trainer.parts.scheduler_d.last_epoch == 0  # its schedule starts when it does
    trainer.step = 2
    terms = trainer.train_step(batch)
    assert {"adv/gen_loss", "adv/feat_loss", "adv/disc_loss"} <= terms.keys()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.parts.discriminator.parameters()))
    assert "from step 2" in trainer.describe()["discriminator"]


def test_adversarial_from_must_be_a_step():
    with pytest.raises(ConfigError, match="adversarial_from"):
        TrainConfig(adversarial_from=-1)


def _state(trainer):
    model = trainer.parts.generator
    return ({k: v.clone() if torch.is_tensor(v) else v for k, v in model.state_dict().items()},
            trainer.parts.optimizer_g.state_dict()["state"], trainer.step)


def _assert_same(a, b):
    sa, oa, stepa = a
    sb, ob, stepb = b
    assert stepa == stepb
    assert sa.keys() == sb.keys()
    for key in sa:
        if torch.is_tensor(sa[key]):
            assert torch.equal(sa[key], sb[key]), key
        else:
            assert repr(sa[key]) == repr(sb[key]), key
    for idx in oa:
        for name in oa[idx]:
            assert torch.equal(oa[idx][name], ob[idx][name])


@pytest.mark.parametrize("method", ["diveq", "sf_diveq"])
def test_resume_after_interruption_continues_exactly(method, audio_folders, tmp_path):
    straight = _trainer(audio_folders, tmp_path / "a", method=method, num_iters=6)
    straight.run()
    interrupted = _trainer(audio_folders, tmp_path / "b", method=method, num_iters=6)
    interrupted.run(until=2)  # "killed" after the step-2 checkpoint
    del interrupted
    resumed = _trainer(audio_folders, tmp_path / "b", method=method, num_iters=6, seed=123)
    assert resumed.resume() and resumed.step == 2
    resumed.run()
    _assert_same(_state(straight), _state(resumed))


def test_a_crash_during_save_leaves_the_previous_latest_loadable(audio_folders, tmp_path, monkeypatch):
    trainer = _trainer(audio_folders, tmp_path, num_iters=4)
    trainer.run(until=2)
    good = os.path.realpath(tmp_path / "latest")
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        if str(getattr(f, "name", f)).endswith("trainer.pth"):
            raise KeyboardInterrupt("killed while writing the checkpoint")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    monkeypatch.undo()
    assert os.path.realpath(tmp_path / "latest") == good
    resumed = _trainer(audio_folders, tmp_path, num_iters=4)
    assert resumed.resume() and resumed.step == 2


def test_checkpoint_from_another_configuration_is_refused(audio_folders, tmp_path):
    _trainer(audio_folders, tmp_path, method="diveq", num_iters=2).run()
    other = _trainer(audio_folders, tmp_path, method="ste", num_iters=2)
    with pytest.raises(checkpoint.CheckpointError, match="method"):
        other.resume()


def test_audio_samples_are_logged_on_sample_steps_that_are_not_validation_steps(audio_folders, tmp_path):
    trainer = _trainer(audio_folders, tmp_path, num_iters=4)
    trainer.config.valid_freq, trainer.config.sample_freq = 4, 3  # validation at 4, samples at 3
    trainer.run()
    events = EventAccumulator(str(tmp_path / "logs"), size_guidance={"audio": 0})
    events.Reload()
    steps = {tag: [e.step for e in events.Audio(tag)] for tag in events.Tags()["audio"]}
    assert steps == {f"samples/{i}/{kind}": [3] for i in (0, 1) for kind in ("recons", "input")}


def test_gradient_clipping_is_configured_per_model(audio_folders, tmp_path):
    trainer = _trainer(audio_folders, tmp_path, adversarial=True, num_iters=1)
    batch = trainer.prepare_batch(next(iter(torch.utils.data.DataLoader(
        trainer.train_data, batch_size=2, collate_fn=trainer.collate()))))
    terms = trainer.train_step(batch)
    assert {"other/grad_norm", "other/grad_norm_d"} <= set(terms)  # DAC's defaults: 1e3 and 10
    trainer.config.grad_clip = trainer.config.grad_clip_d = 0.0
    assert not {"other/grad_norm", "other/grad_norm_d"} & set(trainer.train_step(batch))


def test_validation_reports_eval_mode_codebook_usage(audio_folders, tmp_path):
    # SF-DiVeQ's training usage counts segments; validation reports what stored codes use.
    trainer = _trainer(audio_folders, tmp_path, method="sf_diveq", num_iters=4)
    trainer.run()
    scores = trainer.validate()
    model, val = trainer.parts.generator, trainer.parts.val_data
    model.eval()
    seen = [set() for _ in range(model.n_codebooks)]
    with torch.no_grad():
        size = trainer.config.val_batch_size
        for start in range(0, len(val), size):
            items = [val[i] for i in range(start, min(len(val), start + size))]
            signal = trainer._signal(val.collate(items), val)
            codes = model(signal.audio_data, signal.sample_rate)["codes"]
            for stage in range(model.n_codebooks):
                seen[stage].update(codes[:, stage].flatten().tolist())
    for stage in range(model.n_codebooks):
        assert scores[f"vq/stage{stage}/usage"] == pytest.approx(len(seen[stage]) / model.codebook_size)
        assert 1.0 <= scores[f"vq/stage{stage}/perplexity"] <= len(seen[stage]) + 1e-6
    assert scores["vq/usage"] == pytest.approx(sum(map(len, seen)) / (model.n_codebooks * model.codebook_size))


def test_start_up_summary_describes_the_codec_and_its_data(audio_folders, tmp_path):
    lines = _trainer(audio_folders, tmp_path, adversarial=True).summary()
    model = DiVeQDAC(**TINY_DAC)
    assert lines["generator"].endswith(f"diveq quantizer, 3 x 64 codebooks = {model.bitrate() / 1000:g} kbps at 16000 Hz"
                                       f", quantizer dropout {model.quantizer.quantizer_dropout:g}")
    assert lines["discriminator"].endswith("M parameters")
    assert lines["data"] == "6 training files, excerpts of 0.2 s"
    assert _trainer(audio_folders, tmp_path / "plain").summary()["discriminator"].startswith("none")


def test_the_codec_trainer_declares_identity_keys_its_model_has():
    """The track declares what a resumed checkpoint must agree on; the training layer declares none."""
    from dac_diveq.training.loop import TrainLoop

    assert TrainLoop.identity_keys == () and not hasattr(checkpoint, "IDENTITY_KEYS")
    model = DiVeQDAC(**TINY_DAC)
    assert Trainer.identity_keys and all(hasattr(model, key) for key in Trainer.identity_keys)
