"""The one training loop both tracks specialise: step cadence, logging, checkpoints, exact resume.

A trainer subclasses :class:`TrainLoop` and supplies what is specific to its models:

- :meth:`~TrainLoop.train_step` - one optimisation step on a prepared batch;
- :meth:`~TrainLoop.prepare_batch` / :meth:`~TrainLoop.collate` - how a loader batch reaches it;
- :meth:`~TrainLoop.validate` - scores on the fixed validation set;
- :meth:`~TrainLoop.log_samples` - what TensorBoard shows every ``sample_freq`` steps;
- :meth:`~TrainLoop.checkpointed` - which models, optimizers and schedulers a checkpoint holds;
- :attr:`~TrainLoop.score_key` - the validation score that picks the ``best`` checkpoint;
- :attr:`~TrainLoop.identity_keys` - what a resumed checkpoint must agree on.

- :meth:`~TrainLoop.describe` - what the start-up summary says about the models and data.

The loop owns everything else, identically for every trainer: the resumable data order, tqdm,
TensorBoard scalars, validation and checkpoint cadence (and a timed ``latest`` between
validations), every rank's RNG state, atomic saves, the start-up summary, and a save of
``latest`` when the process is asked to stop (Ctrl-C, SIGTERM).
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ..errors import ConfigError
from . import checkpoint, userfiles
from .distributed import any_rank, gather_objects, unwrap
from .sampler import StepSampler

AMP_MODES = ("none", "bf16")
#: ``--resume``: ``true`` needs a checkpoint, ``auto`` uses one when present (recipes), ``false`` starts anew.
RESUME_MODES = ("false", "true", "auto")
#: Signals after which the loop finishes its step, saves ``latest`` and stops.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """The run was asked to stop (Ctrl-C, SIGTERM); ``latest`` holds the step it reached.

    Attributes:
        step: the step saved.
        path: the checkpoint folder it was saved to.
        signal_name: ``SIGINT`` or ``SIGTERM``.
    """

    def __init__(self, step: int, path: str, signal_name: str) -> None:
        super().__init__(f"{signal_name}: stopped after step {step}, saved {path}; "
                         f"continue with --resume true")
        self.step, self.path, self.signal_name = step, path, signal_name


def resume_mode(value: Any) -> str:
    """``--resume`` as one of :data:`RESUME_MODES` (booleans and yes/no spellings accepted).

    Raises:
        ConfigError: any other value.
    """
    text = str(value).strip().lower()
    mode = {"1": "true", "yes": "true", "0": "false", "no": "false", "": "false"}.get(text, text)
    if mode not in RESUME_MODES:
        raise ConfigError(f"--resume must be true, false or auto, got {value!r}")
    return mode


def usable_workers(requested: int) -> int:
    """Data-loading processes: ``requested``, but never more than the CPUs this process may use."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(requested, available))


def device_description(device: torch.device) -> str:
    """``"cuda:0 (NVIDIA H100, 80.0 GiB)"`` or ``"cpu (2 threads, 23.5 GiB memory)"``."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2 ** 30:.1f} GiB)"
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
        return f"cpu ({_threads()}, {memory:.1f} GiB memory)"
    except (ValueError, OSError, AttributeError):
        return f"cpu ({_threads()})"


def _threads() -> str:
    count = torch.get_num_threads()
    return f"{count} thread" + ("s" if count != 1 else "")


def parameter_count(model: Optional[torch.nn.Module]) -> str:
    """``"7.72 M parameters"`` (``"none"`` for a missing model)."""
    if model is None:
        return "none"
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"


@dataclass
class LoopConfig:
    """Settings of the loop (the yml's top-level keys).

    Attributes:
        save_path: run folder (``latest/``, ``best/``, milestones, ``logs/``).
        num_iters: total training steps.
        batch_size: items per step and process.
        valid_freq: validate and checkpoint every this many steps (and at the end; 0: never
            validate, and save ``latest`` at the end only).
        sample_freq: log samples to TensorBoard every this many steps (0: never).
        log_freq: log training scalars every this many steps (the only host reads of a step).
        save_iters: steps whose checkpoint is kept under its own tag.
        num_workers: data-loading processes.
        seed: seeds the model initialisation and the data order.
        amp: ``"none"`` or ``"bf16"`` (autocast on CUDA or CPU; see :func:`resolve_amp` for ``"auto"``).
        grad_clip: max gradient norm of the trained model (0: no clipping).
        save_every: also save ``latest`` when this many seconds of training passed since the last
            save (checked on log steps; 0: only at validations), so a crash loses minutes, not a
            validation interval.
        stop_at: train this invocation only up to this step, save ``latest`` there and return
            (0: to ``num_iters``); ``--resume auto`` continues, so a budget longer than a sitting is
            trained in pieces that give the same weights as one piece.
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
    save_every: float = 600.0
    stop_at: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.stop_at, int) or self.stop_at < 0:
            raise ConfigError(f"stop_at must be a step (0: num_iters), got {self.stop_at!r}")
        if self.amp not in (*AMP_MODES, "auto"):  # "auto": resolved by resolve_amp for the device
            raise ConfigError(f"amp must be 'none', 'bf16' or 'auto', got {self.amp!r}")
        # What the loop divides by or counts with: a 0 or a string would fail steps into training.
        for name, minimum in (("num_iters", 0), ("batch_size", 1), ("valid_freq", 0), ("sample_freq", 0),
                              ("log_freq", 1), ("num_workers", 0), ("seed", None)):
            check_number(name, getattr(self, name), int, minimum)
        for name in ("grad_clip", "save_every"):
            check_number(name, getattr(self, name), float, 0)


