"""The step loop the image trainers share: deterministic data order, tqdm, TensorBoard,
periodic validation, atomic checkpoints (``codec.checkpoint``) and exact resume.

A trainer subclasses :class:`TrainLoop` and provides ``train_step``, ``validate`` and
``checkpointed`` (which models, optimizers and schedulers a checkpoint holds).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ..codec import checkpoint
from ..data.loaders import StepSampler

#: Constructor arguments a checkpoint must agree on with the configuration.
IDENTITY_KEYS = ("method", "codebook_size", "codebook_dim", "embed_dim", "structure", "n_quantizers",
                 "residual_mode", "lookup", "vocab_size", "block_size")


@dataclass
class LoopConfig:
    """Settings of the loop (the yml's top-level keys).

    Attributes:
        save_path: run folder (``latest/``, ``best/``, milestones, ``logs/``).
        num_iters: total training steps.
        batch_size: images per step and process.
        valid_freq: validate and checkpoint every this many steps (and at the end).
        sample_freq: write image grids to TensorBoard every this many steps (0: never).
        log_freq: log training scalars every this many steps (the only host reads of a step).
        save_iters: steps whose checkpoint is kept under its own tag.
        num_workers: data-loading processes.
        seed: seeds the model initialisation and the data order.
        amp: ``"none"`` or ``"bf16"`` (autocast on CUDA).
    """

    save_path: str = "runs/image/vqvae_diveq"
    num_iters: int = 1000
    batch_size: int = 16
    valid_freq: int = 250
    sample_freq: int = 0
    log_freq: int = 10
    save_iters: list = field(default_factory=list)
    num_workers: int = 0
    seed: int = 0
    amp: str = "none"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class TrainLoop:
    """Base class of the image trainers.

    Args:
        config: loop settings.
        train_data: a dataset whose item ``i`` is a deterministic function of ``i`` for any
            ``i >= 0`` (so a resumed run replays exactly the batches an uninterrupted one sees).
        device: where to train.
        rank, world_size: ``torch.distributed`` position.
        config_text: the resolved configuration, saved with checkpoints.
    """

    #: Validation score that selects the ``best`` checkpoint (lower is better).
    score_key = "rec/mse"

    def __init__(self, config: LoopConfig, train_data: Any, device: torch.device, rank: int = 0,
                 world_size: int = 1, config_text: str = "") -> None:
        self.config, self.train_data, self.device = config, train_data, device
        self.rank, self.world_size, self.config_text = rank, world_size, config_text
        self.step = 0
        self.best = math.inf
        self.history: list[dict[str, float]] = []
        self.writer = SummaryWriter(str(Path(config.save_path) / "logs")) if rank == 0 else None

    # ------------------------------------------------------------------ to implement
    def checkpointed(self) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
        """``{folder: (model, {"optimizer.pth": optimizer, "scheduler.pth": scheduler})}``."""
        raise NotImplementedError

    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        raise NotImplementedError

    def log_samples(self) -> None:
        """Write image grids to TensorBoard (optional)."""

    # ------------------------------------------------------------------ helpers
    def autocast(self):
        if self.config.amp == "bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def log(self, split: str, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{split}/{key}", value, self.step)

    # ------------------------------------------------------------------ loop
    def run(self, until: Optional[int] = None) -> dict[str, float]:
        """Train up to ``until`` (default ``num_iters``) steps; returns the last validation scores."""
        cfg = self.config
        until = cfg.num_iters if until is None else min(until, cfg.num_iters)
        sampler = StepSampler(start=self.step * cfg.batch_size, rank=self.rank, world_size=self.world_size)
        # Its own generator: building the iterator must not draw from the global RNG, whose state
        # (quantizer noise, SF dithers) is part of the checkpoint.
        loader = torch.utils.data.DataLoader(self.train_data, batch_size=cfg.batch_size, sampler=sampler,
                                             num_workers=cfg.num_workers,
                                             generator=torch.Generator().manual_seed(cfg.seed + self.step))
        batches = iter(loader)
        scores: dict[str, float] = {}
        bar = tqdm(total=cfg.num_iters, initial=self.step, desc="train", unit="step",
                   disable=self.rank != 0, dynamic_ncols=True)
        while self.step < until:
            tic = time.perf_counter()
            losses = self.train_step(next(batches).to(self.device, non_blocking=True))
            self.step += 1
            bar.update(1)
            if self.step % cfg.log_freq == 0 or self.step == cfg.num_iters:
                values = {k: float(v.detach()) for k, v in losses.items()}  # host reads only here
                values["other/step_time"] = time.perf_counter() - tic
                bar.set_postfix(loss=f"{values['loss']:.4f}")
                self.log("train", values)
            if cfg.valid_freq and (self.step % cfg.valid_freq == 0 or self.step == cfg.num_iters):
                scores = self.validate()
                self.log("val", scores)
                self.history.append({"step": self.step, **scores})
                tags = ["latest"]
                if scores.get(self.score_key, math.inf) < self.best:
                    self.best = scores[self.score_key]
                    tags.append("best")
                if self.step in cfg.save_iters:
                    tags.append(str(self.step))
                self.save(tags)
            if cfg.sample_freq and self.step % cfg.sample_freq == 0:
                self.log_samples()
        bar.close()
        if self.writer is not None:
            self.writer.flush()
        return scores

    # ------------------------------------------------------------------ checkpoints
    def save(self, tags: list[str]) -> None:
        """Checkpoint every model with its optimizer/scheduler states, the step, best score,
        history and every rank's RNG state under ``tags``."""
        rngs = [checkpoint.rng_state()]
        if self.world_size > 1:
            gathered = [None] * self.world_size
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if self.rank != 0:
            return
        models = {name: (unwrap(model), {file: obj.state_dict() for file, obj in states.items()})
                  for name, (model, states) in self.checkpointed().items()}
        extra = {"step": self.step, "best": self.best, "rng": rngs, "history": self.history,
                 "config": self.config_text}
        checkpoint.save(self.config.save_path, tags, models, extra)

    def resume(self, tag: str = "latest") -> bool:
        """Continue from ``save_path/tag`` if it exists (weights, optimizer and scheduler states,
        quantizer maintenance, step, best score, RNG). Returns whether a checkpoint was found."""
        state = checkpoint.load_trainer_state(self.config.save_path, tag)
        if state is None:
            return False
        folder = Path(self.config.save_path) / tag
        for name, (model, states) in self.checkpointed().items():
            if not (folder / name).is_dir():
                raise checkpoint.CheckpointError(f"{folder} has no {name!r} but this configuration trains one")
            load_model(unwrap(model), folder / name / "weights.pth")
            for file, obj in states.items():
                obj.load_state_dict(checkpoint.load_file(folder / name / file))
        self.step, self.best = state["step"], state["best"]
        self.history = state.get("history", [])
        rng = state["rng"]
        checkpoint.set_rng_state(rng[self.rank] if isinstance(rng, list) else rng)
        return True


def load_model(model: torch.nn.Module, path: Path) -> None:
    """Load an audiotools ``BaseModel`` weights file into ``model``, refusing one written by
    another configuration with a one-line :class:`~dac_diveq.codec.checkpoint.CheckpointError`."""
    blob = checkpoint.load_file(path)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise checkpoint.CheckpointError(f"{path} is not a model weights file")
    saved = blob.get("metadata", {}).get("kwargs", {})
    for key in IDENTITY_KEYS:
        if key in saved and hasattr(model, key) and saved[key] != getattr(model, key):
            raise checkpoint.CheckpointError(
                f"checkpoint {path} has {key}={saved[key]!r} but the configuration says {getattr(model, key)!r}")
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise checkpoint.CheckpointError(
            f"checkpoint {path} was written by another configuration ({first[0] if first else exc})") from None
