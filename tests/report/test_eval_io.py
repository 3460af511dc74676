"""The one summary schema every evaluation writes, and its atomic outputs."""
import csv
import json

import torch

from dac_diveq.report.eval_io import SUMMARY_KEYS, config_hash, new_summary, write_outputs


def test_new_summary_starts_with_the_shared_keys_then_the_domains_own(tmp_path):
    weights = tmp_path / "run" / "best" / "vqvae" / "weights.pth"
    weights.parent.mkdir(parents=True)
    torch.save({"config": str({"seed": 3})}, weights.parent.parent / "trainer.pth")
    summary = new_summary("image", weights, "diveq", {"codebook_size": 16}, "cpu", bits=4, files=["a"])
    assert list(summary) == [*SUMMARY_KEYS, "bits"]
    assert (summary["domain"], summary["method"], summary["seed"], summary["files"]) == ("image", "diveq", 3, ["a"])
    assert summary["config_hash"] == config_hash({"codebook_size": 16}) and len(summary["config_hash"]) == 12
    assert summary["torch"] == torch.__version__ and summary["wall_time_s"] is None


def test_outputs_are_written_with_missing_cells_empty(tmp_path):
    rows = [{"file": "a", "psnr": 20.5}, {"file": "b"}]
    write_outputs(tmp_path / "eval", rows, ["file", "psnr"], {"domain": "image", "fid": None})
    assert list(csv.DictReader(open(tmp_path / "eval" / "per_file.csv"))) == [{"file": "a", "psnr": "20.5"},
                                                                             {"file": "b", "psnr": ""}]
    assert json.loads((tmp_path / "eval" / "summary.json").read_text()) == {"domain": "image", "fid": None}
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["per_file.csv", "summary.json"]


def test_the_seed_of_a_run_is_its_own_not_its_data_splits():
    """The image trainer records the data split's seed (the same for every run) before the run's own:
    the summary must carry the run's, or three seeds are reported as one."""
    from dac_diveq.report.eval_io import seed_of

    config = {"train/build_image_dataset.seed": 0, "val/build_image_dataset.seed": 0, "seed": 2, "num_iters": 400}
    assert seed_of({"config": config}) == 2
    assert seed_of({"config": repr(config)}) == 2  # recorded as text
    assert seed_of({"config": "{'train/build_image_dataset.seed': 0, 'seed': 1, 'x': <object>}"}) == 1  # unparsable
    assert seed_of({"config": {"train/AudioDataset.seed": 3}}) == 3  # no run seed: the only one there is
    assert seed_of({"config": {"num_iters": 1}}) is None and seed_of(None) is None
