"""The shared training loop on a toy trainer (plain torch, no track, no audiotools): cadence of
logging, validation, samples and checkpoints; best selection; optional clipping; exact resume."""
import math
import os
import signal

import pytest
import torch

from dac_diveq.training import checkpoint
from dac_diveq.training.loop import (LoopConfig, TrainingInterrupted, TrainLoop, clip_gradients, fixed_batches,
                                     resume_mode, usable_workers)


class Line(torch.nn.Module):
    """``y = w x + b`` with the two methods the checkpoints use (audiotools' ``BaseModel`` API)."""

    def __init__(self, method: str = "sgd") -> None:
        super().__init__()
        self.method = method
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def save(self, path: str, package: bool = False) -> str:
        torch.save({"state_dict": self.state_dict(), "metadata": {"kwargs": {"method": self.method}}}, path)
        return path


class Points(torch.utils.data.Dataset):
    """Item ``i`` is a deterministic function of ``i`` (noisy points on ``y = 3x - 1``)."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(i)
        x = torch.rand(1, generator=g)
        return torch.cat([x, 3 * x - 1 + 0.01 * torch.randn(1, generator=g)])


class ToyTrainer(TrainLoop):
    score_key = "mse"
    identity_keys = ("method",)  # as each track declares its own

    def __init__(self, config: LoopConfig, method: str = "sgd", scores=None, signal_at: dict = None) -> None:
        super().__init__(config, Points(), torch.device("cpu"))
        torch.manual_seed(config.seed)
        self.model = Line(method)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, 3, 0.5)
        self.scores = scores  # scripted validation scores (None: the real MSE)
        self.events: list[tuple[str, int]] = []
        self.signal_at = signal_at or {}  # step -> signal this process sends itself during that step

    def checkpointed(self):
        return {"line": (self.model, {"optimizer.pth": self.optimizer, "scheduler.pth": self.scheduler})}

    def train_step(self, batch):
        x, y = batch[:, :1], batch[:, 1:]
        # Draws from the global RNG, as the quantizers' noise does: resume must restore it.
        noise = 1e-3 * torch.randn_like(x)
        loss = torch.nn.functional.mse_loss(self.model(x + noise), y)
        self.optimizer.zero_grad()
        loss.backward()
        terms = {"loss": loss.detach()}
        clip_gradients(self.model.parameters(), self.config.grad_clip, terms)
        self.optimizer.step()
        self.scheduler.step()
        self.events.append(("step", self.step + 1))
        if self.step + 1 in self.signal_at:
            os.kill(os.getpid(), self.signal_at[self.step + 1])
        return terms

    @torch.no_grad()
    def validate(self):
        self.events.append(("validate", self.step))
        if self.scores is not None:
            return {"mse": self.scores[self.step]}
        batch = torch.stack([Points()[i] for i in range(8)])
        return {"mse": float(torch.nn.functional.mse_loss(self.model(batch[:, :1]), batch[:, 1:]))}

    def log_samples(self):
        self.events.append(("samples", self.step))


def _config(tmp_path, **kw):
    settings = dict(save_path=str(tmp_path), num_iters=6, batch_size=2, valid_freq=2, log_freq=1)
    return LoopConfig(**{**settings, **kw})


def test_samples_are_logged_on_sample_steps_that_are_not_validation_steps(tmp_path):
    trainer = ToyTrainer(_config(tmp_path, num_iters=7, valid_freq=4, sample_freq=3))
    trainer.run()
    assert [s for kind, s in trainer.events if kind == "samples"] == [3, 6]
    assert [s for kind, s in trainer.events if kind == "validate"] == [4, 7]  # and at the end


def test_no_samples_without_sample_freq_and_no_validation_without_valid_freq(tmp_path):
    trainer = ToyTrainer(_config(tmp_path, valid_freq=0, sample_freq=0, save_every=0))
    assert trainer.run(until=3) == {} and not (tmp_path / "latest").exists()  # nothing saved mid-run
    assert trainer.run() == {}
    assert {kind for kind, _ in trainer.events} == {"step"}
    # The start-up summary promises latest/ at the end: it holds the last step.
    assert "latest/ is saved at the end" in trainer.summary()["validation"]
    assert checkpoint.stored_step(tmp_path / "latest") == 6 and not (tmp_path / "best").exists()
    resumed = ToyTrainer(_config(tmp_path, valid_freq=0, sample_freq=0))
    assert resumed.resume() and resumed.step == 6


def test_best_follows_the_score_and_milestones_keep_their_own_tag(tmp_path):
    scores = {2: 0.5, 4: 0.7, 6: 0.3}
    trainer = ToyTrainer(_config(tmp_path, save_iters=[4]), scores=scores)
    trainer.run()
    step_of = {tag: torch.load(tmp_path / tag / "trainer.pth", weights_only=False)["step"]
               for tag in ("latest", "best", "4")}
    assert step_of == {"latest": 6, "best": 6, "4": 4}
    assert trainer.best == 0.3 and [h["step"] for h in trainer.history] == [2, 4, 6]
    # Only the checkpoints some tag points to are kept.
    assert len(os.listdir(tmp_path / checkpoint.STORE)) == 2


def test_best_is_not_moved_by_a_worse_score(tmp_path):
    trainer = ToyTrainer(_config(tmp_path, num_iters=4), scores={2: 0.5, 4: 0.9})
    trainer.run()
    assert torch.load(tmp_path / "best" / "trainer.pth", weights_only=False)["step"] == 2


def test_gradient_clipping_is_optional_and_configured(tmp_path):
    clipped = ToyTrainer(_config(tmp_path / "a", grad_clip=1e-3))
    batch = torch.stack([Points()[i] for i in range(2)])
    terms = clipped.train_step(batch)
    assert float(terms["other/grad_norm"]) > 1e-3  # the norm before clipping is what is logged
    unclipped = ToyTrainer(_config(tmp_path / "b", grad_clip=0.0))
    assert "other/grad_norm" not in unclipped.train_step(batch)


def test_clipping_bounds_the_norm_of_the_update():
    weight = torch.nn.Parameter(torch.zeros(3))
    (weight * torch.tensor([30.0, 40.0, 0.0])).sum().backward()
    terms = {}
    clip_gradients([weight], 5.0, terms, "other/grad_norm_d")
    assert float(terms["other/grad_norm_d"]) == pytest.approx(50.0)
    assert float(weight.grad.norm()) == pytest.approx(5.0, rel=1e-5)


def test_resume_after_interruption_continues_exactly(tmp_path):
    straight = ToyTrainer(_config(tmp_path / "a"))
    straight.run()
    interrupted = ToyTrainer(_config(tmp_path / "b"))
    interrupted.run(until=4)
    resumed = ToyTrainer(_config(tmp_path / "b", seed=123))
    assert resumed.resume() and resumed.step == 4
    resumed.run()
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert straight.scheduler.state_dict() == resumed.scheduler.state_dict()
    assert straight.history == resumed.history


def test_a_budget_trained_in_pieces_with_stop_at_gives_the_weights_of_one_piece(tmp_path, capsys):
    """``stop_at`` ends an invocation at a step that is not a validation step, saved to ``latest``
    (with its milestone tag); ``fit(resume="auto")`` continues to the next piece."""
    straight = ToyTrainer(_config(tmp_path / "a", num_iters=7, valid_freq=4, save_iters=[3]))
    straight.fit()
    for stop_at, step in ((3, 3), (5, 5), (0, 7)):
        piece = ToyTrainer(_config(tmp_path / "b", num_iters=7, valid_freq=4, save_iters=[3], stop_at=stop_at))
        piece.fit(resume="auto")
        assert piece.step == step
        assert torch.load(tmp_path / "b" / "latest" / "trainer.pth", weights_only=False)["step"] == step
    assert (tmp_path / "b" / "3" / "trainer.pth").is_file()  # the milestone it stopped at keeps its tag
    for a, b in zip(straight.model.parameters(), piece.model.parameters()):
        assert torch.equal(a, b)
    assert straight.history == piece.history
    with pytest.raises(ValueError, match="stop_at must be a step"):
        _config(tmp_path, stop_at=-1)


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    ToyTrainer(_config(tmp_path, num_iters=2)).run()
    with pytest.raises(checkpoint.CheckpointError, match="method='sgd'"):
        ToyTrainer(_config(tmp_path), method="adam").resume()


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path):
    trainer = ToyTrainer(_config(tmp_path))
    assert not trainer.resume() and trainer.step == 0 and trainer.best == math.inf


def test_amp_must_be_a_known_mode(tmp_path):
    with pytest.raises(ValueError, match="amp must be 'none', 'bf16' or 'auto'"):
        _config(tmp_path, amp="fp16")


def test_fixed_batches_cover_the_dataset_in_order():
    batches = list(fixed_batches(list(range(7)), 3, collate=list))
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_fit_resumes_when_asked_and_prints_the_last_scores(tmp_path, capsys):
    ToyTrainer(_config(tmp_path, num_iters=2)).run()
    trainer = ToyTrainer(_config(tmp_path, num_iters=4))
    scores = trainer.fit(resume=True)
    out, err = capsys.readouterr()
    assert f"resumed {tmp_path}/latest at step 2" in err
    assert trainer.step == 4 and out.strip() == f"validation: mse {scores['mse']:.4f}"
    fresh = ToyTrainer(_config(tmp_path / "fresh", num_iters=2))
    fresh.fit(resume=False)
    assert "resumed" not in capsys.readouterr().err and fresh.history[0]["step"] == 2


def _saved_step(folder) -> int:
    return torch.load(folder / "latest" / "trainer.pth", weights_only=False)["step"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_finishes_the_step_saves_latest_and_resumes_exactly(tmp_path, signum):
    straight = ToyTrainer(_config(tmp_path / "a", num_iters=8, valid_freq=4))
    straight.run()
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    stopped = ToyTrainer(_config(tmp_path / "b", num_iters=8, valid_freq=4), signal_at={3: signum})
    with pytest.raises(TrainingInterrupted) as info:
        stopped.run()
    assert info.value.step == 3 and info.value.signal_name == signal.Signals(signum).name
    assert _saved_step(tmp_path / "b") == 3  # between validations (step 4), yet nothing is lost
    # The handlers are restored once the loop is left.
    assert signal.getsignal(signal.SIGINT) is before
    resumed = ToyTrainer(_config(tmp_path / "b", num_iters=8, valid_freq=4, seed=99))
    resumed.fit(resume="true")
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert straight.optimizer.state_dict() == resumed.optimizer.state_dict()
    assert straight.history == resumed.history


def test_a_second_ctrl_c_interrupts_at_once(tmp_path):
    trainer = ToyTrainer(_config(tmp_path, num_iters=8, valid_freq=0), signal_at={2: signal.SIGINT})
    original = trainer.train_step

    def twice(batch):  # a second Ctrl-C within the same step
        terms = original(batch)
        if trainer.step + 1 == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return terms

    trainer.train_step = twice
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert not (tmp_path / "latest").exists()


def test_latest_is_saved_every_save_every_seconds_between_validations(tmp_path):
    trainer = ToyTrainer(_config(tmp_path, num_iters=5, valid_freq=0, log_freq=2, save_every=1e-9))
    saved = []
    original = trainer.save
    trainer.save = lambda tags: (saved.append((trainer.step, tags)), original(tags))
    trainer.run()
    assert saved == [(2, ["latest"]), (4, ["latest"]), (5, ["latest"])]  # on log steps only (and the last)
    assert _saved_step(tmp_path) == 5
    quiet = ToyTrainer(_config(tmp_path / "quiet", num_iters=5, valid_freq=0, log_freq=2, save_every=0))
    saved.clear()
    original = quiet.save
    quiet.save = lambda tags: (saved.append((quiet.step, tags)), original(tags))
    quiet.run()
    assert saved == [(5, ["latest"])]  # at the end only


def test_resume_true_needs_a_checkpoint_and_auto_starts_without_one(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="--resume true but .*latest does not exist"):
        ToyTrainer(_config(tmp_path / "a")).fit(resume="true")
    assert not (tmp_path / "a" / "latest").exists()
    trainer = ToyTrainer(_config(tmp_path / "b", num_iters=2))
    trainer.fit(resume="auto")
    assert trainer.step == 2
    assert [resume_mode(v) for v in (True, False, "auto", "yes", "0")] == ["true", "false", "auto", "true", "false"]
    with pytest.raises(ValueError, match="--resume must be true, false or auto"):
        resume_mode("maybe")


def test_the_start_up_summary_says_what_runs_and_where(tmp_path, capsys):
    trainer = ToyTrainer(_config(tmp_path, num_iters=4, valid_freq=3, num_workers=10 ** 6))
    trainer.fit()
    err = capsys.readouterr().err
    for text in ("device: cpu (", "line: 0.00 M parameters", "steps: 0 -> 4", "first at step 3",
                 f"checkpoints: {tmp_path}", f"tensorboard --logdir {tmp_path}", "float32",
                 f"{usable_workers(10 ** 6)} data-loading workers (asked 1000000"):
        assert text in err, text
    assert 1 <= usable_workers(10 ** 6) <= os.cpu_count()
