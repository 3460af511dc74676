"""Crash-consistent checkpoints and exact resume under failure: a full disk during a save (patched
write, and a real tmpfs when running as root), SIGKILL at every point of a save, a dangling
``latest`` link, and a run folder that cannot be written."""
import errno
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

from dac_diveq.training import checkpoint
from tests.conftest import ROOT
from tests.training.test_loop import ToyTrainer, _config


def _same_weights(a: ToyTrainer, b: ToyTrainer) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))


def _stored(run) -> list[str]:
    return sorted(os.listdir(run / checkpoint.STORE))


def test_disk_full_during_a_save_is_one_line_and_leaves_nothing_behind(tmp_path, monkeypatch):
    straight = ToyTrainer(_config(tmp_path / "straight"))
    straight.run()
    run = tmp_path / "run"
    trainer = ToyTrainer(_config(run))
    trainer.run(until=2)
    real_save = torch.save

    def full_disk(obj, handle, *args, **kwargs):  # half a file, then the disk is full
        handle.write(b"x" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(checkpoint.CheckpointError) as error:
        trainer.run()
    monkeypatch.setattr(torch, "save", real_save)
    assert str(error.value) == (f"no space left on device while saving step 4 to {run}; "
                                f"the previous checkpoint at step 2 is intact ({run / 'latest'})")
    assert len(_stored(run)) == 1 and not any(name.endswith(".partial") for name in _stored(run))
    assert checkpoint.stored_step(run / "latest") == 2
    resumed = ToyTrainer(_config(run))  # space is free again
    assert resumed.resume() and resumed.step == 2
    resumed.run()
    assert _same_weights(straight, resumed)


def test_a_torch_writer_error_is_reported_with_its_errno():
    """torch.save hides a failed write in a RuntimeError of its zip writer; the save names ENOSPC."""

    class FullDisk:
        def __init__(self):
            self.written = 0

        def write(self, data):
            if self.written > 64:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
            return len(data)

        def flush(self):
            pass

    writer = checkpoint._RecordingWriter(FullDisk())
    with pytest.raises(RuntimeError):  # what torch.save itself raises
        torch.save({"w": torch.zeros(1000)}, writer)
    assert writer.error.errno == errno.ENOSPC


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MB tmpfs (root only; skipped where mounting is not allowed)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_real_full_disk_during_a_save(small_tmpfs, tmp_path):
    straight = ToyTrainer(_config(tmp_path / "straight"))
    straight.run()
    run = small_tmpfs / "run"
    trainer = ToyTrainer(_config(run))
    trainer.run(until=2)
    filler = small_tmpfs / "filler"
    free = shutil.disk_usage(small_tmpfs).free
    with open(filler, "wb") as handle:  # leave less than one checkpoint file's worth
        handle.write(b"\0" * (free - 1024))
    with pytest.raises(checkpoint.CheckpointError, match="^no space left on device while saving step 4 .* "
                                                         "the previous checkpoint at step 2 is intact"):
        trainer.run()
    assert len(_stored(run)) == 1
    filler.unlink()
    resumed = ToyTrainer(_config(run))
    assert resumed.resume() and resumed.step == 2
    resumed.run()
    assert _same_weights(straight, resumed)


KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from dac_diveq.training import checkpoint
    from tests.training.test_loop import ToyTrainer, _config

    calls, kill_at = [0], {kill_at}
    def dying(original):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:  # no cleanup, no exception: the process is gone
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return wrapper

    trainer = ToyTrainer(_config({run!r}))
    trainer.run(until=2)
    calls[0] = 0
    checkpoint.write_file = dying(checkpoint.write_file)   # 4 files per save: weights, optimizer, scheduler, trainer
    checkpoint._point = dying(checkpoint._point)   # then the switch of "latest"
    trainer.run()
""")


@pytest.mark.slow  # one process per kill point
@pytest.mark.parametrize("kill_at", [1, 2, 4, 5, 6])
def test_sigkill_at_any_point_of_a_save_leaves_latest_complete_and_resume_exact(tmp_path, kill_at):
    straight = ToyTrainer(_config(tmp_path / "straight"))
    straight.run()
    run = tmp_path / "run"
    code = KILLER.format(root=str(ROOT), run=str(run), kill_at=kill_at)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == -9, result.stderr[-2000:]
    # Killed while writing step 4's files (1..4), at the switch of "latest" (5), or in step 6's save (6).
    assert checkpoint.stored_step(run / "latest") == (2 if kill_at <= 5 else 4)
    resumed = ToyTrainer(_config(run))
    assert resumed.resume()
    resumed.run()
    assert _same_weights(straight, resumed)
    assert not any(name.endswith(".partial") for name in _stored(run))  # removed by the resume / next save


def _two_checkpoints(run):
    """Checkpoints at steps 2 (kept as milestone "2") and 4 ("latest")."""
    ToyTrainer(_config(run, num_iters=4, save_iters=[2])).run()
    return run


def test_a_dangling_latest_resumes_from_the_newest_complete_checkpoint_and_says_so(tmp_path, capsys):
    run = _two_checkpoints(tmp_path / "run")
    shutil.rmtree(os.path.realpath(run / "latest"))
    trainer = ToyTrainer(_config(run))
    assert trainer.resume() and trainer.step == 2
    err = capsys.readouterr().err
    assert f"warning: {run / 'latest'} points to" in err and "resuming from the newest complete checkpoint" in err


def test_a_dangling_latest_without_any_checkpoint_left_is_refused(tmp_path):
    run = _two_checkpoints(tmp_path / "run")
    shutil.rmtree(run / checkpoint.STORE)
    with pytest.raises(checkpoint.CheckpointError, match="does not exist, and no complete checkpoint is left"):
        ToyTrainer(_config(run)).resume()


def test_resume_removes_what_an_interrupted_save_left(tmp_path):
    run = _two_checkpoints(tmp_path / "run")
    partial = run / checkpoint.STORE / f"step00000006-{uuid.uuid4().hex[:8]}.partial"
    (partial / "line").mkdir(parents=True)
    (partial / "line" / "weights.pth").write_bytes(b"\0" * 1000)
    assert ToyTrainer(_config(run)).resume()
    assert not partial.exists()


@pytest.mark.parametrize("case, reason", [
    ("file", "it is a file, not a folder"),
    ("under_a_file", "Not a directory"),
    ("read_only", "(Permission denied|Operation not permitted|Read-only file system)"),
])
def test_a_run_folder_that_cannot_be_written_is_refused_before_training(tmp_path, case, reason):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    save_path = {"file": blocker, "under_a_file": blocker / "run", "read_only": tmp_path / "locked" / "run"}[case]
    if case == "read_only":
        if os.geteuid() == 0:  # root ignores permission bits; sysfs refuses new folders even to root
            save_path = Path("/sys/dac_diveq_probe/run")
        else:
            save_path.parent.mkdir()
            save_path.parent.chmod(0o500)
    with pytest.raises(checkpoint.CheckpointError, match=f"cannot use {save_path} as the run folder .*{reason}"):
        ToyTrainer(_config(save_path))
