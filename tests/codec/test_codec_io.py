"""The codec's weights: one rule for what a run folder means (``best``, else ``latest``), one loader
for DiVeQDAC and stock DAC weights (``codec_io.load_model`` over ``checkpoint.read_weights`` and
``checkpoint.build_model``)."""
import shutil

import dac
import pytest
import torch

from dac_diveq.codec.codec_io import InputError, find_weights, load_model
from dac_diveq.codec.export import export_to_dac
from dac_diveq.training import checkpoint
from tests.conftest import TINY_DAC, codec_run


def same_weights(a, b) -> bool:
    """Every tensor equal (the codebooks' maintenance state is a dict, not compared)."""
    pairs = zip(a.state_dict().values(), b.state_dict().values())
    return all(torch.equal(x, y) for x, y in pairs if torch.is_tensor(x))


def test_a_run_folder_means_its_best_checkpoint_else_latest(tmp_path):
    run = tmp_path / "run"
    files = codec_run(run, {2: 0, 4: 1}, best=2)
    found = find_weights(run)
    assert found.tag == "best" and found.step == 2
    assert found.describe() == f"using {found.path} (checkpoint best of {run}, step 2)"
    assert same_weights(load_model(run), load_model(files[2]))
    (run / "best").unlink()  # a run that never validated
    found = find_weights(run)
    assert (found.tag, found.step) == ("latest", 4) and same_weights(load_model(run), load_model(files[4]))
    # A tag folder or a stored folder given directly says its own tag; a bare file says it has none.
    assert find_weights(run / "latest").describe() == f"using {found.path} (checkpoint latest of {run}, step 4)"
    assert find_weights(files[4]).describe() == f"using {files[4]} (a weights file outside a run checkpoint: step unknown)"
    # The step of a checkpoint copied out of the store comes from its trainer.pth.
    shutil.copytree(run / "latest", tmp_path / "copy" / "7000", symlinks=False)
    copied = find_weights(tmp_path / "copy" / "7000")
    assert (copied.tag, copied.step, copied.run) == ("7000", 4, tmp_path / "copy")


def test_stock_dac_weights_load_with_dacs_quantizer_and_give_dacs_codes(tmp_path):
    torch.manual_seed(0)
    stock = dac.model.DAC(**TINY_DAC).eval()
    stock.save(str(tmp_path / "stock.pth"), package=False)
    model = load_model(tmp_path / "stock.pth")
    assert model.stock_dac and model.method == "ste" and model.lookup == "cosine"
    x = 0.1 * torch.randn(1, 1, 16000)
    with torch.no_grad():
        assert torch.equal(model.encode(x)[1], stock.encode(x)[1])
    # Our own --format dac export is stock DAC weights too, and comes back with the same codes.
    exported = export_to_dac(model, tmp_path / "export.pth")
    again = load_model(exported)
    with torch.no_grad():
        assert again.stock_dac and torch.equal(again.encode(x)[1], stock.encode(x)[1])


def test_one_loader_refuses_what_is_no_codec_in_one_line(tmp_path):
    torch.save({"state_dict": {}, "metadata": {}}, tmp_path / "bare.pth")
    with pytest.raises(InputError, match=r"^not a model weights file \(no state_dict and metadata kwargs\)$"):
        load_model(tmp_path / "bare.pth")
    torch.manual_seed(0)
    state = dac.model.DAC(**TINY_DAC).state_dict()
    torch.save({"state_dict": state, "metadata": {"kwargs": {**TINY_DAC, "n_codebooks": 4}}}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match=r"^not a DiVeQDAC or stock DAC weights file of a matching configuration "
                                         r"\(\d+ missing, e\.g\. quantizer\.quantizers\.3\."):
        load_model(tmp_path / "bad.pth")
    # The track-agnostic loader gives the same one line to the image track.
    with pytest.raises(checkpoint.CheckpointError, match="bad.pth is not a DAC weights file of a matching"):
        checkpoint.load_model(dac.model.DAC, tmp_path / "bad.pth")
