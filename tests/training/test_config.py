"""The scripts' configuration layer: list/dict values on the command line."""
import pytest

from dac_diveq.training.config import ConfigError, container_values, with_resume_value
from tests.conftest import run_python

KEYS = {"save_iters", "AdamW.betas", "lambdas", "train/build_dataset.folders"}


@pytest.mark.parametrize("argv, expected", [
    (["--save_iters", "[500, 1000]"], [500, 1000]),
    (["--save_iters", "500", "1000"], [500, 1000]),
    (["--save_iters", "500 1000"], [500, 1000]),
    (["--save_iters", "[]"], []),
    (["--AdamW.betas", "0.9,0.999"], [0.9, 0.999]),
    (["--lambdas", "{mel/loss: 15, waveform/loss: 1}"], {"mel/loss": 15, "waveform/loss": 1}),
])
def test_container_values_parse_lists_and_mappings(argv, expected):
    rest, values = container_values(["--seed", "1", *argv, "--num_iters", "3"], KEYS)
    assert rest == ["--seed", "1", "--num_iters", "3"]
    assert list(values.values()) == [expected]


def test_container_value_errors_are_one_line():
    with pytest.raises(ConfigError, match="--save_iters needs a value"):
        container_values(["--save_iters", "--seed", "1"], KEYS)
    with pytest.raises(ConfigError, match="is not a list or mapping"):
        container_values(["--lambdas", "{a: [}"], KEYS)


def test_a_bare_resume_means_true():
    """``--resume`` was a flag before it took true/false/auto: a bare one still means true."""
    assert with_resume_value(["--resume", "--seed", "1", "--resume"]) == ["--resume", "true", "--seed", "1", "--resume", "true"]
    assert with_resume_value(["--resume", "auto"]) == ["--resume", "auto"]


@pytest.mark.slow  # launches the script
def test_train_script_reads_list_options_from_the_command_line(tmp_path):
    """--save_iters "[2]" on the command line keeps the milestone (it used to be a list of characters)."""
    code = ("import sys, runpy; sys.argv = ['train.py', '--args.load', 'conf/quickstart/diveq.yml', "
            "'--save_iters', '[500, 1000]', '--val_idx', '0', '3', '--DiVeQDAC.encoder_rates', '[2, 4, 8, 8]']; "
            "runpy.run_path('scripts/train.py', run_name='bound'); "
            "from dac_diveq.training import config; a = config.parse_args(); "
            "print(a['save_iters'], a['val_idx'], a['DiVeQDAC.encoder_rates'])")
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[500, 1000] [0, 3] [2, 4, 8, 8]"


PROBE = """
import dataclasses, inspect, json, sys
import argbind
from dac_diveq.training.config import ConfigError, parse_args, takes_config
from dac_diveq.training.loop import LoopConfig

@dataclasses.dataclass
class ProbeConfig(LoopConfig):
    probe_weights: dict = dataclasses.field(default_factory=lambda: {"a": 1.0})
    probe_scale: float = 2.5

@argbind.bind(without_prefix=True)
@takes_config(ProbeConfig)
def probe_train(args, config, own: str = "x"):
    return config, own

parameters = inspect.signature(probe_train).parameters
args = parse_args(["--args.load", sys.argv[1], "--batch_size", "3", "--own", "y"])
with argbind.scope(args):
    config, own = probe_train(args)
try:
    with argbind.scope(parse_args(["--num_iters", "-1"])):
        probe_train(args)
    refused = ""
except ConfigError as exc:
    refused = str(exc)
print(json.dumps({"default": parameters["num_iters"].default, "annotation": parameters["num_iters"].annotation.__name__,
                  "weights_default": parameters["probe_weights"].default,
                  "scale_annotation": parameters["probe_scale"].annotation.__name__,
                  "config": [config.num_iters, config.batch_size, config.probe_scale, config.probe_weights, own,
                             config.valid_freq, type(config).__name__], "refused": refused}))
"""


def test_a_config_dataclass_is_the_one_declaration_argbind_binds(tmp_path):
    """takes_config: the dataclass's fields become the bound function's options (argbind reads the
    yml and the command line into them, defaults are the dataclass's, types checked by it); an
    argbind upgrade that stopped honouring the generated signature fails here, not in a user's run.
    In a child interpreter: argbind's bindings are global."""
    import json

    from dac_diveq.training.loop import LoopConfig

    yml = tmp_path / "probe.yml"
    yml.write_text("num_iters: 7\nprobe_scale: 1.5\nprobe_weights:\n  b: 2.0\n")
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    result = run_python([script, yml])
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["default"] == LoopConfig.num_iters and out["annotation"] == "int"
    assert out["weights_default"] == {"a": 1.0} and out["scale_annotation"] == "float"
    assert out["config"] == [7, 3, 1.5, {"b": 2.0}, "y", LoopConfig.valid_freq, "ProbeConfig"]
    assert "num_iters" in out["refused"] and "\n" not in out["refused"]
