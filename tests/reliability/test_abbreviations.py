"""No command line takes an abbreviated option for a full one: argparse's default would read
``--outp DIR`` as ``--output DIR`` and ``--args.loa FILE`` as ``--args.load FILE`` (the training
scripts' parser is checked in ``test_yml_code``)."""
import ast

import pytest

from dac_diveq.codec import cli
from tests.conftest import ROOT, load_script


def parser_calls(path):
    """``(line, call)`` of every ``ArgumentParser(...)`` and ``add_parser(...)`` in a file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("ArgumentParser", "add_parser"):
                yield node.lineno, node


def test_every_parser_refuses_abbreviations():
    files = [*sorted((ROOT / "dac_diveq").rglob("*.py")), *sorted((ROOT / "scripts").glob("*.py")),
             *sorted((ROOT / "recipes").glob("*.py"))]
    found, lenient = 0, []
    for path in files:
        for line, call in parser_calls(path):
            found += 1
            flags = [k.value for k in call.keywords if k.arg == "allow_abbrev"]
            if not (flags and isinstance(flags[0], ast.Constant) and flags[0].value is False):
                lenient.append(f"{path.relative_to(ROOT)}:{line}")
    assert found >= 15 and not lenient, lenient


@pytest.mark.parametrize("argv", [
    ["export", "run", "--outp", "out"],
    ["export", "run", "--output", "out", "--form", "hf"],
    ["encode", "in.wav", "--weights_path", "w.pth", "--outp", "out"],
])
def test_the_cli_refuses_an_abbreviated_option(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(argv)
    assert exit_.value.code == 2 and " error: " in capsys.readouterr().err  # --outp is not --output


def test_report_refuses_an_abbreviated_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        load_script("report").parse_args(["--runs", "x", "--output", "report", "--forc"])
    assert exit_.value.code == 2 and "unrecognized arguments: --forc" in capsys.readouterr().err
