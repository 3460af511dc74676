"""A user's mistake, or a file that loads safely but holds nonsense, is one line and a non-zero exit,
never a traceback: wrong-typed yml values, a non-string ``$include``, ``--log_freq 0``, resume files
such as ``rng={}`` or ``step='x'`` or an empty optimizer state, malformed report inputs, a full disk
under ``report.py`` and ``export`` (a real one for the writer: ``RLIMIT_FSIZE``), and 6-channel
audio given to ``evaluate.py``."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dac_diveq.codec.model import DiVeQDAC
from tests.codec.test_cli import write
from tests.conftest import TINY_DAC, load_script, run_python
from tests.reliability.test_entry_points import assert_one_line_error, codec_run, speech  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow  # launches the entry points


def train(speech_root: Path, *args, conf=None):
    return run_python(["scripts/train.py", "--args.load", conf or speech_root / "diveq.yml", *args], timeout=180)


def conf_with(speech_root: Path, tmp_path: Path, **keys) -> Path:
    """The tiny codec conf with ``keys`` set (``$include`` replaced when given)."""
    data = yaml.safe_load((speech_root / "diveq.yml").read_text())
    data.update(keys)
    path = tmp_path / "conf.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("keys, needle", [
    ({"num_iters": "abc"}, "configuration key 'num_iters' in {conf} (or a file it includes) must be an integer, "
                           "got 'abc'"),
    ({"DiVeQDAC.codebook_size": 64.5}, "'DiVeQDAC.codebook_size' in {conf} (or a file it includes) must be an integer"),
    ({"save_every": "often"}, "'save_every' in {conf} (or a file it includes) must be a number, got 'often'"),
    ({"$include": [1]}, "{conf}: $include must be a list of file names"),
    ({"$include": [["conf/quickstart/diveq.yml"]]}, "{conf}: $include must be a list of file names"),
])
def test_wrong_typed_yml_values_are_one_line(speech, tmp_path, keys, needle):  # noqa: F811
    conf = conf_with(speech, tmp_path, **keys)
    result = train(speech, "--save_path", tmp_path / "run", conf=conf)
    assert_one_line_error(result, needle.format(conf=conf))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value, needle", [
    ("--log_freq", "0", "--log_freq must be at least 1, got 0"),
    ("--batch_size", "0", "--batch_size must be at least 1, got 0"),
    ("--valid_freq", "-1", "--valid_freq must be at least 0, got -1"),
])
def test_loop_settings_that_would_fail_later_are_one_line(speech, tmp_path, option, value, needle):  # noqa: F811
    result = train(speech, "--save_path", tmp_path / "run", option, value)
    assert_one_line_error(result, needle)
    assert not (tmp_path / "run" / ".checkpoints").exists()


def _edit_trainer(path: Path, **changes) -> None:
    state = torch.load(path, weights_only=True)
    state.update(changes)
    torch.save(state, path)


@pytest.mark.parametrize("case, needle", [
    ("rng={}", "is not a trainer state (its RNG state is not a dict of torch, numpy and python states)"),
    ("step='x'", "is not a trainer state (step 'x' is not a count of steps)"),
    ("best=None", "is not a trainer state (best 'None' is not a score)"),
    ("rng=[]", "is not a trainer state (it holds RNG states of 0 rank(s), this is rank 0)"),
    ("optimizer={}", "optimizer.pth is not a state of this AdamW"),
    ("scheduler=[1]", "scheduler.pth holds a list, not a ExponentialLR state"),
])
def test_corrupt_but_safe_resume_files_are_one_line(speech, codec_run, tmp_path, case, needle):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(codec_run, run, symlinks=True)
    folder = Path(os.path.realpath(run / "latest"))
    key, value = case.split("=")
    if key in ("optimizer", "scheduler"):
        torch.save(eval(value), folder / "diveqdac" / f"{key}.pth")
    else:
        _edit_trainer(folder / "trainer.pth", **{key: eval(value)})
    result = train(speech, "--save_path", run, "--num_iters", "3", "--resume", "true")
    assert_one_line_error(result, needle)
    assert os.path.realpath(run / "latest") == str(folder)  # nothing trained or saved


# ----------------------------------------------------------------------------- report.py


def _runs(root: Path) -> list[Path]:
    from tests.scripts.test_report import write_run

    rng = np.random.default_rng(0)
    return [write_run(root, method, seed, [(4, 2.0), (12, 6.0)], quality, rng)
            for method, quality in (("ste", 0.0), ("diveq", 0.5)) for seed in (0, 1)]


@pytest.mark.parametrize("name, content, needle", [
    ("summary.json", "[1, 2]", "summary.json: malformed (a list, not a mapping)"),
    ("summary.json", "{", "summary.json: malformed (Expecting property name"),
    ("summary.json", b"\xff\xfe", "summary.json: malformed ('utf-8' codec can't decode"),
    ("summary.json", {"files": 3}, "summary.json: malformed (files is of type int, expected list)"),
    ("summary.json", {"by_bitrate": {"4": 1}}, "summary.json: malformed (by_bitrate holds a value that is not"),
    ("per_file.csv", "file,n_quantizers,bitrate_kbps,pesq_wb\na.wav\n", "per_file.csv: malformed (line 2 has 1 cells"),
    ("per_file.csv", "file,n_quantizers,bitrate_kbps\na.wav,x,2\n", "per_file.csv: malformed (could not convert"),
    ("curves.json", "[1]", "curves.json: malformed (a list, not a mapping"),
    ("curves.json", '{"val/mel/loss": [[1]]}', "curves.json: malformed (val/mel/loss is not a list of [step, value]"),
    ("../latest/trainer.pth", {"history": 5}, "trainer.pth: malformed (its history is not a list of mappings)"),
    ("../latest/trainer.pth", {"history": [{"step": "x", "mel/loss": 1.0}]}, "trainer.pth: malformed (invalid literal"),
])
def test_report_on_malformed_run_files_is_one_line(tmp_path, capsys, name, content, needle):
    dirs = _runs(tmp_path / "runs")
    target = Path(os.path.normpath(dirs[0] / name))
    target.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".pth"):
        torch.save(content, target)
    elif isinstance(content, dict):
        target.write_text(json.dumps({**json.loads(target.read_text()), **content}))
    else:
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    status = load_script("report").main(["--runs", *map(str, dirs), "--output", str(tmp_path / "report")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith(f"error: {target}: ") and needle in err[0], err
    assert not (tmp_path / "report" / "README.md").exists()


def _complete_png(path: Path) -> bool:
    return path.read_bytes().endswith(b"IEND\xaeB`\x82")


def test_report_on_a_full_disk_is_one_line_and_leaves_no_truncated_file(tmp_path):
    dirs = _runs(tmp_path / "runs")
    out = tmp_path / "report"
    result = run_python(["tests/reliability/limited.py", "1024", "--fsize", "20000", "scripts/report.py",
                         "--runs", *dirs, "--output", out], timeout=300)
    assert_one_line_error(result, f"cannot write the report to {out}: File too large")
    written = list(out.rglob("*")) if out.exists() else []
    assert not [p for p in written if p.name.endswith(".partial")], written
    assert all(_complete_png(p) for p in written if p.suffix == ".png"), written
    assert not (out / "README.md").exists()


# ----------------------------------------------------------------------------- codec entry points


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "w.pth"
    DiVeQDAC(**TINY_DAC).save(str(path), package=False)
    return path


def test_export_to_a_full_disk_is_one_line(tmp_path, weights):
    out = tmp_path / "stock.pth"
    result = run_python(["tests/reliability/limited.py", "1024", "--fsize", "50000", "-m", "dac_diveq", "export",
                         weights, "--format", "dac", "--output", out], timeout=180)
    assert_one_line_error(result, f"--output: cannot write {out}: File too large")
    assert "inline_container" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pth"]  # no output, no partial file


def test_evaluate_checks_channels_as_encode_does(tmp_path, weights):
    audio = tmp_path / "audio"
    write(audio / "six.wav", channels=6)
    result = run_python(["scripts/evaluate.py", "--weights_path", weights, "--input", audio, "--output",
                         tmp_path / "eval", "--device", "cpu", "--ladder", "1"], timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith("error: six.wav: 6 channels: at most 5 can be encoded"), errors
