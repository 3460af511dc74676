"""Checkpoint garbage collection deletes only what this run wrote: with ``.checkpoints`` a symlink
to a store shared by two runs, or holding a user's folders, files and links, each run keeps its
own checkpoints and nothing else is touched; a run still collects its own old checkpoints (also
those written before checkpoints named their run)."""
import os
import uuid

from dac_diveq.training import checkpoint
from tests.training.test_loop import ToyTrainer, _config


def files_under(folder):
    """Every file below ``folder`` (links not followed) with its bytes."""
    out = {}
    for base, dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


def users_things(store, tmp_path):
    """A user's folder, file and link (to a folder outside) in the store; what they hold."""
    (store / "datasets").mkdir(parents=True)
    (store / "datasets" / "speech.wav").write_bytes(b"RIFF")
    (store / "notes.txt").write_text("mine")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.bin").write_bytes(b"\1\2")
    os.symlink(outside, store / "step00000002-deadbeef")  # even named like a checkpoint
    return {"datasets/speech.wav": b"RIFF", "notes.txt": b"mine"}, {"precious.bin": b"\1\2"}


def owned(store, run):
    """The store's folders carrying ``run``'s id."""
    ident = checkpoint.run_id(run)
    return sorted(p.name for p in store.iterdir() if not p.is_symlink() and p.is_dir()
                  and (p / checkpoint.OWNER).is_file() and (p / checkpoint.OWNER).read_text().strip() == ident)


def test_two_runs_sharing_a_symlinked_store_keep_each_others_checkpoints(tmp_path):
    store = tmp_path / "big_disk" / "checkpoints"
    store.mkdir(parents=True)
    theirs, outside = users_things(store, tmp_path)
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        run.mkdir()
        os.symlink(store, run / checkpoint.STORE)
    first = ToyTrainer(_config(runs[0], num_iters=4))
    first.run()
    a_latest = files_under(runs[0] / "latest")
    ToyTrainer(_config(runs[1], num_iters=6)).run()  # three saves, each collecting garbage
    assert files_under(runs[0] / "latest") == a_latest
    resumed = ToyTrainer(_config(runs[0], num_iters=4))
    assert resumed.resume() and resumed.step == 4
    assert {k: v for k, v in files_under(store).items() if k in theirs} == theirs
    assert files_under(tmp_path / "outside") == outside and (store / "step00000002-deadbeef").is_symlink()
    for run in runs:  # each run still collected its own old checkpoints: only what its tags point to is left
        targets = {os.path.basename(os.path.realpath(tag)) for tag in run.iterdir() if tag.is_symlink()
                   and tag.name != checkpoint.STORE}
        assert owned(store, run) == sorted(targets)


def _two_runs_sharing_a_store(tmp_path):
    """Run folders ``a`` and ``b``, each trained 2 steps, ``b/.checkpoints`` a link to ``a``'s."""
    a, b = tmp_path / "a", tmp_path / "b"
    ToyTrainer(_config(a, num_iters=2)).run()
    b.mkdir()
    os.symlink(a / checkpoint.STORE, b / checkpoint.STORE)
    ToyTrainer(_config(b, num_iters=2)).run()
    return a, b


def test_a_run_whose_store_another_run_links_to_keeps_the_others_checkpoints(tmp_path):
    a, b = _two_runs_sharing_a_store(tmp_path)
    b_latest = files_under(b / "latest")
    ToyTrainer(_config(a, num_iters=6)).run()  # a new run in a: saves at 2, 4, 6
    assert files_under(b / "latest") == b_latest and checkpoint.stored_step(b / "latest") == 2


def test_an_interrupted_save_of_another_run_is_not_removed(tmp_path):
    a, b = _two_runs_sharing_a_store(tmp_path)
    partials = {}
    for run in (a, b):
        partial = a / checkpoint.STORE / f"step00000004-{uuid.uuid4().hex[:8]}.partial"
        partial.mkdir()
        (partial / checkpoint.OWNER).write_text(checkpoint.run_id(run))
        partials[run] = partial
    assert ToyTrainer(_config(b)).resume()
    assert partials[a].is_dir() and not partials[b].exists()


def test_checkpoints_written_before_owners_are_adopted_through_the_runs_tags(tmp_path):
    run = tmp_path / "run"
    ToyTrainer(_config(run, num_iters=2)).run()
    os.unlink(run / checkpoint.RUN_ID)  # as an older version left it: no run id, no owners
    for folder in (run / checkpoint.STORE).iterdir():
        os.unlink(folder / checkpoint.OWNER)
    stray = run / checkpoint.STORE / "step00000001-0123abcd"  # no tag points to it: not known to be ours
    stray.mkdir()
    old = os.path.realpath(run / "latest")
    trainer = ToyTrainer(_config(run, num_iters=4))
    assert trainer.resume()
    trainer.run()
    assert not os.path.exists(old) and stray.is_dir()
