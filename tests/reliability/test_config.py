"""Configuration errors end in one line: unknown keys (yml, ``$include``d yml, scoped, command line)
name the closest known key; a missing ``$include``, broken YAML or a ``!!python`` tag is refused;
every yml in ``conf/`` uses only keys its script reads."""
from pathlib import Path

import argbind
import pytest

from dac_diveq.training import config
from tests.conftest import ROOT, load_script, run_python


def Model(width: int = 4, noise_var: float = 1e-3):
    return width, noise_var


def Dataset(duration: float = 1.0, folders: dict = None):
    return duration


def run(num_iters: int = 10, resume: bool = False):
    return num_iters, resume


@pytest.fixture
def bound(monkeypatch):
    """A private argbind registry (the real one is global) with the three functions above bound."""
    monkeypatch.setattr(argbind.argbind, "PARSE_FUNCS", {})
    argbind.bind(Model)
    argbind.bind(Dataset, "train", "val")
    argbind.bind(run, without_prefix=True)


def _yml(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_known_keys_are_the_bound_parameters_with_their_scopes(bound):
    assert config.known_keys() == {"Model.width", "Model.noise_var", "Dataset.duration", "Dataset.folders",
                                   "train/Dataset.duration", "train/Dataset.folders", "val/Dataset.duration",
                                   "val/Dataset.folders", "num_iters", "resume"}


def test_known_keys_of_a_yml_and_the_command_line_are_accepted(bound, tmp_path):
    base = _yml(tmp_path / "base.yml", "Model.width: 8\ntrain/Dataset.duration: 0.5\n")
    conf = _yml(tmp_path / "conf.yml", f"$include:\n  - {base}\nnum_iters: 3\n")
    args = config.parse_args(["--args.load", conf, "--Model.noise_var", "0.01", "--resume", "false"])
    assert args["Model.width"] == 8 and args["train/Dataset.duration"] == 0.5 and args["num_iters"] == 3
    assert args["Model.noise_var"] == 0.01 and args["resume"] is False  # "false" used to set the flag
    assert config.parse_args(["--resume", "true"])["resume"] is True


@pytest.mark.parametrize("text, message", [
    ("Model.noise_vr: 0.01\n", "unknown configuration key 'Model.noise_vr' in {conf} (or a file it includes); "
                               "did you mean Model.noise_var?"),
    ("train/Dataset.durration: 0.5\n", "unknown configuration key 'train/Dataset.durration' in {conf} (or a file it "
                                       "includes); did you mean train/Dataset.duration?"),
    ("test/Dataset.duration: 0.5\n", "unknown configuration key 'test/Dataset.duration' in {conf}"),
    ("$include:\n  - {base}\n", "unknown configuration key 'Modle.width' in {conf} (or a file it includes); "
                                "did you mean Model.width?"),
])
def test_an_unknown_yml_key_names_the_closest_known_one(bound, tmp_path, text, message):
    base = _yml(tmp_path / "base.yml", "Modle.width: 8\n")
    conf = _yml(tmp_path / "conf.yml", text.format(base=base))
    with pytest.raises(config.ConfigError) as error:
        config.parse_args(["--args.load", conf])
    assert str(error.value).startswith(message.format(conf=conf))


def test_an_unknown_command_line_option_names_the_closest_known_one(bound):
    with pytest.raises(config.ConfigError, match=r"^unknown option --Model\.noise_vr; did you mean --Model\.noise_var\?$"):
        config.parse_args(["--Model.noise_vr", "0.01"])
    with pytest.raises(config.ConfigError, match="unexpected argument 'stray'"):
        config.parse_args(["stray"])


@pytest.mark.parametrize("text, message", [
    ("$include:\n  - {missing}\n", "configuration file {missing} (included from {conf}) not found"),
    ("a: [1, 2\nb: 3\n", "{conf} is not valid YAML (expected ',' or ']', but got ':' at line 2, column 2)"),
    ("x: !!python/object/apply:os.system ['touch {marker}']\n",
     "refusing to load {conf}: it uses the YAML tag !!python/object/apply:os.system, which would run code"),
    ("- a\n- b\n", "{conf} is not a mapping of keys to values"),
    ("$include:\n  - {conf}\n", "{conf} (included from {conf}) includes itself"),
])
def test_a_broken_yml_is_one_line(bound, tmp_path, text, message):
    conf, missing, marker = tmp_path / "conf.yml", tmp_path / "missing.yml", tmp_path / "PAYLOAD_RAN"
    _yml(conf, text.format(missing=missing, marker=marker, conf=conf))
    with pytest.raises(config.ConfigError) as error:
        config.parse_args(["--args.load", str(conf)])
    assert str(error.value).startswith(message.format(missing=missing, conf=conf)) and "\n" not in str(error.value)
    assert not marker.exists()
    with pytest.raises(config.ConfigError, match="configuration file .*nowhere.yml not found"):
        config.parse_args(["--args.load", str(tmp_path / "nowhere.yml")])


@pytest.mark.parametrize("script, pattern", [
    ("train", ["conf/*.yml", "conf/quickstart/*.yml", "conf/cpu/*.yml", "conf/cpu/objective/*.yml"]),
    ("train_image", ["conf/image/*.yml", "conf/image/quickstart/*.yml"]),
])
def test_every_shipped_conf_uses_only_keys_its_script_reads(monkeypatch, script, pattern):
    monkeypatch.setattr(argbind.argbind, "PARSE_FUNCS", {})
    load_script(script)  # binds the script's functions into the private registry
    known = config.known_keys()
    confs = sorted(path for glob in pattern for path in ROOT.glob(glob))
    assert confs
    monkeypatch.chdir(ROOT)  # $include paths are relative to the repository root
    for conf in confs:
        config.check_yml(conf)
        unknown = set(argbind.load_args(str(conf))) - known - config.ARGBIND_KEYS
        assert not unknown, f"{conf.relative_to(ROOT)}: {sorted(unknown)}"


def test_a_model_without_codebooks_is_refused_when_built():
    from dac_diveq.codec.model import DiVeQDAC
    from tests.conftest import TINY_DAC

    with pytest.raises(ValueError, match="^n_codebooks must be a positive integer, got 0$"):
        DiVeQDAC(**{**TINY_DAC, "n_codebooks": 0})


@pytest.mark.slow  # launches the script
@pytest.mark.parametrize("case", ["typo", "missing_include", "no_codebooks", "save_path_is_a_file"])
def test_train_script_errors_are_one_line_and_build_nothing(tmp_path, case):
    conf = tmp_path / "conf.yml"
    # Data folders that exist (train.py checks them before the model): the case's own error is the one shown.
    (tmp_path / "audio").mkdir()
    text = ("$include:\n  - conf/quickstart/diveq.yml\nprepare_embedded_data.root: ''\n"
            f"train/build_dataset.folders:\n  speech: [{tmp_path / 'audio'}]\n"
            f"val/build_dataset.folders:\n  speech: [{tmp_path / 'audio'}]\n")
    args, save_path = [], tmp_path / "run"
    if case == "typo":
        text += "DiVeQDAC.noise_vr: 0.01\n"
        expected = (f"unknown configuration key 'DiVeQDAC.noise_vr' in {conf} (or a file it includes); "
                    "did you mean DiVeQDAC.noise_var?")
    elif case == "missing_include":
        text = f"$include:\n  - {tmp_path / 'gone.yml'}\n"
        expected = f"configuration file {tmp_path / 'gone.yml'} (included from {conf}) not found"
    elif case == "no_codebooks":
        args = ["--DiVeQDAC.n_codebooks", "0"]
        expected = "n_codebooks must be a positive integer, got 0"
    else:
        save_path.write_text("")
        expected = f"cannot use {save_path} as the run folder (save_path): it is a file, not a folder"
    conf.write_text(text)
    result = run_python(["scripts/train.py", "--args.load", conf, "--save_path", save_path, *args], timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == f"error: {expected}"
    assert case == "save_path_is_a_file" or not save_path.exists()  # refused before anything was written
