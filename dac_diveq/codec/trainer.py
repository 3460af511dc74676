"""DAC's training recipe for :class:`DiVeQDAC` on the shared :class:`~dac_diveq.training.loop.TrainLoop`:
generator (+ optional discriminator), DAC's losses, validation with PESQ/STOI, audio samples."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from audiotools import AudioSignal
from audiotools.core import util
from dac.model.discriminator import Discriminator

from ..metrics import codebook, speech
from ..training.distributed import unwrap
from ..training.loop import LoopConfig, TrainLoop, check_number, clip_gradients, fixed_batches, parameter_count
from .model import GENERATOR, DiVeQDAC

DISCRIMINATOR = "discriminator"
VQ_LOSSES = ("vq/commitment_loss", "vq/codebook_loss", "vq/kl_loss")


@dataclass
class TrainConfig(LoopConfig):
    """Loop settings plus DAC's loss weights, validation and clipping.

    Attributes:
        val_batch_size: validation batch size.
        val_idx: validation items whose reconstructions are logged as audio samples.
        grad_clip: max gradient norm of the generator (DAC's 1e3; 0: no clipping).
        grad_clip_d: max gradient norm of the discriminator (DAC's 10; 0: no clipping).
        lambdas: weights of the loss terms; ``adv/gen_loss`` / ``adv/feat_loss`` > 0 need the
            discriminator.
        adversarial_from: the step the discriminator starts at (0: from the first step): before it
            neither the discriminator trains nor the generator sees the adversarial terms, so a
            cheap discriminator can join after the quantizer's warm-up.
    """

    save_path: str = "runs/diveq"
    val_batch_size: int = 8
    val_idx: list = field(default_factory=lambda: [0, 1])
    grad_clip: float = 1e3
    grad_clip_d: float = 10.0
    lambdas: dict = field(default_factory=lambda: {"mel/loss": 15.0, "vq/commitment_loss": 0.25,
                                                   "vq/codebook_loss": 1.0})
    adversarial_from: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("adversarial_from", self.adversarial_from, int, 0)

    @property
    def adversarial(self) -> bool:
        return any(self.lambdas.get(k, 0) for k in ("adv/gen_loss", "adv/feat_loss"))


@dataclass
class Components:
    """What :class:`Trainer` trains: models (maybe DDP-wrapped), optimizers, schedulers, data, losses."""

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
    #: ``spectral/loss`` (:class:`~dac_diveq.codec.losses.CompressedSpectralLoss`), computed when its weight is > 0.
    spectral_loss: Any = None


def _values(container: Any) -> list:
    if isinstance(container, dict):
        return list(container.values())
    return list(container) if isinstance(container, (list, tuple)) else [container]


def eval_codebook_stats(stage_counts: torch.Tensor) -> dict[str, float]:
    """Eval-mode usage and perplexity per stage from ``(stages, K)`` counts of stored (hard) codes:
    what a ``.dac`` file uses, unlike the training-mode statistics of a surrogate (SF-DiVeQ counts
    segments there)."""
    counts = stage_counts.cpu().numpy()
    scores = {}
    for i, stage in enumerate(counts):
        scores[f"vq/stage{i}/usage"] = codebook.usage(stage)
        scores[f"vq/stage{i}/perplexity"] = codebook.perplexity(stage)
    scores["vq/usage"] = codebook.usage(counts)
    return scores


class Trainer(TrainLoop):
    """Runs DAC's generator/discriminator recipe on :class:`Components`.

    Args:
        config: :class:`TrainConfig`.
        parts: models, optimizers, schedulers, data and losses.
        device, rank, world_size, config_text: see :class:`~dac_diveq.training.loop.TrainLoop`.
    """

    score_key = "mel/loss"
    #: Constructor arguments a resumed checkpoint must agree on: DiVeQDAC's: what makes its codes and frames mean something else.
    identity_keys = ("method", "codebook_size", "codebook_dim", "n_codebooks", "residual_mode", "lookup", "sample_rate")
    progress_keys = {"loss": "loss", "mel": "mel/loss"}

    def __init__(self, config: TrainConfig, parts: Components, device: torch.device, rank: int = 0,
                 world_size: int = 1, config_text: str = "") -> None:
        super().__init__(config, parts.train_data, device, rank, world_size, config_text)
        self.parts = parts
        unwrap(parts.generator).set_total_iters(config.num_iters)

    def checkpointed(self) -> dict[str, tuple[torch.nn.Module, dict[str, Any]]]:
        p = self.parts
        out = {GENERATOR: (p.generator, {"optimizer.pth": p.optimizer_g, "scheduler.pth": p.scheduler_g})}
        if p.discriminator is not None:
            out[DISCRIMINATOR] = (p.discriminator, {"optimizer.pth": p.optimizer_d, "scheduler.pth": p.scheduler_d})
        return out

    def describe(self) -> dict[str, str]:
        p = self.parts
        model = unwrap(p.generator)
        # The dropout actually used is the quantizer's (fine-tuning sets it from the conf, not the checkpoint).
        dropout = float(model.quantizer.quantizer_dropout)
        lines = {"generator": f"{parameter_count(model)}; {model.method} quantizer, {model.n_codebooks} x "
                              f"{model.codebook_size} codebooks = {model.bitrate() / 1000:g} kbps at {model.sample_rate} Hz"
                              f", quantizer dropout {dropout:g}",
                 "discriminator": (parameter_count(unwrap(p.discriminator))
                                   + (f", from step {self.config.adversarial_from}" if self.config.adversarial_from else "")
                                   if p.discriminator is not None else "none (no adversarial loss weights)")}
        datasets = getattr(p.train_data, "datasets", [p.train_data])
        # audiotools keeps a dataset's loaders in a dict (or list) of AudioLoader.
        loaders = [loader for d in datasets for loader in _values(getattr(d, "loaders", None))]
        files = sum(len(getattr(loader, "audio_indices", ())) for loader in loaders)
        duration = getattr(datasets[0], "duration", None)
        lines["data"] = f"{files} training files" + (f", excerpts of {duration:g} s" if duration else "")
        return lines

    # ------------------------------------------------------------------ batches
    def collate(self):
        return self.train_data.collate

    def prepare_batch(self, batch: dict) -> AudioSignal:
        return self._signal(batch, self.train_data)

    def _signal(self, batch: dict, dataset) -> AudioSignal:
        """A collated audiotools batch on the device, through the dataset's transform."""
        batch = util.prepare_batch(batch, self.device)
        with torch.no_grad():
            return dataset.transform(batch["signal"].clone(), **batch["transform_args"])

    def _reconstruct(self, model: torch.nn.Module, signal: AudioSignal) -> tuple[dict, AudioSignal, AudioSignal]:
        """``(model output, reconstruction, reference cropped to it)``: DAC's decoder may return a
        few samples fewer than it was given."""
        out = model(signal.audio_data, signal.sample_rate)
        recons = AudioSignal(out["audio"].float(), signal.sample_rate)
        return out, recons, AudioSignal(signal.audio_data[..., : recons.signal_length], signal.sample_rate)

    # ------------------------------------------------------------------ training
    def train_step(self, signal: AudioSignal) -> dict[str, torch.Tensor]:
        p, cfg = self.parts, self.config
        p.generator.train()
        terms: dict[str, torch.Tensor] = {}
        with self.autocast():
            out, recons, signal = self._reconstruct(p.generator, signal)

        adversarial = p.discriminator is not None and self.step >= cfg.adversarial_from
        if adversarial:
            p.discriminator.train()
            with self.autocast():
                terms["adv/disc_loss"] = p.gan_loss.discriminator_loss(recons, signal)
            p.optimizer_d.zero_grad(set_to_none=True)
            terms["adv/disc_loss"].backward()
            clip_gradients(p.discriminator.parameters(), cfg.grad_clip_d, terms, "other/grad_norm_d")
            p.optimizer_d.step()
            p.scheduler_d.step()

        terms["stft/loss"] = p.stft_loss(recons, signal)
        terms["mel/loss"] = p.mel_loss(recons, signal)
        terms["waveform/loss"] = p.waveform_loss(recons, signal)
        if p.spectral_loss is not None and cfg.lambdas.get("spectral/loss", 0):
            terms["spectral/loss"] = p.spectral_loss(recons, signal)
        if adversarial:
            with self.autocast():
                terms["adv/gen_loss"], terms["adv/feat_loss"] = p.gan_loss.generator_loss(recons, signal)
        terms.update({key: out[key] for key in VQ_LOSSES if key in out})
        terms["loss"] = sum(weight * terms[key] for key, weight in cfg.lambdas.items() if key in terms)
        p.optimizer_g.zero_grad(set_to_none=True)
        terms["loss"].backward()
        clip_gradients(p.generator.parameters(), cfg.grad_clip, terms)
        p.optimizer_g.step()
        p.scheduler_g.step()
        terms["other/learning_rate"] = torch.tensor(p.optimizer_g.param_groups[0]["lr"])
        terms.update({f"vq/{name}": value for name, value in out["vq/metrics"].items()})
        return terms

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mel/STFT/waveform distances, PESQ-WB and STOI on the fixed validation set (eval mode)."""
        p = self.parts
        model = unwrap(p.generator)
        model.eval()
        totals: dict[str, list[float]] = {}
        stage_counts = torch.zeros(model.n_codebooks, model.codebook_size, device=self.device)
        for batch in fixed_batches(p.val_data, self.config.val_batch_size, p.val_data.collate):
            out, recons, signal = self._reconstruct(model, self._signal(batch, p.val_data))
            codes = out["codes"].transpose(0, 1).reshape(model.n_codebooks, -1)  # stages x codes
            stage_counts.scatter_add_(1, codes, torch.ones_like(codes, dtype=stage_counts.dtype))
            losses = [("mel/loss", p.mel_loss), ("stft/loss", p.stft_loss), ("waveform/loss", p.waveform_loss)]
            if p.spectral_loss is not None and self.config.lambdas.get("spectral/loss", 0):
                losses.append(("spectral/loss", p.spectral_loss))
            for key, loss in losses:
                totals.setdefault(key, []).append(loss(recons, signal).item())
            for ref, deg in zip(signal.audio_data.cpu(), recons.audio_data.cpu()):
                try:
                    totals.setdefault("pesq_wb", []).append(speech.pesq_wb(ref, deg, signal.sample_rate))
                except Exception:  # PESQ refuses silent/too-short references; count it, don't crash
                    totals.setdefault("pesq_failures", []).append(1.0)
                totals.setdefault("stoi", []).append(speech.stoi(ref, deg, signal.sample_rate))
        scores = {k: float(np.mean(v)) if k != "pesq_failures" else float(np.sum(v)) for k, v in totals.items()}
        scores.update(eval_codebook_stats(stage_counts))
        return scores

    @torch.no_grad()
    def log_samples(self) -> None:
        """Reconstructions of the ``val_idx`` items (and, once, their inputs) as TensorBoard audio."""
        if self.writer is None:
            return
        p = self.parts
        model = unwrap(p.generator)
        model.eval()
        for i in self.config.val_idx:
            if i >= len(p.val_data):
                continue
            signal = self._signal(p.val_data.collate([p.val_data[i]]), p.val_data)
            recons = model(signal.audio_data, signal.sample_rate)["audio"][0, 0].float().cpu()
            self.writer.add_audio(f"samples/{i}/recons", recons, self.step, signal.sample_rate)
            if self.first_sample_step:
                self.writer.add_audio(f"samples/{i}/input", signal.audio_data[0, 0].cpu(), self.step,
                                      signal.sample_rate)
