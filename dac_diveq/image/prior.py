"""Stage 2 of the image track: a GPT prior over the code grids of a frozen stage-1 model, and
sampling new images from it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..training.distributed import wrap
from ..training.loop import LoopConfig, TrainLoop, clip_gradients, fixed_batches
from .io import PRIOR_FOLDER
from .trainer import to_model_range, to_unit_range


@dataclass
class PriorConfig(LoopConfig):
    """Loop settings plus sampling.

    Attributes:
        top_k: top-k filtering of the samples logged to TensorBoard.
        temperature: sampling temperature.
        grad_clip: max gradient norm of the GPT (0: no clipping).
    """

    save_path: str = "runs/image/gpt"
    batch_size: int = 16
    valid_freq: int = 250
    top_k: Optional[int] = 100
    temperature: float = 1.0
    grad_clip: float = 1.0


@torch.no_grad()
def encode_codes(stage1: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Hard codes of [0, 1] images under a frozen stage-1 model: ``(B, H, W[, n])``."""
    stage1.eval()
    return stage1.encode(to_model_range(images))


@torch.no_grad()
def generate(stage1: torch.nn.Module, prior: torch.nn.Module, count: int, grid: tuple[int, ...],
             top_k: Optional[int] = 100, temperature: float = 1.0,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Sample ``count`` code grids from ``prior`` and decode them with ``stage1``.

    Returns:
        ``(count, 3, S, S)`` images in [0, 1].
    """
    prior.eval()
    stage1.eval()
    codes = prior.sample(count, grid, top_k=top_k, temperature=temperature, generator=generator)
    return to_unit_range(stage1.decode(codes))


class PriorLoss(torch.nn.Module):
    """``forward(codes) = prior.loss(codes)``: the module DDP wraps, so that gradients of the
    loss (not of the logits) are all-reduced."""

    def __init__(self, prior: torch.nn.Module) -> None:
        super().__init__()
        self.prior = prior

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.prior.loss(codes)


class PriorTrainer(TrainLoop):
    """Trains :class:`~dac_diveq.image.CodeGPT` on the codes of a frozen stage-1 model.

    Args:
        config: :class:`PriorConfig`.
        stage1: the trained VQ-VAE / VQGAN (frozen, eval mode).
        prior: the GPT (not wrapped; with ``world_size > 1`` its loss is wrapped in DDP here).
        optimizer, scheduler: of the prior.
        train_data, val_data: datasets of ``(3, S, S)`` images in [0, 1].
        device, rank, world_size, config_text: see :class:`~dac_diveq.training.loop.TrainLoop`.
    """

    score_key = "bits_per_code"
    #: Constructor arguments a resumed checkpoint must agree on: CodeGPT's: the code vocabulary and context it models.
    identity_keys = ("vocab_size", "block_size")

    def __init__(self, config: PriorConfig, stage1: torch.nn.Module, prior: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, scheduler: Any, train_data: Any, val_data: Any,
                 device: torch.device, rank: int = 0, world_size: int = 1, config_text: str = "") -> None:
        super().__init__(config, train_data, device, rank, world_size, config_text)
        self.stage1 = stage1.eval().requires_grad_(False)
        self.prior, self.optimizer, self.scheduler, self.val_data = prior, optimizer, scheduler, val_data
        self.loss_module: torch.nn.Module = wrap(PriorLoss(prior), device, world_size)
        image = val_data[0][None].to(device)
        self.grid = tuple(encode_codes(stage1, image).shape[1:])

    def checkpointed(self) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
        return {PRIOR_FOLDER: (self.prior, {"optimizer.pth": self.optimizer, "scheduler.pth": self.scheduler})}

    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        self.prior.train()
        codes = encode_codes(self.stage1, batch)
        with self.autocast():
            loss = self.loss_module(codes)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        terms = {"loss": loss.detach(), "bits_per_code": loss.detach() / math.log(2)}
        clip_gradients(self.prior.parameters(), self.config.grad_clip, terms)
        self.optimizer.step()
        self.scheduler.step()
        terms["other/learning_rate"] = torch.tensor(self.optimizer.param_groups[0]["lr"])
        return terms

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Negative log-likelihood of the validation codes, in nats and bits per code."""
        prior = self.prior
        prior.eval()
        losses, counts = [], []
        for images in fixed_batches(self.val_data, self.config.batch_size):
            codes = encode_codes(self.stage1, images.to(self.device))
            losses.append(float(prior.loss(codes)) * len(images))
            counts.append(len(images))
        nll = float(np.sum(losses) / np.sum(counts))
        return {"nll": nll, "bits_per_code": nll / math.log(2)}

    @torch.no_grad()
    def log_samples(self, count: int = 8) -> None:
        if self.writer is None:
            return
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed)
        images = generate(self.stage1, self.prior, count, self.grid, self.config.top_k,
                          self.config.temperature, generator)
        self.writer.add_images("samples/generated", images.cpu(), self.step)