def check_number(name: str, value: Any, kind: type, minimum: Optional[float]) -> None:
    """Refuse a setting that is not a ``kind`` (an ``int`` also serves as a ``float``; a ``bool``
    as neither) at least ``minimum``.

    Raises:
        ConfigError: one line naming the setting.
    """
    kinds = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or (kind is float and not math.isfinite(value)):
        raise ConfigError(f"--{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"--{name} must be at least {minimum}, got {value!r}")


def resolve_amp(amp: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where bfloat16 is native (CUDA; CPUs with AVX512-BF16 or AMX),
    else ``"none"``: without it, CPU bf16 convolutions are emulated and a step is several times
    slower (4.5x measured on this project's AVX2 machine, ``docs/benchmarks.md``)."""
    if amp not in (*AMP_MODES, "auto"):
        raise ConfigError(f"amp must be 'none', 'bf16' or 'auto', got {amp!r}")
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
    #: Constructor arguments a resumed checkpoint must agree on, in the order they are checked (see
    #: :func:`checkpoint.load_weights`): each track declares its own models' keys.
    identity_keys: Sequence[str] = ()
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
        self._stop_signal: Optional[int] = None

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

    def describe(self) -> dict[str, str]:
        """Start-up summary lines about the models and data (label -> text), after the loop's own."""
        return {name: parameter_count(unwrap(model)) for name, (model, _) in self.checkpointed().items()}

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

        Raises:
            TrainingInterrupted: a stop signal arrived; the step in progress was finished and saved
                to ``latest``.
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
                                             num_workers=usable_workers(cfg.num_workers), collate_fn=self.collate(),
                                             generator=torch.Generator().manual_seed(cfg.seed + self.step))
        batches = iter(loader)
        scores: dict[str, float] = {}
        bar = tqdm(total=cfg.num_iters, initial=self.step, desc="train", unit="step",
                   disable=self.rank != 0, dynamic_ncols=True)
        last_save = time.monotonic()
        with self._stop_signals(), contextlib.closing(bar):
            while self.step < until:
                tic = time.perf_counter()
                losses = self.train_step(self.prepare_batch(next(batches)))
                self.step += 1
                bar.update(1)
                last = self.step == cfg.num_iters
                pause = self.step == cfg.stop_at and not last  # the run continues another time
                log_step = self.step % cfg.log_freq == 0 or last
                saved = False
                if log_step:
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
                    saved = True
                elif last or pause:  # no validation here: the end (of this piece) is still saved to latest/
                    self.save(["latest"] + ([str(self.step)] if self.step in cfg.save_iters else []))
                    saved = True
                # Independent of validation: a sample_freq that is not a multiple of valid_freq still logs.
                if cfg.sample_freq and self.step % cfg.sample_freq == 0:
                    self.log_samples()
                if self._should_stop(log_step):
                    if not saved:
                        self.save(["latest"])
                    name = signal.Signals(self._stop_signal or signal.SIGINT).name
                    raise TrainingInterrupted(self.step, str(Path(cfg.save_path) / "latest"), name)
                if saved:
                    last_save = time.monotonic()
                elif log_step and cfg.save_every and any_rank(time.monotonic() - last_save >= cfg.save_every,
                                                              self.device, self.world_size):
                    self.save(["latest"])
                    last_save = time.monotonic()
        if self.writer is not None:
            self.writer.flush()
        return scores

    def _should_stop(self, log_step: bool) -> bool:
        """Whether a stop signal arrived; with several processes, decided together on log steps
        (every rank must save the same step)."""
        if self.world_size <= 1:
            return self._stop_signal is not None
        return log_step and any_rank(self._stop_signal is not None, self.device, self.world_size)

    @contextlib.contextmanager
    def _stop_signals(self) -> Iterator[None]:
        """While training, the first Ctrl-C / SIGTERM asks the loop to stop after the step (and save);
        a second Ctrl-C interrupts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signum
            if self.rank == 0:
                print(f"\n{signal.Signals(signum).name}: finishing step {self.step + 1}, then saving latest "
                      "(Ctrl-C again to quit without saving)", file=sys.stderr)

        previous = {sig: signal.signal(sig, request_stop) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def summary(self) -> dict[str, str]:
        """The start-up summary: device, models, data, schedule, where checkpoints and logs go."""
        cfg = self.config
        lines = {"device": device_description(self.device)}
        if self.world_size > 1:
            lines["processes"] = f"{self.world_size} (torchrun)"
        lines.update(self.describe())
        workers = usable_workers(cfg.num_workers)
        lines["batch"] = f"{cfg.batch_size} per step and process, {workers} data-loading workers" + (
            f" (asked {cfg.num_workers}, this machine has fewer CPUs)" if workers < cfg.num_workers else "")
        lines["precision"] = "bfloat16 autocast" if cfg.amp == "bf16" else "float32"
        lines["steps"] = f"{self.step} -> {cfg.num_iters}" + (
            f" (this time to {cfg.stop_at}, saved to latest/; --resume auto continues)"
            if self.step < cfg.stop_at < cfg.num_iters else "")
        if cfg.valid_freq:
            first = min(cfg.num_iters, (self.step // cfg.valid_freq + 1) * cfg.valid_freq)
            lines["validation"] = f"every {cfg.valid_freq} steps (first at step {first}), saved to latest/ and best/"
        else:
            lines["validation"] = "none (latest/ is saved at the end)"
        if cfg.save_every:
            lines["latest"] = f"also saved every {cfg.save_every / 60:g} min of training and on Ctrl-C / SIGTERM"
        else:
            lines["latest"] = "also saved on Ctrl-C / SIGTERM"
        lines["checkpoints"] = str(Path(cfg.save_path))
        lines["logs"] = f"{Path(cfg.save_path) / 'logs'} (tensorboard --logdir {cfg.save_path})"
        return lines

    def fit(self, resume: Any = False) -> dict[str, float]:
        """What a training entry point does: resume from ``latest`` if asked, print the start-up
        summary, train to ``num_iters``, and print the last validation scores (rank 0).

        Args:
            resume: one of :data:`RESUME_MODES` (or a boolean): ``true`` needs a checkpoint,
                ``auto`` uses one if present.

        Returns:
            The last validation scores.

        Raises:
            checkpoint.CheckpointError: ``resume`` is ``true`` and there is nothing to resume.
            TrainingInterrupted: see :meth:`run`.
        """
        mode = resume_mode(resume)
        if mode != "false":
            if self.resume():
                if self.rank == 0:
                    print(f"resumed {self.config.save_path}/latest at step {self.step}", file=sys.stderr)
            elif mode == "true":
                raise checkpoint.CheckpointError(
                    f"--resume true but {Path(self.config.save_path) / 'latest'} does not exist; "
                    "drop --resume to start a new run (or use --resume auto)")
        if self.rank == 0:
            lines = self.summary()
            width = max(map(len, lines))
            print("\n".join(f"{label:>{width}}: {text}" for label, text in lines.items()), file=sys.stderr)
        scores = self.run(self.config.stop_at or None)
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
        if folder is None or userfiles.file_kind(folder / "trainer.pth") == "missing":
            return False
        checkpoint.remove_partials(self.config.save_path)
        state = checkpoint.load_file(folder / "trainer.pth")
        rng = checkpoint.check_trainer_state(state, folder / "trainer.pth", self.rank)
        for name, (model, states) in self.checkpointed().items():
            if not (folder / name).is_dir():
                raise checkpoint.CheckpointError(f"{folder} has no {name!r} but this configuration trains one")
            checkpoint.load_weights(unwrap(model), folder / name / checkpoint.WEIGHTS, self.identity_keys)
            for file, obj in states.items():
                checkpoint.load_state_into(obj, folder / name / file)
        self.step, self.best = state["step"], float(state["best"])
        self.history = list(state.get("history", []))
        self.environments = list(state.get("environment", []))
        checkpoint.set_rng_state(rng)
        return True
