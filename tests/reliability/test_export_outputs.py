"""``python -m dac_diveq export`` keeps what it was not asked to replace: an existing output is
refused without ``--overwrite`` (one line, exit 2); with it, an hf export replaces only an earlier
export's files in the folder (a user's files, a run's checkpoints stay); the input weights are never
replaced, whatever the flags."""
import json
import os
import stat

import pytest

from dac_diveq.codec.cli import main
from dac_diveq.codec.model import DiVeQDAC
from tests.conftest import TINY_DAC

import transformers  # noqa: F401  (the test extra installs it: a missing one fails, never skips)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "weights.pth"
    DiVeQDAC(**TINY_DAC).save(str(path), package=False)
    return path


@pytest.fixture
def run(tmp_path, weights):
    """A run folder as training leaves it (a checkpoint, logs), as a user may pass it to export."""
    root = tmp_path / "run"
    (root / "latest" / "diveqdac").mkdir(parents=True)
    (root / "latest" / "diveqdac" / "weights.pth").write_bytes(weights.read_bytes())
    (root / "latest" / "trainer.pth").write_bytes(b"state")
    (root / "logs").mkdir()
    (root / "logs" / "events").write_bytes(b"log")
    return root


def snapshot(folder):
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(capsys, status, code, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert status == code and len(err) == 1 and err[0].startswith("error: "), (status, err)
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_hf_onto_a_folder_with_a_users_file_is_refused(tmp_path, weights, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    status = main(["export", str(weights), "--format", "hf", "--output", str(folder)])
    one_error(capsys, status, 2, f"--output: {folder} exists; pass --overwrite")
    assert snapshot(folder) == {"notes.txt": b"mine"}


def test_hf_overwrite_replaces_only_the_exports_own_files(tmp_path, weights, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.bin").write_bytes(b"\0\1")
    for _ in range(2):  # into the user's folder, then over the first export
        assert main(["export", str(weights), "--format", "hf", "--output", str(folder), "--overwrite"]) == 0
        files = snapshot(folder)
        assert files["notes.txt"] == b"mine" and files["sub/data.bin"] == b"\0\1"
        assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= set(files)
        assert len(files) == 5 and not [p for p in folder.iterdir() if p.name.startswith(".")]  # no staging left
    assert json.loads((folder / "config.json").read_text())["model_type"] == "dac"


def test_hf_overwrite_onto_the_input_run_folder_keeps_its_checkpoints(run, capsys):
    before = snapshot(run)
    status = main(["export", str(run), "--format", "hf", "--output", str(run)])
    one_error(capsys, status, 2, "exists; pass --overwrite")
    assert snapshot(run) == before
    assert main(["export", str(run), "--format", "hf", "--output", str(run), "--overwrite"]) == 0
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k in before} == before and len(after) == len(before) + 3


@pytest.mark.parametrize("name, text", [("config.json", '{"model_type": "bert"}'),
                                        ("preprocessor_config.json", "{}"),
                                        ("model.safetensors", "not an export's")])
def test_hf_overwrite_never_replaces_a_file_an_export_did_not_write(tmp_path, weights, capsys, name, text):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / name).write_text(text)
    status = main(["export", str(weights), "--format", "hf", "--output", str(folder), "--overwrite"])
    one_error(capsys, status, 2, f"{folder / name} is not a file of an earlier transformers DAC export")
    assert snapshot(folder) == {name: text.encode()}


def test_hf_onto_the_current_folder_or_a_file_is_refused(tmp_path, weights, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    one_error(capsys, main(["export", str(weights), "--format", "hf", "--output", "."]), 2,
              "--output: . exists; pass --overwrite")
    one_error(capsys, main(["export", str(weights), "--format", "hf", "--output", "notes.txt", "--overwrite"]), 2,
              "notes.txt is a file; the hf format writes a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_dac_onto_its_own_input_is_refused(tmp_path, weights, run, capsys, overwrite):
    own = tmp_path / "own.pth"
    own.write_bytes(weights.read_bytes())
    link = tmp_path / "link.pth"
    os.symlink(own, link)
    for source, output in ((own, own), (own, link), (run, run / "latest" / "diveqdac" / "weights.pth")):
        before = output.read_bytes()
        status = main(["export", str(source), "--format", "dac", "--output", str(output), *overwrite])
        one_error(capsys, status, 2, f"--output: {output} is the input weights")
        assert output.read_bytes() == before


def test_dac_onto_an_existing_file_needs_overwrite(tmp_path, weights, capsys):
    other = tmp_path / "other.pth"
    other.write_bytes(b"old")
    one_error(capsys, main(["export", str(weights), "--format", "dac", "--output", str(other)]), 2,
              f"--output: {other} exists; pass --overwrite to replace it")
    assert other.read_bytes() == b"old"
    assert main(["export", str(weights), "--format", "dac", "--output", str(other), "--overwrite"]) == 0
    assert other.read_bytes() != b"old"


def test_hf_export_folder_and_files_follow_the_umask(tmp_path, weights, capsys):
    """A new export folder is 0755 and its files 0644 under umask 022 (mkdtemp's 0700 staging and
    safetensors' 0600 file are not what a user asked for)."""
    previous = os.umask(0o022)
    try:
        assert main(["export", str(weights), "--format", "hf", "--output", str(tmp_path / "hf")]) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "hf").stat().st_mode) == 0o755
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "hf").iterdir()} == {
        "config.json": 0o644, "model.safetensors": 0o644, "preprocessor_config.json": 0o644}
