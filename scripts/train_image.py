"""Train the image track on the DiVeQ quantizer core: a VQ-VAE (paper Table 3) or a VQGAN
(stage 1), or a GPT prior over a trained stage-1 model's codes (stage 2).

    python scripts/train_image.py --args.load conf/image/quickstart/vqvae_diveq.yml
    python scripts/train_image.py --args.load conf/image/vqgan_diveq.yml --lpips_weights vgg16.pth
    python scripts/train_image.py --args.load conf/image/gpt.yml --stage1_path runs/image/vqgan_diveq
    torchrun --nproc_per_node 8 scripts/train_image.py --args.load conf/image/vqvae_diveq.yml

Every yml key can be overridden on the command line (argbind), e.g. ``--VQVAE.codebook_size 64``.
"""
import dataclasses
import sys
import warnings

import argbind
import torch

from dac_diveq.data import images as image_data
from dac_diveq.errors import ConfigError
from dac_diveq.image import VQGAN, VQVAE, CodeGPT, PatchDiscriminator
from dac_diveq.image.io import load_stage1
from dac_diveq.image.prior import PriorConfig, PriorTrainer
from dac_diveq.image.trainer import AutoencoderConfig, AutoencoderParts, AutoencoderTrainer
from dac_diveq.metrics import image as image_metrics
from dac_diveq.training.config import takes_config
from dac_diveq.training.distributed import distributed_context, wrap
from dac_diveq.training.entry import run_training
from dac_diveq.training.loop import LoopConfig

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

MODELS = ("vqvae", "vqgan", "gpt")
VQVAE = argbind.bind(VQVAE)
VQGAN = argbind.bind(VQGAN)
PatchDiscriminator = argbind.bind(PatchDiscriminator)


@argbind.bind("generator", "discriminator", "prior")
def Adam(params, lr: float = 5.5e-4, betas: list = [0.9, 0.999], eps: float = 1e-8, weight_decay: float = 0.0):
    # Explicit signature: torch 2.11 annotates lr as ``float | Tensor``, which argbind cannot parse.
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


@argbind.bind("generator", "discriminator", "prior")
def MultiStepLR(optimizer, num_iters: int, milestones: list = [0.4, 0.7], gamma: float = 0.5):
    """Step decay per iteration; ``milestones`` are fractions of training (the authors' VQ-VAE:
    halve the learning rate at 40% and 70%)."""
    steps = sorted(int(round(f * num_iters)) for f in milestones)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, steps, gamma)


@argbind.bind("train", "val")
def build_image_dataset(source: str = "embedded", image_size: int = 32, n_items: int = 1024, seed: int = 0,
                        split: str = "train"):
    """Images in [0, 1]: ``source`` is ``"embedded"`` (scikit-image's photographs) or a folder."""
    return image_data.build_image_dataset(source, split, image_size, n_items=n_items, seed=seed)


@argbind.bind()
def GPT(vocab_size, block_size, n_layer: int = 4, n_head: int = 4, n_embd: int = 128, dropout: float = 0.0):
    """The prior's architecture (vocabulary and length come from the stage-1 model)."""
    return CodeGPT(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                   n_embd=n_embd, dropout=dropout)


def perceptual_module(weight: float, path: str, device: torch.device):
    """LPIPS-VGG16 for the loss (required when ``weight > 0``) and for validation (when found)."""
    try:
        return image_metrics.load_lpips(path or None, device=device)
    except image_metrics.WeightsNotFoundError:
        if weight > 0:
            raise
        print("note: no VGG16 weights found, validation runs without LPIPS (see --lpips_weights)",
              file=sys.stderr)
        return None


@argbind.bind(without_prefix=True)
@takes_config(AutoencoderConfig)
def train(args, config: AutoencoderConfig, model: str = "vqvae", resume: str = "false", lpips_weights: str = "",
          stage1_path: str = "", top_k: int = PriorConfig.top_k, temperature: float = PriorConfig.temperature):
    """Build everything from the configuration and run the loop.

    The loop settings, loss weights and clipping (``num_iters``, ``lambdas``, ``disc_start``,
    ``grad_clip``, ...) are :class:`~dac_diveq.image.trainer.AutoencoderConfig`'s fields, declared
    there once with their defaults; the GPT (``model: gpt``) takes the loop settings from it and
    its own clipping from :class:`~dac_diveq.image.prior.PriorConfig`.

    Args:
        config: the :class:`AutoencoderConfig` built from the ymls and the command line.
        model: ``vqvae``, ``vqgan`` (stage 1) or ``gpt`` (stage 2, needs ``stage1_path``).
        resume: ``true``: continue from ``save_path/latest`` exactly (an error if there is none);
            ``auto``: continue if it exists, else start.
        lpips_weights: torchvision VGG16 weights for LPIPS (else $DAC_DIVEQ_VGG16 or the torch hub cache).
        stage1_path: the trained VQ-VAE/VQGAN (run folder or weights.pth) whose codes the GPT models.
        top_k, temperature: sampling of the GPT's TensorBoard samples.
    """
    if model not in MODELS:
        raise ConfigError(f"model must be one of {MODELS}, got {model!r}")
    rank, world, device = distributed_context()
    num_iters = config.num_iters
    torch.manual_seed(config.seed)
    # The loop settings the GPT shares (its gradient clipping is PriorConfig's own).
    loop = {f.name: getattr(config, f.name) for f in dataclasses.fields(LoopConfig) if f.name != "grad_clip"}
    with argbind.scope(args, "train"):
        train_data = build_image_dataset(split="train")
    with argbind.scope(args, "val"):
        val_data = build_image_dataset(split="val")

    if model == "gpt":
        if not stage1_path:
            raise ConfigError("model: gpt needs --stage1_path (a trained VQ-VAE/VQGAN run or weights.pth)")
        stage1 = load_stage1(stage1_path).to(device)
        grid = tuple(stage1.encode(val_data[0][None].to(device) * 2 - 1).shape[1:])
        block = 1
        for size in grid:
            block *= size
        prior = GPT(stage1.codebook_size, block).to(device)
        with argbind.scope(args, "prior"):
            optimizer = Adam(prior.parameters())
            scheduler = MultiStepLR(optimizer, num_iters)
        trainer = PriorTrainer(PriorConfig(**loop, top_k=top_k or None, temperature=temperature), stage1, prior,
                               optimizer, scheduler, train_data, val_data, device, rank, world, str(args))
    else:
        net = wrap((VQVAE() if model == "vqvae" else VQGAN()).to(device), device, world)
        weights = config.lambdas
        perceptual = perceptual_module(weights.get("perceptual/lpips", 0), lpips_weights, device)
        discriminator = (wrap(PatchDiscriminator().to(device), device, world)
                         if weights.get("adv/gen", 0) > 0 else None)
        with argbind.scope(args, "generator"):
            optimizer = Adam(net.parameters())
            scheduler = MultiStepLR(optimizer, num_iters)
        optimizer_d = scheduler_d = None
        if discriminator is not None:
            with argbind.scope(args, "discriminator"):
                optimizer_d = Adam(discriminator.parameters())
                scheduler_d = MultiStepLR(optimizer_d, num_iters)
        parts = AutoencoderParts(net, optimizer, scheduler, train_data, val_data, perceptual, discriminator,
                                 optimizer_d, scheduler_d)
        trainer = AutoencoderTrainer(config, parts, device, rank, world, str(args))
    trainer.fit(resume)
    return trainer


def main() -> int:
    return run_training(train)


if __name__ == "__main__":
    sys.exit(main())
