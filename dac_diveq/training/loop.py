"""The one training loop both tracks specialise: step cadence, logging, checkpoints, exact resume.

A trainer subclasses :class:`TrainLoop` and supplies what is specific to its models:

- :meth:`~TrainLoop.train_step` - one optimisation step on a prepared batch;
- :meth:`~TrainLoop.prepare_batch` / :meth:`~TrainLoop.collate` - how a loader batch reaches it;
- :meth:`~TrainLoop.validate` - scores on the fixed validation set;
- :meth:`~TrainLoop.log_samples` - what TensorBoard shows every ``sample_freq`` steps;
- :meth:`~TrainLoop.checkpointed` - which models, optimizers and schedulers a checkpoint holds;
- :attr:`~TrainLoop.score_key` - the validation score that picks the ``best`` checkpoint;
- :attr:`~TrainLoop.identity_keys` - what a resumed checkpoint must agree on.

The loop owns everything else, identically for every trainer: the resumable data order, tqdm,
TensorBoard scalars, validation and checkpoint cadence, every rank's RNG state, atomic saves.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from . import checkpoint
from .distributed import gather_objects, unwrap
from .sampler import StepSampler

AMP_MODES = ("none", "bf16")


@dataclass
class LoopConfig:
    """Settings of the loop (the yml's top-level keys).

    Attributes:
        save_path: run folder (``latest/``, ``best/``, milestones, ``logs/``).
        num_iters: total training steps.
        batch_size: items per step and process.
        valid_freq: validate and checkpoint every this many steps (and at the end; 0: never).
        sample_freq: log samples to TensorBoard every this many steps (0: never).
        log_freq: log training scalars every this many steps (the only host reads of a step).
        save_iters: steps whose checkpoint is kept under its own tag.
        num_workers: data-loading processes.
        seed: seeds the model initialisation and the data order.
        amp: ``"none"`` or ``"bf16"`` (autocast on CUDA or CPU; see :func:`resolve_amp` for ``"auto"``).
        grad_clip: max gradient norm of the trained model (0: no clipping).
    """

    save_path: str = "runs/train"
    num_iters: int = 1000
    batch_size: int = 8
    valid_freq: int = 200
    sample_freq: int = 0
    log_freq: int = 10
    save_iters: list = field(default_factory=list)
    num_workers: int = 0
    seed: int = 0
    amp: str = "none"
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        if self.amp not in (*AMP_MODES, "auto"):  # "auto": resolved by resolve_amp for the device
            raise ValueError(f"amp must be 'none', 'bf16' or 'auto', got {self.amp!r}")


def resolve_amp(amp: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where bfloat16 is native (CUDA; CPUs with AVX512-BF16 or AMX),
    else ``"none"``: without it, CPU bf16 convolutions are emulated and a step is several times
    slower (4.5x measured on this project's AVX2 machine, ``docs/benchmarks.md``)."""
    if amp not in (*AMP_MODES, "auto"):
        raise ValueError(f"amp must be 'none', 'bf16' or 'auto', got {amp!r}")
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "none"


def fixed_batches(dataset: Any, batch_size: int, collate: Callable[[list], Any] = torch.stack) -> Iterator[Any]:
    """Batches of ``dataset[0], dataset[1], ...`` in order (the last one may be smaller).

    Args:
        dataset: an indexable dataset with ``len``.
        batch_size: items per batch.
        collate: turns a list of items into a batch.
    """
    n = len(dataset)
    for start in range(0, n, batch_size):
        yield collate([dataset[i] for i in range(start, min(n, start + batch_size))])


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_norm: float, terms: dict[str, torch.Tensor],
                   key: str = "other/grad_norm") -> None:
    """Clip the gradients' total norm to ``max_norm`` when it is > 0, and record the norm before
    clipping as ``terms[key]`` (a tensor: no host read in the step). ``max_norm <= 0``: nothing."""
    if max_norm > 0:
        terms[key] = torch.nn.utils.clip_grad_norm_(parameters, max_norm)


