"""Train a DAC speech codec with a DiVeQ / SF-DiVeQ (or baseline) residual quantizer.

    python scripts/train.py --args.load conf/quickstart/diveq.yml
    torchrun --nproc_per_node 8 scripts/train.py --args.load conf/diveq.yml --save_path runs/diveq

Every yml key can be overridden on the command line (argbind), e.g. ``--num_iters 2000``.
"""
import sys
import warnings

import argbind
import torch
from audiotools.data import transforms as audio_transforms
from audiotools.data.datasets import AudioDataset, AudioLoader
from dac.model.discriminator import Discriminator
from dac.nn import loss as dac_losses

from dac_diveq.codec.model import DiVeQDAC
from dac_diveq.codec.losses import CompressedSpectralLoss
from dac_diveq.codec.finetune import conf_quantizer_config, explicit_keys, load_stock_discriminator
from dac_diveq.codec.finetune import start_from as finetune_start
from dac_diveq.codec.snake import fuse_snake
from dac_diveq.codec.trainer import Components, TrainConfig, Trainer
from dac_diveq.data import loaders
from dac_diveq.errors import ConfigError
from dac_diveq.training import checkpoint
from dac_diveq.training.distributed import distributed_context, unwrap, wrap
from dac_diveq.training.entry import run_training
from dac_diveq.training.config import takes_config
from dac_diveq.training.loop import resolve_amp

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

DiVeQDAC = argbind.bind(DiVeQDAC)
Discriminator = argbind.bind(Discriminator)
AudioDataset = argbind.bind(AudioDataset, "train", "val")
AudioLoader = argbind.bind(AudioLoader, "train", "val")
MelSpectrogramLoss = argbind.bind(dac_losses.MelSpectrogramLoss)
MultiScaleSTFTLoss = argbind.bind(dac_losses.MultiScaleSTFTLoss)
L1Loss = argbind.bind(dac_losses.L1Loss)
CompressedSpectralLoss = argbind.bind(CompressedSpectralLoss)
build_transform = argbind.bind(loaders.build_transform, "train", "val")
# As DAC's train.py: audiotools' transforms read their arguments from the yml (``VolumeNorm.db``);
# argbind patches the classes, so build_transform's lookup by name gets the bound ones.
argbind.bind_module(audio_transforms, "train", "val", filter_fn=loaders.is_transform)


@argbind.bind("generator", "discriminator")
def AdamW(params, lr: float = 1e-4, betas: list = [0.8, 0.99], eps: float = 1e-8, weight_decay: float = 0.01):
    # Explicit signature: torch 2.11 annotates lr as ``float | Tensor``, which argbind cannot parse.
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


@argbind.bind("generator", "discriminator")
def ExponentialLR(optimizer, gamma: float = 1.0):
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)


@argbind.bind("train", "val")
def build_dataset(sample_rate: int, loudness_db: float, folders: dict = None):
    return loaders.build_dataset(folders, sample_rate, build_transform(loudness_db=loudness_db),
                                 AudioLoader, AudioDataset)


def check_level(args: dict, loudness_db: float) -> dict:
    """The training level is one fact, ``DiVeQDAC.loudness_db`` (recorded in the weights, used by
    ``encode`` and the evaluation): a yml or option that also sets ``VolumeNorm.db`` is refused.

    Returns:
        ``args`` with every ``VolumeNorm.db`` (argbind lists audiotools' default) set to the level
        the transforms use, so that the configuration saved with the run says what it trained at.
    """
    for key in explicit_keys(args, sys.argv):
        if key.split("/")[-1] == "VolumeNorm.db":
            raise ConfigError(f"{key} is not read: the training level is DiVeQDAC.loudness_db ({loudness_db:g} LUFS "
                             "here), which encode and the evaluation also use; set that instead")
    return {key: ["const", loudness_db] if key.split("/")[-1] == "VolumeNorm.db" else value
            for key, value in args.items()}


@argbind.bind()
def prepare_embedded_data(root: str = "", n_train: int = 300, n_val: int = 40):
    """If ``root`` is set, make sure the embedded speech data exists there (idempotent)."""
    if root:
        from dac_diveq.data.prepare import prepare

        prepare(root=root, n_train=n_train, n_val=n_val)


