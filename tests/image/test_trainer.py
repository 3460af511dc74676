"""The image trainers on tiny real models and real (embedded) photographs: every method trains,
residual/product structures, exact resume, the VQGAN's adversarial schedule, the GPT prior and
refusal of checkpoints from another configuration."""
import math

import pytest
import torch

from dac_diveq.training import checkpoint
from dac_diveq.data.images import EmbeddedImages
from dac_diveq.image import VQGAN, VQVAE, CodeGPT, PatchDiscriminator
from dac_diveq.image.prior import PriorConfig, PriorTrainer, encode_codes, generate
from dac_diveq.image.trainer import AutoencoderConfig, AutoencoderParts, AutoencoderTrainer
from dac_diveq.quantize import METHODS

pytestmark = pytest.mark.slow  # trains image models

SIZE = 16
TINY = dict(channels=16, res_channels=8, n_down=2, n_res_blocks=1, codebook_dim=8, codebook_size=16,
            # maintenance inside a few steps: replacement every 2 steps, SF-DiVeQ init after 3
            replace_every=2, replace_every_after=2, replace_stop_before_end=0, discard_threshold=0.5,
            skip_iters=3, avg_iters=2, latents_per_code=2)
TINY_GAN = dict(ch=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8], z_channels=16, resolution=SIZE,
                embed_dim=8, codebook_size=16)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return (EmbeddedImages("train", SIZE, n_items=10_000, seed=0),
            EmbeddedImages("val", SIZE, n_items=4, seed=0))


def _vqvae_trainer(data, save_path, method="diveq", num_iters=8, seed=0, valid_freq=4, **kwargs):
    torch.manual_seed(seed)
    model = VQVAE(**{**TINY, **kwargs}, method=method)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [3, 6], 0.5)
    parts = AutoencoderParts(model, optimizer, scheduler, *data)
    config = AutoencoderConfig(save_path=str(save_path), num_iters=num_iters, batch_size=4, valid_freq=valid_freq,
                               log_freq=1, lambdas={"rec/mse": 1.0, "vq/aux": 1.0})
    return AutoencoderTrainer(config, parts, CPU)


def _check_scores(scores):
    assert math.isfinite(scores["psnr"]) and math.isfinite(scores["ssim"]) and math.isfinite(scores["rec/mse"])
    assert -1.0 <= scores["ssim"] <= 1.0
    assert 0.0 < scores["codebook/usage"] <= 1.0
    assert scores["codebook/perplexity"] >= 1.0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_validates(method, data, tmp_path):
    trainer = _vqvae_trainer(data, tmp_path, method=method, num_iters=4)
    before = [p.detach().clone() for p in trainer.parts.model.parameters()]
    scores = trainer.run()
    assert trainer.step == 4
    _check_scores(scores)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.parts.model.parameters()))
    assert (tmp_path / "latest" / "vqvae" / "weights.pth").is_file()
    assert VQVAE.load(str(tmp_path / "latest" / "vqvae" / "weights.pth")).method == method
    if method.startswith("sf_"):
        # skip_iters=3: the space-filling codebook was initialised from latents during the run
        assert all(stage.maintenance.initialized for stage in trainer.parts.model.quantizer.stages)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("structure", ["residual", "product"])
