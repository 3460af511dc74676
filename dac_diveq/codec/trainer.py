"""DAC's training recipe for :class:`DiVeQDAC`: generator (+ optional discriminator), DAC's losses,
validation with PESQ/STOI, TensorBoard, atomic checkpoints and exact resume."""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from audiotools import AudioSignal
from audiotools.core import util
from dac.model.discriminator import Discriminator
from dac.nn import loss as dac_losses
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ..data.loaders import StepSampler
from ..metrics import speech
from . import checkpoint
from .model import DiVeQDAC

GENERATOR = "diveqdac"
DISCRIMINATOR = "discriminator"


@dataclass
class TrainConfig:
    """Loop settings (the yml's top-level keys)."""

    save_path: str = "runs/diveq"
    num_iters: int = 1000
    batch_size: int = 8
    valid_freq: int = 200
    sample_freq: int = 0
    log_freq: int = 10
    save_iters: list = field(default_factory=list)
    val_batch_size: int = 8
    val_idx: list = field(default_factory=lambda: [0, 1])
    num_workers: int = 0
    seed: int = 0
    amp: str = "none"  # "none" | "bf16" (autocast on CUDA or CPU; "auto" is resolved by the script)
    grad_clip_g: float = 1e3
    grad_clip_d: float = 10.0
    lambdas: dict = field(default_factory=lambda: {"mel/loss": 15.0, "vq/commitment_loss": 0.25,
                                                   "vq/codebook_loss": 1.0})

    @property
    def adversarial(self) -> bool:
        return any(self.lambdas.get(k, 0) for k in ("adv/gen_loss", "adv/feat_loss"))


@dataclass
class Components:
    generator: DiVeQDAC
    optimizer_g: torch.optim.Optimizer
    scheduler_g: Any
    discriminator: Optional[Discriminator]
    optimizer_d: Optional[torch.optim.Optimizer]
    scheduler_d: Any
    train_data: Any
    val_data: Any
    mel_loss: Any
    stft_loss: Any
    waveform_loss: Any
    gan_loss: Any = None


