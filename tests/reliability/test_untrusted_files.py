"""Untrusted files are never executed: every loader of the package refuses a crafted pickle or a
``torch.package`` archive with one line naming the file, and still loads our own checkpoints
(those written before RNG states were stored as tensors included). In process, fast; the entry
points themselves are probed in ``test_entry_points.py``."""
import numpy as np
import pytest
import torch

from dac_diveq.codec.model import DiVeQDAC
from dac_diveq.image import VQVAE, CodeGPT
from dac_diveq.image.evaluate import dataset_settings
from dac_diveq.image.io import load_prior, load_stage1
from dac_diveq.report.eval_io import EvalError, read_seed
from dac_diveq.report.tensorboard import history_scalars
from dac_diveq.training import checkpoint
from tests.conftest import TINY_DAC
from tests.reliability.conftest import crafted_checkpoint
from tests.training.test_loop import ToyTrainer, _config

KINDS = ("torch", "pickle", "package")


@pytest.mark.parametrize("kind", KINDS)
def test_load_file_refuses_code_and_names_the_file(tmp_path, marker, kind):
    path = crafted_checkpoint(tmp_path / "trainer.pth", marker, kind)
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.load_file(path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    if kind == "pickle":  # torch's legacy reader gives up before it meets the global
        assert "cannot read checkpoint file" in message
    else:
        assert isinstance(error.value, checkpoint.UntrustedFileError) and message.startswith("refusing to load")
        assert ("posix.system" in message) if kind == "torch" else ("torch.package" in message)
    assert not marker.exists()


@pytest.mark.parametrize("content, needle", [
    (b"", "truncated, or not a PyTorch checkpoint"),
    (bytes(range(256)) * 4, "not a PyTorch checkpoint"),
])
def test_load_file_describes_unreadable_files_in_one_line(tmp_path, content, needle):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError, match=needle) as error:
        checkpoint.load_file(path)
    assert not isinstance(error.value, checkpoint.UntrustedFileError) and "\n" not in str(error.value)


@pytest.mark.parametrize("target", ["trainer.pth", "line/weights.pth", "line/optimizer.pth", "line/scheduler.pth"])
def test_resume_refuses_a_crafted_file_in_the_run_folder(tmp_path, marker, target):
    ToyTrainer(_config(tmp_path, num_iters=2)).run()
    crafted_checkpoint(tmp_path / "latest" / target, marker)
    with pytest.raises(checkpoint.UntrustedFileError, match=f"refusing to load .*{target}"):
        ToyTrainer(_config(tmp_path, num_iters=4)).resume()
    assert not marker.exists()


def test_a_checkpoint_with_numpy_rng_state_still_resumes_exactly(tmp_path):
    """trainer.pth files written before this change held numpy's RNG state as an ndarray."""
    straight = ToyTrainer(_config(tmp_path / "a"))
    straight.run()
    ToyTrainer(_config(tmp_path / "b")).run(until=4)
    state_path = tmp_path / "b" / "latest" / "trainer.pth"
    state = torch.load(state_path, weights_only=True)
    name, keys, pos, has_gauss, cached = state["rng"][0]["numpy"]  # one state per rank
    state["rng"][0]["numpy"] = (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)  # the old form
    torch.save(state, state_path)
    with pytest.raises(Exception):  # it really needs the allow-list
        torch.load(state_path, weights_only=True)
    resumed = ToyTrainer(_config(tmp_path / "b"))
    assert resumed.resume() and resumed.step == 4
    resumed.run()
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_new_checkpoints_hold_tensors_and_plain_data_only(tmp_path):
    ToyTrainer(_config(tmp_path, num_iters=2)).run()
    for path in (tmp_path / "latest").rglob("*.pth"):
        torch.load(path, weights_only=True)  # no allow-list needed


@pytest.mark.parametrize("cls, kwargs", [
    (DiVeQDAC, TINY_DAC),
    (VQVAE, dict(channels=16, res_channels=8, n_down=2, n_res_blocks=1, codebook_size=16, codebook_dim=8)),
    (CodeGPT, dict(vocab_size=16, block_size=4, n_layer=1, n_head=2, n_embd=16)),
])
def test_model_load_refuses_packages_and_loads_its_own_files(tmp_path, marker, cls, kwargs):
    crafted_checkpoint(tmp_path / "package.pth", marker, "package")
    with pytest.raises(checkpoint.UntrustedFileError, match="torch.package archive"):
        cls.load(str(tmp_path / "package.pth"))
    model = cls(**kwargs)
    model.save(str(tmp_path / "own.pth"), package=False)
    loaded = cls.load(str(tmp_path / "own.pth"))
    for (key, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert not torch.is_tensor(a) or torch.equal(a, b), key
    assert not marker.exists()


def test_image_loaders_refuse_crafted_weights(tmp_path, marker):
    crafted_checkpoint(tmp_path / "run" / "latest" / "vqvae" / "weights.pth", marker)
    crafted_checkpoint(tmp_path / "prior" / "latest" / "codegpt" / "weights.pth", marker, "package")
    with pytest.raises(checkpoint.UntrustedFileError, match="refusing to load"):
        load_stage1(tmp_path / "run")
    with pytest.raises(checkpoint.UntrustedFileError, match="torch.package"):
        load_prior(tmp_path / "prior")
    assert not marker.exists()


def test_evaluation_and_report_readers_refuse_a_crafted_trainer_state(tmp_path, marker):
    weights = tmp_path / "latest" / "diveqdac" / "weights.pth"
    crafted_checkpoint(tmp_path / "latest" / "trainer.pth", marker)
    with pytest.raises(EvalError, match="refusing to load"):
        read_seed(weights)
    with pytest.raises(EvalError, match="refusing to load"):
        dataset_settings(weights)
    with pytest.raises(checkpoint.UntrustedFileError):
        history_scalars(tmp_path / "latest" / "trainer.pth", ["val/mel/loss"])
    (tmp_path / "latest" / "trainer.pth").write_bytes(b"truncated")  # unreadable: just unknown
    assert read_seed(weights) is None and dataset_settings(weights) == {}
    assert history_scalars(tmp_path / "latest" / "trainer.pth", ["val/mel/loss"]) == {}
    assert not marker.exists()


def test_decompress_of_a_path_uses_the_safe_dac_reader(tmp_path, marker):
    from dac_diveq.codec.codec_io import InputError
    from tests.reliability.conftest import Payload

    path = tmp_path / "x.dac"
    with open(path, "wb") as handle:
        np.save(handle, np.array({"codes": Payload(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="refusing to load"):
        DiVeQDAC(**TINY_DAC).decompress(path)
    assert not marker.exists()


def test_inception_weights_are_checked_before_torch_fidelity_reads_them(tmp_path, marker):
    import torch_fidelity  # noqa: F401  (the test extra: a missing package fails, never skips)
    from dac_diveq.metrics import image as image_metrics

    path = crafted_checkpoint(tmp_path / "inception.pth", marker)
    with pytest.raises(image_metrics.WeightsFormatError, match="refusing to load .*posix.system"):
        image_metrics.load_inception(path)
    assert not marker.exists()