class TrainLoop:
    """Base class of every trainer.

    Args:
        config: loop settings.
        train_data: a dataset whose item ``i`` is a deterministic function of ``i`` for any
            ``i >= 0`` (so a resumed run replays exactly the batches an uninterrupted one sees).
        device: where to train.
        rank, world_size: ``torch.distributed`` position (one process: 0, 1).
        config_text: the resolved configuration, saved with checkpoints.
    """

    #: Validation score that selects the ``best`` checkpoint (lower is better).
    score_key: str = "loss"
    #: Constructor arguments a resumed checkpoint must agree on (see :func:`checkpoint.load_weights`).
    identity_keys: Sequence[str] = checkpoint.IDENTITY_KEYS
    #: Progress-bar label -> training scalar shown on log steps.
    progress_keys: dict[str, str] = {"loss": "loss"}

    def __init__(self, config: LoopConfig, train_data: Any, device: torch.device, rank: int = 0,
                 world_size: int = 1, config_text: str = "") -> None:
        self.config, self.train_data, self.device = config, train_data, device
        self.rank, self.world_size, self.config_text = rank, world_size, config_text
        self.step = 0
        self.best = math.inf
        self.history: list[dict[str, float]] = []
        #: ``{"step": first step, "threads", "torch", "numpy"}`` for each environment the run trained
        #: in (a resumed run may change the thread count); saved in ``trainer.pth``.
        self.environments: list[dict[str, Any]] = []
        if rank == 0:
            checkpoint.prepare_run_folder(config.save_path)
        self.writer = SummaryWriter(str(Path(config.save_path) / "logs")) if rank == 0 else None

    # ------------------------------------------------------------------ supplied by subclasses
    def checkpointed(self) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
        """``{folder: (model, {"optimizer.pth": optimizer, "scheduler.pth": scheduler})}``."""
        raise NotImplementedError

    def train_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """One optimisation step; returns scalar tensors (``"loss"`` among them), read on log steps only."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Scores on the validation set (``score_key`` among them)."""
        raise NotImplementedError

    def log_samples(self) -> None:
        """Write samples to TensorBoard (optional)."""

    def collate(self) -> Optional[Callable[[list], Any]]:
        """The training loader's ``collate_fn`` (None: PyTorch's default)."""
        return None

    def prepare_batch(self, batch: Any) -> Any:
        """A loader batch -> what :meth:`train_step` takes (default: the tensor on the device)."""
        return batch.to(self.device, non_blocking=True) if torch.is_tensor(batch) else batch

    # ------------------------------------------------------------------ helpers
    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast (CUDA or CPU) when ``amp == "bf16"``, else nothing."""
        if self.config.amp == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def log(self, split: str, values: dict[str, float]) -> None:
        """TensorBoard scalars ``split/key`` at the current step (rank 0 only)."""
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{split}/{key}", value, self.step)

    @property
    def first_sample_step(self) -> bool:
        """True on the first ``sample_freq`` step, where the fixed inputs are logged once."""
        return self.step == self.config.sample_freq

    # ------------------------------------------------------------------ loop
    def run(self, until: Optional[int] = None) -> dict[str, float]:
        """Train up to ``until`` (default ``num_iters``) steps.

        Returns:
            The last validation scores (empty when no validation step was reached).
        """
        cfg = self.config
        until = cfg.num_iters if until is None else min(until, cfg.num_iters)
        here = checkpoint.environment()
        if not self.environments or {k: v for k, v in self.environments[-1].items() if k != "step"} != here:
            self.environments.append({"step": self.step, **here})
        sampler = StepSampler(start=self.step * cfg.batch_size, rank=self.rank, world_size=self.world_size)
        # Its own generator: building the iterator must not draw from the global RNG, whose state
        # (quantizer noise, SF dithers, quantizer dropout) is part of the checkpoint.
        loader = torch.utils.data.DataLoader(self.train_data, batch_size=cfg.batch_size, sampler=sampler,
                                             num_workers=cfg.num_workers, collate_fn=self.collate(),
                                             generator=torch.Generator().manual_seed(cfg.seed + self.step))
        batches = iter(loader)
        scores: dict[str, float] = {}
        bar = tqdm(total=cfg.num_iters, initial=self.step, desc="train", unit="step",
                   disable=self.rank != 0, dynamic_ncols=True)
        try:  # a failed save or an interrupt ends the bar's line before the error is printed
            while self.step < until:
                tic = time.perf_counter()
                losses = self.train_step(self.prepare_batch(next(batches)))
                self.step += 1
                bar.update(1)
                last = self.step == cfg.num_iters
                if self.step % cfg.log_freq == 0 or last:
                    values = {k: float(v.detach()) for k, v in losses.items()}  # host reads only here
                    values["other/step_time"] = time.perf_counter() - tic
                    bar.set_postfix({label: f"{values[key]:.4f}" for label, key in self.progress_keys.items()
                                     if key in values})
                    self.log("train", values)
                if cfg.valid_freq and (self.step % cfg.valid_freq == 0 or last):
                    scores = self.validate()
                    self.log("val", scores)
                    self.history.append({"step": self.step, **scores})
                    self.save(self._tags(scores))
                # Independent of validation: a sample_freq that is not a multiple of valid_freq still logs.
                if cfg.sample_freq and self.step % cfg.sample_freq == 0:
                    self.log_samples()
        finally:
            bar.close()
        if self.writer is not None:
            self.writer.flush()
        return scores

    def fit(self, resume: bool = False) -> dict[str, float]:
        """What a training entry point does: resume from ``latest`` if asked (and present), train to
        ``num_iters``, and print the last validation scores (rank 0).

        Returns:
            The last validation scores.
        """
        if resume and self.resume():
            print(f"resumed {self.config.save_path}/latest at step {self.step}", file=sys.stderr)
        scores = self.run()
        if self.rank == 0 and scores:
            # Per-stage statistics stay in TensorBoard; the summary line keeps the headline scores.
            print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if "/stage" not in k))
        return scores

    def _tags(self, scores: dict[str, float]) -> list[str]:
        """Checkpoint tags after a validation: ``latest``, ``best`` if the score improved, milestones."""
        tags = ["latest"]
        if scores.get(self.score_key, math.inf) < self.best:
            self.best = scores[self.score_key]
            tags.append("best")
        if self.step in self.config.save_iters:
            tags.append(str(self.step))
        return tags

    # ------------------------------------------------------------------ checkpoints
    def save(self, tags: list[str]) -> None:
        """Checkpoint every model with its optimizer/scheduler states, the step, best score,
        history, every rank's RNG state and the environments it was trained in (thread count,
        versions) under ``tags`` (written by rank 0)."""
        rngs = gather_objects(checkpoint.rng_state(), self.world_size)
        if self.rank != 0:
            return
        models = {name: (unwrap(model), {file: obj.state_dict() for file, obj in states.items()})
                  for name, (model, states) in self.checkpointed().items()}
        extra = {"step": self.step, "best": self.best, "rng": rngs, "history": self.history,
                 "config": self.config_text, "environment": self.environments}
        checkpoint.save(self.config.save_path, tags, models, extra)

    def resume(self, tag: str = "latest") -> bool:
        """Continue from ``save_path/tag`` if it exists: weights, optimizer and scheduler states,
        quantizer maintenance, step, best score, history and this rank's RNG state.

        Returns:
            Whether a checkpoint was found.

        Raises:
            checkpoint.CheckpointError: the checkpoint is unreadable or from another configuration.
        """
        folder = checkpoint.checkpoint_folder(self.config.save_path, tag)
        if folder is None or not (folder / "trainer.pth").exists():
            return False
        checkpoint.remove_partials(self.config.save_path)
        state = checkpoint.load_file(folder / "trainer.pth")
        if not (isinstance(state, dict) and {"step", "best", "rng"} <= set(state)):
            raise checkpoint.CheckpointError(f"{folder / 'trainer.pth'} is not a trainer state (step, best, rng)")
        for name, (model, states) in self.checkpointed().items():
            if not (folder / name).is_dir():
                raise checkpoint.CheckpointError(f"{folder} has no {name!r} but this configuration trains one")
            checkpoint.load_weights(unwrap(model), folder / name / checkpoint.WEIGHTS, self.identity_keys)
            for file, obj in states.items():
                obj.load_state_dict(checkpoint.load_file(folder / name / file))
        self.step, self.best = state["step"], state["best"]
        self.history = state.get("history", [])
        self.environments = list(state.get("environment", []))
        rng = state["rng"]
        checkpoint.set_rng_state(rng[self.rank] if isinstance(rng, list) else rng)
        return True