def distributed_context() -> tuple[int, int, torch.device]:
    """Initialise ``torch.distributed`` under torchrun; returns ``(rank, world_size, device)``."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, device


def resolve_amp(amp: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where bfloat16 is native (CUDA; CPUs with AVX512-BF16 or AMX),
    else ``"none"``: without it, CPU bf16 convolutions are emulated and a step is several times
    slower (measured 9x on this project's AVX2 machine, ``docs/benchmarks.md``)."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "none"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class Trainer:
    """Runs DAC's generator/discriminator recipe on :class:`Components`.

    Args:
        config: loop settings.
        parts: models, optimizers, schedulers, data and losses.
        device: where to train.
        rank, world_size: ``torch.distributed`` position (1 process: 0, 1).
        config_text: the resolved configuration, logged to TensorBoard and saved with checkpoints.
    """

    def __init__(self, config: TrainConfig, parts: Components, device: torch.device, rank: int = 0,
                 world_size: int = 1, config_text: str = "") -> None:
        self.config, self.parts, self.device = config, parts, device
        self.rank, self.world_size = rank, world_size
        self.config_text = config_text
        self.step = 0
        self.best = math.inf
        self.history: list[dict[str, float]] = []
        self.writer = SummaryWriter(str(Path(config.save_path) / "logs")) if rank == 0 else None
        unwrap(parts.generator).set_total_iters(config.num_iters)

    # ------------------------------------------------------------------ resume
    def resume(self, tag: str = "latest") -> bool:
        """Continue from ``save_path/tag`` if it exists: weights, optimizers, schedulers,
        quantizer maintenance, step, best score and RNG states."""
        state = checkpoint.load_trainer_state(self.config.save_path, tag)
        if state is None:
            return False
        folder = Path(self.config.save_path) / tag
        p = self.parts
        self._load_model(unwrap(p.generator), folder / GENERATOR / "weights.pth")
        p.optimizer_g.load_state_dict(checkpoint.load_file(folder / GENERATOR / "optimizer.pth"))
        p.scheduler_g.load_state_dict(checkpoint.load_file(folder / GENERATOR / "scheduler.pth"))
        if p.discriminator is not None:
            if not (folder / DISCRIMINATOR).exists():
                raise checkpoint.CheckpointError(f"{folder} has no discriminator but this run uses one")
            self._load_model(unwrap(p.discriminator), folder / DISCRIMINATOR / "weights.pth")
            p.optimizer_d.load_state_dict(checkpoint.load_file(folder / DISCRIMINATOR / "optimizer.pth"))
            p.scheduler_d.load_state_dict(checkpoint.load_file(folder / DISCRIMINATOR / "scheduler.pth"))
        self.step, self.best = state["step"], state["best"]
        self.history = state.get("history", [])
        checkpoint.set_rng_state(state["rng"][self.rank] if isinstance(state["rng"], list) else state["rng"])
        return True

    @staticmethod
    def _load_model(model: torch.nn.Module, path: Path) -> None:
        blob = checkpoint.load_file(path)
        saved = blob["metadata"]["kwargs"]
        try:
            model.load_state_dict(blob["state_dict"], strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise checkpoint.CheckpointError(
                f"checkpoint {path} was written by another configuration ({first[0] if first else exc})"
            ) from None
        for key in ("method", "n_codebooks", "codebook_size", "sample_rate", "residual_mode", "lookup"):
            if key in saved and hasattr(model, key) and saved[key] != getattr(model, key):
                raise checkpoint.CheckpointError(
                    f"checkpoint {path} has {key}={saved[key]!r} but the configuration says {getattr(model, key)!r}")

    # ------------------------------------------------------------------ steps
    def _autocast(self):
        if self.config.amp == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _signal(self, batch: dict, dataset) -> AudioSignal:
        batch = util.prepare_batch(batch, self.device)
        with torch.no_grad():
            return dataset.transform(batch["signal"].clone(), **batch["transform_args"])

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        p, lambdas = self.parts, self.config.lambdas
        p.generator.train()
        signal = self._signal(batch, p.train_data)
        out_losses: dict[str, torch.Tensor] = {}
        with self._autocast():
            out = p.generator(signal.audio_data, signal.sample_rate)
        recons = AudioSignal(out["audio"].float(), signal.sample_rate)
        signal = AudioSignal(signal.audio_data[..., : recons.signal_length], signal.sample_rate)

        if p.discriminator is not None:
            p.discriminator.train()
            with self._autocast():
                out_losses["adv/disc_loss"] = p.gan_loss.discriminator_loss(recons, signal)
            p.optimizer_d.zero_grad(set_to_none=True)
            out_losses["adv/disc_loss"].backward()
            out_losses["other/grad_norm_d"] = torch.nn.utils.clip_grad_norm_(
                p.discriminator.parameters(), self.config.grad_clip_d)
            p.optimizer_d.step()
            p.scheduler_d.step()

        out_losses["stft/loss"] = p.stft_loss(recons, signal)
        out_losses["mel/loss"] = p.mel_loss(recons, signal)
        out_losses["waveform/loss"] = p.waveform_loss(recons, signal)
        if p.discriminator is not None:
            with self._autocast():
                gen, feat = p.gan_loss.generator_loss(recons, signal)
            out_losses["adv/gen_loss"], out_losses["adv/feat_loss"] = gen, feat
        for key in ("vq/commitment_loss", "vq/codebook_loss", "vq/kl_loss"):
            if key in out:
                out_losses[key] = out[key]
        loss = sum(weight * out_losses[key] for key, weight in lambdas.items() if key in out_losses)
        out_losses["loss"] = loss
        p.optimizer_g.zero_grad(set_to_none=True)
        loss.backward()
        out_losses["other/grad_norm"] = torch.nn.utils.clip_grad_norm_(
            p.generator.parameters(), self.config.grad_clip_g)
        p.optimizer_g.step()
        p.scheduler_g.step()
        out_losses["other/learning_rate"] = torch.tensor(p.optimizer_g.param_groups[0]["lr"])
        for name, value in out["vq/metrics"].items():
            out_losses[f"vq/{name}"] = value
        return out_losses

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mel/STFT/waveform distances, PESQ-WB and STOI on the fixed validation set (eval mode)."""
        p = self.parts
        model = unwrap(p.generator)
        model.eval()
        totals: dict[str, list[float]] = {}
        stage_counts = torch.zeros(model.n_codebooks, model.codebook_size, device=self.device)
        n = len(p.val_data)
        for start in range(0, n, self.config.val_batch_size):
            items = [p.val_data[i] for i in range(start, min(n, start + self.config.val_batch_size))]
            signal = self._signal(p.val_data.collate(items), p.val_data)
            out = model(signal.audio_data, signal.sample_rate)
            recons = AudioSignal(out["audio"].float(), signal.sample_rate)
            signal = AudioSignal(signal.audio_data[..., : recons.signal_length], signal.sample_rate)
            batch_scores = {
                "mel/loss": p.mel_loss(recons, signal).item(),
                "stft/loss": p.stft_loss(recons, signal).item(),
                "waveform/loss": p.waveform_loss(recons, signal).item(),
            }
            for key, value in batch_scores.items():
                totals.setdefault(key, []).append(value)
            codes = out["codes"].transpose(0, 1).reshape(model.n_codebooks, -1)  # stages x codes
            stage_counts.scatter_add_(1, codes, torch.ones_like(codes, dtype=stage_counts.dtype))
            for ref, deg in zip(signal.audio_data.cpu(), recons.audio_data.cpu()):
                try:
                    totals.setdefault("pesq_wb", []).append(speech.pesq_wb(ref, deg, signal.sample_rate))
                except Exception:  # PESQ refuses silent/too-short references; count it, don't crash
                    totals.setdefault("pesq_failures", []).append(1.0)
                totals.setdefault("stoi", []).append(speech.stoi(ref, deg, signal.sample_rate))
        scores = {k: float(np.mean(v)) if k != "pesq_failures" else float(np.sum(v)) for k, v in totals.items()}
        # Eval-mode codebook statistics (hard codes, as stored in .dac files) over the validation set.
        probs = stage_counts / stage_counts.sum(1, keepdim=True).clamp_min(1)
        perplexity = (-(probs * probs.clamp_min(1e-30).log()).sum(1)).exp()
        for i in range(model.n_codebooks):
            scores[f"vq/stage{i}/usage"] = float((stage_counts[i] > 0).float().mean())
            scores[f"vq/stage{i}/perplexity"] = float(perplexity[i])
        scores["vq/usage"] = float((stage_counts > 0).float().mean())
        return scores

    # ------------------------------------------------------------------ loop
    def run(self, until: Optional[int] = None) -> dict[str, float]:
        """Train up to ``until`` (default ``num_iters``) steps; returns the last validation scores."""
        cfg, p = self.config, self.parts
        until = cfg.num_iters if until is None else min(until, cfg.num_iters)
        sampler = StepSampler(start=self.step * cfg.batch_size, rank=self.rank, world_size=self.world_size)
        # Its own generator: creating the iterator must not draw from the global RNG, whose
        # state is part of the checkpoint (quantizer noise, dithers).
        loader = torch.utils.data.DataLoader(p.train_data, batch_size=cfg.batch_size, sampler=sampler,
                                             num_workers=cfg.num_workers, collate_fn=p.train_data.collate,
                                             generator=torch.Generator().manual_seed(cfg.seed + self.step))
        scores: dict[str, float] = {}
        bar = tqdm(total=cfg.num_iters, initial=self.step, desc="train", unit="step",
                   disable=self.rank != 0, dynamic_ncols=True)
        batches = iter(loader)
        while self.step < until:
            tic = time.perf_counter()
            losses = self.train_step(next(batches))
            self.step += 1
            bar.update(1)
            if self.step % cfg.log_freq == 0 or self.step == cfg.num_iters:
                values = {k: float(v.detach()) for k, v in losses.items()}  # host reads only on log steps
                values["other/step_time"] = time.perf_counter() - tic
                bar.set_postfix(loss=f"{values['loss']:.3f}", mel=f"{values['mel/loss']:.3f}")
                self._log("train", values)
            if cfg.valid_freq and (self.step % cfg.valid_freq == 0 or self.step == cfg.num_iters):
                scores = self.validate()
                self._log("val", scores)
                self.history.append({"step": self.step, **scores})
                tags = ["latest"]
                if scores["mel/loss"] < self.best:
                    self.best = scores["mel/loss"]
                    tags.append("best")
                if self.step in cfg.save_iters:
                    tags.append(str(self.step))
                self.save(tags)
                if cfg.sample_freq and self.step % cfg.sample_freq == 0:
                    self.log_samples()
        bar.close()
        if self.writer:
            self.writer.flush()
        return scores

    def save(self, tags: list[str]) -> None:
        rngs = [checkpoint.rng_state()]
        if self.world_size > 1:
            gathered = [None] * self.world_size
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if self.rank != 0:
            return
        p = self.parts
        models = {GENERATOR: (unwrap(p.generator), {"optimizer.pth": p.optimizer_g.state_dict(),
                                                     "scheduler.pth": p.scheduler_g.state_dict()})}
        if p.discriminator is not None:
            models[DISCRIMINATOR] = (unwrap(p.discriminator), {"optimizer.pth": p.optimizer_d.state_dict(),
                                                               "scheduler.pth": p.scheduler_d.state_dict()})
        extra = {"step": self.step, "best": self.best, "rng": rngs, "history": self.history,
                 "config": self.config_text}
        checkpoint.save(self.config.save_path, tags, models, extra)

    @torch.no_grad()
    def log_samples(self) -> None:
        if self.writer is None:
            return
        model = unwrap(self.parts.generator)
        model.eval()
        for i in self.config.val_idx:
            if i >= len(self.parts.val_data):
                continue
            signal = self._signal(self.parts.val_data.collate([self.parts.val_data[i]]), self.parts.val_data)
            recons = model(signal.audio_data, signal.sample_rate)["audio"][0, 0].float().cpu()
            self.writer.add_audio(f"samples/{i}/recons", recons, self.step, signal.sample_rate)
            if self.step == self.config.sample_freq:
                self.writer.add_audio(f"samples/{i}/input", signal.audio_data[0, 0].cpu(), self.step,
                                      signal.sample_rate)

    def _log(self, split: str, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            self.writer.add_scalar(f"{split}/{key}", value, self.step)