@argbind.bind(without_prefix=True)
@takes_config(TrainConfig)
def train(args, config: TrainConfig, resume: str = "false", load_weights: str = "", fused_snake: bool = False,
          gpu_recipe: bool = False, allow_cpu: bool = False, load_discriminator: str = "", finetune: bool = False):
    """Build everything from the configuration and run the loop.

    The loop settings, loss weights and clipping (``num_iters``, ``lambdas``, ``grad_clip``, ...)
    are :class:`~dac_diveq.codec.trainer.TrainConfig`'s fields, declared there once with their
    defaults; the options below are this script's own.

    Args:
        config: the :class:`TrainConfig` built from the ymls and the command line.
        resume: ``true``: continue from ``save_path/latest`` (same step, optimizer, scheduler, quantizer
            state; an error if there is none); ``auto``: continue if it exists, else start.
        gpu_recipe: the configuration is a GPU recipe (DAC's ``conf/base.yml``); on a CPU it is refused
            unless ``allow_cpu``.
        load_weights: start from a stock ``dac.model.DAC`` weights file (e.g. DAC's released 44 kHz
            model): its architecture, weights, codebooks and projections, with the conf's quantizer;
            the discriminator and the data follow its sample rate (``codec.finetune``).
        load_discriminator: with ``load_weights``, a stock discriminator weights file to start from
            (default: a fresh discriminator).
        finetune: the conf fine-tunes a released model (``conf/finetune``): ``load_weights`` is required.
        fused_snake: compile DAC's Snake activation into one fused kernel (same function and
            parameters; faster steps after a one-off compilation at the first step).
    """
    save_path, num_iters, batch_size, seed = config.save_path, config.num_iters, config.batch_size, config.seed
    rank, world, device = distributed_context()
    if gpu_recipe and device.type == "cpu" and not allow_cpu:
        raise ConfigError(
            f"{args.get('args.load') or 'this configuration'} is DAC's GPU recipe ({num_iters} steps of "
            f"{batch_size} excerpts) and this machine has no GPU; on a CPU run `make quickstart` or "
            "`python recipes/speech_compare.py --size cpu` (conf/cpu), or pass --allow_cpu true to train it anyway")
    config.amp = resolve_amp(config.amp, device)
    torch.manual_seed(seed)
    prepare_embedded_data()
    # The data folders are checked before a model is built: a GPU conf whose corpus is not prepared
    # says in one line what to run (never a fall-back to other data), a held-out test set is refused.
    for role in ("train", "val"):
        loaders.check_folders(args.get(f"{role}/build_dataset.folders", args.get("build_dataset.folders")), role)

    start = None
    if finetune and not load_weights:
        raise ConfigError(f"{args.get('args.load') or 'this configuration'} fine-tunes a released DAC model: "
                         "pass its weights with --load_weights (e.g. from `python -m dac download`)")
    if load_weights:
        # The architecture and weights of the stock checkpoint, every quantizer option of the conf
        # (argbind's values, passed explicitly); a resume then loads latest/ over these weights.
        start = finetune_start(load_weights, conf_quantizer_config(args), args, explicit_keys(args, sys.argv))
        if rank == 0:
            print(f"starting from {load_weights} ({f'DAC layout {start.layout}' if start.layout else 'custom DAC layout'}, "
                  f"{start.discriminator_sample_rate} Hz; discriminator "
                  f"{load_discriminator or 'fresh'})", file=sys.stderr)
    generator = start.generator if start else DiVeQDAC()
    if fused_snake:
        fuse_snake(generator)
    generator = wrap(generator.to(device), device, world)
    if load_discriminator and not config.adversarial:
        raise ConfigError("--load_discriminator given, but the configuration has no adversarial loss weights")
    discriminator = None
    if config.adversarial:
        discriminator = Discriminator(**({"sample_rate": start.discriminator_sample_rate} if start else {}))
        if load_discriminator:
            load_stock_discriminator(discriminator, load_discriminator)
        discriminator = wrap(discriminator.to(device), device, world)
    with argbind.scope(args, "generator"):
        optimizer_g = AdamW(generator.parameters())
        scheduler_g = ExponentialLR(optimizer_g)
    optimizer_d = scheduler_d = gan_loss = None
    if discriminator is not None:
        with argbind.scope(args, "discriminator"):
            optimizer_d = AdamW(discriminator.parameters())
            scheduler_d = ExponentialLR(optimizer_d)
        gan_loss = dac_losses.GANLoss(discriminator)
    sample_rate, loudness_db = unwrap(generator).sample_rate, unwrap(generator).loudness_db
    recorded = check_level(args, loudness_db)
    if rank == 0:  # a run folder that cannot be written is named before the data is looked at
        checkpoint.prepare_run_folder(save_path)
    with argbind.scope(args, "train"):
        train_data = build_dataset(sample_rate, loudness_db)
    with argbind.scope(args, "val"):
        val_data = build_dataset(sample_rate, loudness_db)
    parts = Components(generator, optimizer_g, scheduler_g, discriminator, optimizer_d, scheduler_d,
                       train_data, val_data, MelSpectrogramLoss().to(device), MultiScaleSTFTLoss().to(device),
                       L1Loss().to(device), gan_loss, CompressedSpectralLoss().to(device))
    trainer = Trainer(config, parts, device, rank, world, config_text=str(recorded))
    trainer.fit(resume)
    return trainer


def main() -> int:
    return run_training(train)


if __name__ == "__main__":
    sys.exit(main())
