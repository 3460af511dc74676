"""Stage 1 of the image track: train a VQ-VAE or a VQGAN autoencoder.

Loss = ``rec/mse`` (and/or ``rec/l1``) + ``perceptual/lpips`` (LPIPS-VGG16) + ``vq/aux`` (the
quantizer's own auxiliary loss, 0 for the DiVeQ family), each weighted by ``lambdas``; with a
discriminator (VQGAN) the hinge GAN loss is added from ``disc_start`` on, scaled by the adaptive
weight ``||grad rec|| / ||grad gan||`` at the decoder's last layer (Esser et al.).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..metrics import image as image_metrics
from ..training.distributed import unwrap
from ..training.loop import LoopConfig, TrainLoop, clip_gradients, fixed_batches
from . import losses, stats as codebook_stats

RECONSTRUCTION_KEYS = ("rec/mse", "rec/l1", "perceptual/lpips")


@dataclass
class AutoencoderConfig(LoopConfig):
    """Loop settings plus the loss weights.

    Attributes:
        lambdas: weights of ``rec/mse``, ``rec/l1``, ``perceptual/lpips``, ``vq/aux`` and
            ``adv/gen`` (the last > 0 needs a discriminator).
        disc_start: first step of the adversarial part.
        adaptive_weight: scale the generator's GAN loss by the adaptive weight.
        grad_clip_d: max gradient norm of the discriminator (0: no clipping).
    """

    save_path: str = "runs/image/vqvae_diveq"
    batch_size: int = 16
    valid_freq: int = 250
    lambdas: dict = field(default_factory=lambda: {"rec/mse": 1.0, "perceptual/lpips": 1.0, "vq/aux": 1.0})
    disc_start: int = 0
    adaptive_weight: bool = True
    grad_clip_d: float = 0.0


@dataclass
class AutoencoderParts:
    """What :class:`AutoencoderTrainer` trains.

    Attributes:
        model: a :class:`~dac_diveq.image.VQVAE` or :class:`~dac_diveq.image.VQGAN` (maybe DDP-wrapped).
        optimizer, scheduler: of the model.
        train_data, val_data: datasets of ``(3, S, S)`` images in [0, 1].
        perceptual: LPIPS module (``metrics.image.load_lpips``) or None when its weight is 0.
        discriminator, optimizer_d, scheduler_d: the VQGAN's PatchGAN, or None.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_data: Any
    val_data: Any
    perceptual: Optional[torch.nn.Module] = None
    discriminator: Optional[torch.nn.Module] = None
    optimizer_d: Optional[torch.optim.Optimizer] = None
    scheduler_d: Any = None


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> the models' [-1, 1]."""
    return images * 2 - 1


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Model outputs -> [0, 1] images (clamped)."""
    return ((images.float() + 1) / 2).clamp(0, 1)


class AutoencoderTrainer(TrainLoop):
    """Trains a VQ-VAE / VQGAN; validates PSNR, SSIM, LPIPS and codebook statistics.

    Args:
        config: :class:`AutoencoderConfig`.
        parts: :class:`AutoencoderParts`.
        device, rank, world_size, config_text: see :class:`~dac_diveq.training.loop.TrainLoop`.
    """

    score_key = "rec/mse"
    #: Constructor arguments a resumed checkpoint must agree on: VQVAE's (``codebook_dim``) and VQGAN's (``embed_dim``) quantizer.
    identity_keys = ("method", "codebook_size", "codebook_dim", "embed_dim", "structure", "n_quantizers", "residual_mode",
                     "lookup")

    def __init__(self, config: AutoencoderConfig, parts: AutoencoderParts, device: torch.device,
                 rank: int = 0, world_size: int = 1, config_text: str = "") -> None:
        super().__init__(config, parts.train_data, device, rank, world_size, config_text)
        self.parts = parts
        if config.lambdas.get("adv/gen", 0) > 0 and parts.discriminator is None:
            raise ConfigError("lambdas['adv/gen'] > 0 needs a discriminator (model: vqgan)")
        if config.lambdas.get("perceptual/lpips", 0) > 0 and parts.perceptual is None:
            raise ConfigError("lambdas['perceptual/lpips'] > 0 needs LPIPS weights (lpips_weights)")
        self.model_name = type(unwrap(parts.model)).__name__.lower()
        unwrap(parts.model).set_total_iters(config.num_iters)

    def checkpointed(self) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
        p = self.parts
        out = {self.model_name: (p.model, {"optimizer.pth": p.optimizer, "scheduler.pth": p.scheduler})}
        if p.discriminator is not None:
            out["discriminator"] = (p.discriminator, {"optimizer.pth": p.optimizer_d,
                                                      "scheduler.pth": p.scheduler_d})
        return out

    # ------------------------------------------------------------------ training
    def _adversarial(self) -> bool:
        return self.parts.discriminator is not None and self.config.lambdas.get("adv/gen", 0) > 0 \
            and self.step >= self.config.disc_start

    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        p, cfg, lambdas = self.parts, self.config, self.config.lambdas
        p.model.train()
        x = to_model_range(batch)
        with self.autocast():
            out = p.model(x)
        recons = out["recons"].float()
        terms: dict[str, torch.Tensor] = {"rec/mse": F.mse_loss(recons, x), "rec/l1": (recons - x).abs().mean()}
        if p.perceptual is not None and lambdas.get("perceptual/lpips", 0) > 0:
            # On the clamped output, as the authors: LPIPS is defined on [-1, 1] images.
            terms["perceptual/lpips"] = p.perceptual(recons.clamp(-1, 1), x).mean()
        terms["vq/aux"] = out["aux_loss"]
        reconstruction = sum(lambdas.get(k, 0) * terms[k] for k in RECONSTRUCTION_KEYS if k in terms)
        loss = reconstruction + lambdas.get("vq/aux", 1.0) * terms["vq/aux"]
        adversarial = self._adversarial()
        if adversarial:
            p.discriminator.train()
            with self.autocast():
                gen = losses.generator_adv_loss(p.discriminator(recons).float())
            weight = (losses.adaptive_weight(reconstruction, gen, unwrap(p.model).last_layer)
                      if cfg.adaptive_weight else torch.ones((), device=x.device))
            terms["adv/gen"], terms["adv/weight"] = gen, weight
            loss = loss + lambdas["adv/gen"] * weight * gen
        terms["loss"] = loss
        p.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(p.model.parameters(), cfg.grad_clip, terms)
        p.optimizer.step()
        p.scheduler.step()

        if adversarial:
            with self.autocast():
                real, fake = p.discriminator(x), p.discriminator(recons.detach())
            terms["adv/disc"] = losses.hinge_d_loss(real.float(), fake.float())
            p.optimizer_d.zero_grad(set_to_none=True)
            terms["adv/disc"].backward()
            clip_gradients(p.discriminator.parameters(), cfg.grad_clip_d, terms, "other/grad_norm_d")
            p.optimizer_d.step()
            p.scheduler_d.step()
        terms["other/learning_rate"] = torch.tensor(p.optimizer.param_groups[0]["lr"])
        for name, value in out["metrics"].items():
            terms[f"vq/{name}"] = value
        return terms

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eval-mode reconstruction of [0, 1] images: ``(recons in [0, 1], codes, latents)``."""
        model = unwrap(self.parts.model)
        model.eval()
        out = model(to_model_range(images.to(self.device)))
        return to_unit_range(out["recons"]), out["codes"], out["z_e"]

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """MSE (model range), PSNR, SSIM, LPIPS (when weights are loaded) and codebook usage /
        perplexity on the whole validation set, in eval mode (hard quantization)."""
        p = self.parts
        model = unwrap(p.model)
        values: dict[str, list[float]] = {}
        stats = codebook_stats.new_accumulator(model.quantizer)
        for images in fixed_batches(p.val_data, self.config.batch_size):
            recons, codes, latents = self.reconstruct(images)
            images = images.to(recons.device)
            values.setdefault("rec/mse", []).append(float(F.mse_loss(recons * 2 - 1, images * 2 - 1)))
            values.setdefault("psnr", []).extend(image_metrics.psnr(images, recons, per_image=True))
            values.setdefault("ssim", []).extend(image_metrics.ssim(images, recons, per_image=True))
            if p.perceptual is not None:
                values.setdefault("lpips", []).extend(
                    image_metrics.lpips_distance(p.perceptual, images, recons).cpu().tolist())
            codebook_stats.accumulate(stats, model.quantizer, latents, codes)
        scores = {k: float(np.mean(v)) for k, v in values.items()}
        summary = stats.summary()
        scores["codebook/usage"] = summary["mean_usage"]
        scores["codebook/perplexity"] = summary["mean_perplexity"]
        return scores

    @torch.no_grad()
    def log_samples(self, count: int = 8) -> None:
        if self.writer is None:
            return
        images = torch.stack([self.parts.val_data[i] for i in range(min(count, len(self.parts.val_data)))])
        recons, _, _ = self.reconstruct(images)
        if self.first_sample_step:
            self.writer.add_images("samples/input", images, self.step)
        self.writer.add_images("samples/reconstruction", recons.cpu(), self.step)
