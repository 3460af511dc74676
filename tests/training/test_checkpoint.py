"""Checkpoint helpers: the atomic-write helper, the identity-checked weights loader and resolve_weights."""
import os
import stat

import pytest
import torch

from dac_diveq.training import checkpoint


#: The identity keys a track would declare for :class:`Stage`.
KEYS = ("method", "codebook_size")


class Stage(torch.nn.Module):
    def __init__(self, method="diveq", codebook_size=4, dim=2):
        super().__init__()
        self.method, self.codebook_size = method, codebook_size
        self.codebook = torch.nn.Parameter(torch.randn(codebook_size, dim))

    def save(self, path, package=False):
        kwargs = {"method": self.method, "codebook_size": self.codebook_size}
        torch.save({"state_dict": self.state_dict(), "metadata": {"kwargs": kwargs}}, path)


def test_atomic_path_publishes_the_file_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with checkpoint.atomic_path(target, mode=0o644) as tmp:
        tmp.write_text("complete")
        assert not target.exists() and tmp.parent == target.parent
    assert target.read_text() == "complete"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    with pytest.raises(RuntimeError):
        with checkpoint.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "complete"
    assert os.listdir(target.parent) == ["out.txt"]  # no temporary left behind


def test_load_weights_names_the_first_identity_key_that_differs_before_loading(tmp_path):
    path = tmp_path / "weights.pth"
    Stage("diveq", codebook_size=4).save(path)
    other = Stage("ste", codebook_size=8)
    before = other.codebook.detach().clone()
    # Both keys differ (and so do the tensor shapes): the message names method, the first key.
    with pytest.raises(checkpoint.CheckpointError, match="method='diveq' but the configuration says 'ste'"):
        checkpoint.load_weights(other, path, KEYS)
    assert torch.equal(other.codebook, before)
    with pytest.raises(checkpoint.CheckpointError, match="codebook_size=4"):
        checkpoint.load_weights(Stage("diveq", codebook_size=8), path, KEYS)


def test_load_weights_loads_a_matching_checkpoint_and_refuses_foreign_files(tmp_path):
    path = tmp_path / "weights.pth"
    saved = Stage()
    saved.save(path)
    loaded = Stage()
    assert checkpoint.load_weights(loaded, path, KEYS) == {"kwargs": {"method": "diveq", "codebook_size": 4}}
    assert torch.equal(loaded.codebook, saved.codebook)
    torch.save({"something": 1}, tmp_path / "other.pth")
    with pytest.raises(checkpoint.CheckpointError, match="not a model weights file"):
        checkpoint.load_weights(loaded, tmp_path / "other.pth", KEYS)
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read"):
        checkpoint.load_weights(loaded, tmp_path / "broken.pth", KEYS)


def _run_folder(tmp_path, tags=("best", "latest"), model="diveqdac"):
    for tag in tags:
        (tmp_path / tag / model).mkdir(parents=True)
        (tmp_path / tag / model / "weights.pth").write_bytes(b"w")
    return tmp_path


def test_resolve_weights_in_a_run_folder_follows_the_tag_order(tmp_path):
    run = _run_folder(tmp_path)
    found = checkpoint.resolve_weights(run, ("diveqdac",))
    assert (found.path, found.model, found.run) == (run / "best" / "diveqdac" / "weights.pth", "diveqdac", run)
    assert checkpoint.resolve_weights(run, ("diveqdac",), tags=("latest",)).path.parent.parent.name == "latest"


def test_resolve_weights_of_a_file_or_tag_folder_finds_the_run(tmp_path):
    run = _run_folder(tmp_path, tags=("10000",), model="vqgan")
    weights = run / "10000" / "vqgan" / "weights.pth"
    assert checkpoint.resolve_weights(weights, ("vqvae", "vqgan")) == checkpoint.ResolvedWeights(
        weights, "vqgan", run, "10000", None)
    assert checkpoint.resolve_weights(run / "10000", ("vqvae", "vqgan")).run == run


def test_resolve_weights_of_bare_files(tmp_path):
    bare = tmp_path / "weights.pth"
    bare.write_bytes(b"w")
    assert checkpoint.resolve_weights(bare, ("diveqdac",)).model is None
    assert checkpoint.resolve_weights(tmp_path, ("diveqdac",)).path == bare
    with pytest.raises(FileNotFoundError, match="inside a vqvae/vqgan folder"):
        checkpoint.resolve_weights(bare, ("vqvae", "vqgan"), bare=False)


def test_resolve_weights_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        checkpoint.resolve_weights(tmp_path / "nowhere", ("diveqdac",))
    with pytest.raises(FileNotFoundError, match="looked for best/codegpt/weights.pth, latest/codegpt/weights.pth"):
        checkpoint.resolve_weights(tmp_path, ("codegpt",), bare=False)