def test_residual_and_product_structures_train(structure, data, tmp_path):
    trainer = _vqvae_trainer(data, tmp_path, num_iters=4, structure=structure, n_quantizers=2)
    scores = trainer.run()
    _check_scores(scores)
    images = torch.stack([data[1][i] for i in range(2)])
    _, codes, _ = trainer.reconstruct(images)
    assert codes.shape == (2, SIZE // 4, SIZE // 4, 2)  # the stage/group axis last
    assert int(codes.min()) >= 0 and int(codes.max()) < TINY["codebook_size"]


def _equal(a, b, where=""):
    """Recursive exact equality of state dicts (tensors, extra-state dicts, lists, scalars)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["diveq", "sf_diveq"])
def test_resume_after_interruption_continues_exactly(method, data, tmp_path):
    # sf_diveq: skip_iters=5, avg_iters=3 -> latents are captured at steps 3-5 and the codebook is
    # initialised before step 6, so the capture buffer is half full at the step-4 checkpoint;
    # replacement (multinomial on the global RNG) runs every 2 steps on both sides of it.
    kw = dict(skip_iters=5, avg_iters=3)
    straight = _vqvae_trainer(data, tmp_path / "a", method=method, num_iters=8, **kw)
    straight.run()
    interrupted = _vqvae_trainer(data, tmp_path / "b", method=method, num_iters=8, **kw)
    interrupted.run(until=4)
    if method == "sf_diveq":
        stage = interrupted.parts.model.quantizer.stages[0].maintenance
        assert not stage.initialized and stage.capture_len > 0
    del interrupted
    resumed = _vqvae_trainer(data, tmp_path / "b", method=method, num_iters=8, seed=123, **kw)
    assert not torch.equal(resumed.parts.model.quantizer.codebooks()[0], straight.parts.model.quantizer.codebooks()[0])
    assert resumed.resume() and resumed.step == 4
    resumed.run()
    assert resumed.step == straight.step == 8
    _equal(straight.parts.model.state_dict(), resumed.parts.model.state_dict(), "model")
    _equal(straight.parts.model.quantizer.state_dict(), resumed.parts.model.quantizer.state_dict(), "quantizer")
    assert any(k.endswith("_extra_state") for k in resumed.parts.model.quantizer.state_dict())
    _equal(straight.parts.optimizer.state_dict(), resumed.parts.optimizer.state_dict(), "optimizer")
    _equal(straight.parts.scheduler.state_dict(), resumed.parts.scheduler.state_dict(), "scheduler")
    assert [h["step"] for h in resumed.history] == [4, 8]
    assert resumed.history[-1] == straight.history[-1]


def _vqgan_trainer(data, save_path, num_iters=4, disc_start=2):
    torch.manual_seed(0)
    model = VQGAN(**TINY_GAN, method="diveq")
    disc = PatchDiscriminator(ndf=8, n_layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    parts = AutoencoderParts(model, opt, torch.optim.lr_scheduler.MultiStepLR(opt, [100]), *data,
                             discriminator=disc, optimizer_d=opt_d,
                             scheduler_d=torch.optim.lr_scheduler.MultiStepLR(opt_d, [100]))
    config = AutoencoderConfig(save_path=str(save_path), num_iters=num_iters, batch_size=4, valid_freq=num_iters,
                               log_freq=1, lambdas={"rec/l1": 1.0, "vq/aux": 1.0, "adv/gen": 0.8},
                               disc_start=disc_start)
    return AutoencoderTrainer(config, parts, CPU)


@pytest.mark.timeout(120)
def test_vqgan_adversarial_terms_start_at_disc_start(data, tmp_path):
    trainer = _vqgan_trainer(data, tmp_path, num_iters=4, disc_start=2)
    disc = trainer.parts.discriminator
    for step in range(4):
        before = [p.detach().clone() for p in disc.parameters()]
        batch = torch.stack([data[0][4 * step + i] for i in range(4)])
        terms = trainer.train_step(batch)
        trainer.step += 1
        changed = any(not torch.equal(a, b) for a, b in zip(before, disc.parameters()))
        assert math.isfinite(float(terms["loss"].detach())) and math.isfinite(float(terms["rec/l1"].detach()))
        if step < 2:
            assert not any(k.startswith("adv/") for k in terms), (step, sorted(terms))
            assert not changed, f"discriminator updated at step {step} before disc_start"
        else:
            assert {"adv/gen", "adv/weight", "adv/disc"} <= set(terms)
            assert math.isfinite(float(terms["adv/gen"].detach())) and math.isfinite(float(terms["adv/disc"].detach()))
            weight = float(terms["adv/weight"])
            assert math.isfinite(weight) and weight > 0
            assert changed, f"discriminator not updated at step {step}"
    scores = trainer.validate()
    _check_scores(scores)
    trainer.save(["latest"])
    assert (tmp_path / "latest" / "vqgan" / "weights.pth").is_file()
    assert (tmp_path / "latest" / "discriminator" / "optimizer.pth").is_file()


@pytest.mark.timeout(120)
def test_prior_trains_on_codes_and_generates_images(data, tmp_path):
    stage1 = _vqvae_trainer(data, tmp_path / "vqvae", num_iters=6, valid_freq=6)
    stage1.run()
    model = stage1.parts.model.eval()
    grid = (SIZE // 4, SIZE // 4)
    torch.manual_seed(0)
    prior = CodeGPT(vocab_size=TINY["codebook_size"], block_size=grid[0] * grid[1], n_layer=1, n_head=2, n_embd=16)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [100])
    config = PriorConfig(save_path=str(tmp_path / "gpt"), num_iters=30, batch_size=8, valid_freq=30, log_freq=1)
    trainer = PriorTrainer(config, model, prior, optimizer, scheduler, *data, CPU)
    assert trainer.grid == grid
    # Fixed codes of training images: the prior must learn them.
    fixed = encode_codes(model, torch.stack([data[0][i] for i in range(8)]))
    with torch.no_grad():
        before = float(prior.loss(fixed)) / math.log(2)
    trainer.run()
    with torch.no_grad():
        after = float(prior.loss(fixed)) / math.log(2)
    assert math.isfinite(after) and after < before, (before, after)
    scores = trainer.validate()
    assert math.isfinite(scores["nll"]) and scores["nll"] > 0
    assert scores["bits_per_code"] == pytest.approx(scores["nll"] / math.log(2))
    # The saved prior reloads on its own (vocabulary and length are in its metadata).
    loaded = CodeGPT.load(str(tmp_path / "gpt" / "latest" / "codegpt" / "weights.pth")).eval()
    assert (loaded.vocab_size, loaded.block_size) == (TINY["codebook_size"], grid[0] * grid[1])
    with torch.no_grad():
        assert torch.equal(loaded.loss(fixed), prior.eval().loss(fixed))
    images = generate(model, prior, 3, grid, top_k=5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 3, SIZE, SIZE)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0 and torch.isfinite(images).all()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("change, key", [(dict(codebook_size=32), "codebook_size"), (dict(method="ste"), "method")])
def test_checkpoint_from_another_configuration_is_refused(change, key, data, tmp_path):
    _vqvae_trainer(data, tmp_path, num_iters=2, valid_freq=2).run()
    other = _vqvae_trainer(data, tmp_path, num_iters=2, valid_freq=2, **change)
    with pytest.raises(checkpoint.CheckpointError, match=key):
        other.resume()


@pytest.mark.parametrize("trainer, models", [
    (AutoencoderTrainer, lambda: [VQVAE(channels=8, res_channels=4, n_down=1, n_res_blocks=1, codebook_dim=4,
                                        codebook_size=8),
                                  VQGAN(ch=8, ch_mult=[1], num_res_blocks=1, attn_resolutions=[], z_channels=4,
                                        embed_dim=4, codebook_size=8)]),
    (PriorTrainer, lambda: [CodeGPT(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=8)]),
])
def test_each_image_trainer_declares_identity_keys_its_models_have(trainer, models):
    """The track declares what a resumed checkpoint must agree on (the training layer names no
    model's fields): every key is an attribute of one of its models, so none is a dead typo."""
    assert trainer.identity_keys and not hasattr(checkpoint, "IDENTITY_KEYS")
    built = models()
    assert all(any(hasattr(model, key) for model in built) for key in trainer.identity_keys)
