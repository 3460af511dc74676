"""No yml runs code, however ``--args.load`` is spelled: repeated, abbreviated (``--args.loa``,
``--args.l=FILE``), with ``=``, or reached through ``$include``. Every yml goes through YAML's safe
loader (argbind's own loader runs ``!!python/...`` tags), abbreviated options are refused (argparse
would take ``--num_iter`` for ``--num_iters``, and argbind then let the yml's value win), and each
refusal is one line, exit status 2, in every script that reads ymls."""
import argbind
import pytest
import yaml

from dac_diveq.training import config
from tests.conftest import ROOT, load_script, run_python


def run(num_iters: int = 10, save_path: str = "runs/x", resume: bool = False):
    return num_iters, save_path, resume


@pytest.fixture
def bound(monkeypatch):
    """A private argbind registry (the real one is global) with ``run`` bound."""
    monkeypatch.setattr(argbind.argbind, "PARSE_FUNCS", {})
    argbind.bind(run, without_prefix=True)


@pytest.fixture
def ymls(tmp_path):
    """``(good.yml, evil.yml, outer.yml including evil.yml, marker)``: loading evil.yml with
    PyYAML's unsafe loader would create the marker file."""
    marker = tmp_path / "PAYLOAD_RAN"
    good = tmp_path / "good.yml"
    good.write_text("num_iters: 3\n")
    evil = tmp_path / "evil.yml"
    evil.write_text(f"num_iters: !!python/object/apply:os.system ['touch {marker}']\n")
    outer = tmp_path / "outer.yml"
    outer.write_text(yaml.safe_dump({"$include": [str(good), str(evil)]}))
    yield good, evil, outer, marker
    assert not marker.exists(), "a yml ran its code"


def spellings(good, evil, outer):
    """``(argv, what the one-line error says)`` for each way of reaching ``evil``."""
    tag = "it uses the YAML tag !!python/object/apply:os.system, which would run code"
    return {
        "repeated": (["--args.load", good, "--args.load", evil], "--args.load is given 2 times"),
        "abbreviated": (["--args.loa", evil], "unknown option --args.loa: options are not abbreviated, "
                                              "did you mean --args.load?"),
        "abbreviated=": ([f"--args.l={evil}"], "unknown option --args.l: options are not abbreviated, "
                                               "did you mean --args.load?"),
        "exact=": ([f"--args.load={evil}"], f"refusing to load {evil}: {tag}"),
        "included": (["--args.load", outer], f"refusing to load {evil} (included from {outer}): {tag}"),
    }


SPELLINGS = ("repeated", "abbreviated", "abbreviated=", "exact=", "included")


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_no_spelling_of_args_load_runs_a_yml_tag(bound, ymls, spelling):
    argv, message = spellings(*ymls[:3])[spelling]
    with pytest.raises(config.ConfigError) as error:
        config.parse_args([str(arg) for arg in argv])
    assert str(error.value).startswith(message) and "\n" not in str(error.value), str(error.value)


def test_argbind_never_reaches_the_unsafe_loader(bound, ymls, monkeypatch):
    """While argbind parses, its loader is the safe one (``$include``s too), and it is put back after."""
    good, _, _, _ = ymls
    outer = good.with_name("includes_good.yml")
    outer.write_text(yaml.safe_dump({"$include": [str(good)], "save_path": "$RUN_ROOT"}))
    original = argbind.argbind.load_args

    load = yaml.load

    def safe_only(stream, Loader):
        assert issubclass(Loader, yaml.SafeLoader), f"a yml was read with {Loader.__name__}"
        return load(stream, Loader)

    monkeypatch.setattr(yaml, "load", safe_only)
    monkeypatch.setenv("RUN_ROOT", "/tmp/runs")
    args = config.parse_args(["--args.load", str(outer)])
    assert args["num_iters"] == 3 and args["save_path"] == "/tmp/runs"  # include and environment, as argbind
    assert argbind.argbind.load_args is original


@pytest.mark.parametrize("argv, message", [
    (["--num_iter", "2"], "unknown option --num_iter: options are not abbreviated, did you mean --num_iters?"),
    (["--save_pat", "x"], "unknown option --save_pat: options are not abbreviated, did you mean --save_path?"),
    (["--num_iter=2"], "unknown option --num_iter: options are not abbreviated, did you mean --num_iters?"),
    (["--num_iters", "abc"], "argument --num_iters: invalid int value: 'abc'"),
])
def test_abbreviated_options_are_refused_not_overridden_by_the_yml(bound, ymls, argv, message):
    """argparse's default took ``--num_iter 2`` for ``--num_iters`` and argbind then let the yml's
    value win: the run trained the yml's steps into the yml's save_path."""
    good = ymls[0]
    with pytest.raises(config.ConfigError) as error:
        config.parse_args(["--args.load", str(good), *argv])
    assert str(error.value) == message
    assert config.parse_args(["--args.load", str(good), "--num_iters", "2"])["num_iters"] == 2


@pytest.mark.parametrize("script, folders", [
    ("train", [".", *(p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name != "image")]),
    ("train_image", ["image", "image/quickstart"]),
])
def test_the_safe_loader_reads_every_shipped_conf_as_argbind_does(monkeypatch, script, folders):
    monkeypatch.setattr(argbind.argbind, "PARSE_FUNCS", {})
    load_script(script)
    monkeypatch.chdir(ROOT)  # $include paths are relative to the repository root
    confs = sorted(path for folder in folders for path in (ROOT / "conf" / folder).glob("*.yml"))
    assert len(confs) > 5
    for conf in confs:
        assert config.load_yml(conf) == argbind.load_args(str(conf)), conf.relative_to(ROOT)


@pytest.mark.slow  # launches the scripts
@pytest.mark.parametrize("script", ["train", "train_image", "evaluate", "evaluate_image"])
def test_every_script_refuses_every_spelling_in_one_line(tmp_path, ymls, script):
    for spelling in ("repeated", "abbreviated", "abbreviated=", "included"):
        argv, message = spellings(*ymls[:3])[spelling]
        result = run_python([ROOT / "scripts" / f"{script}.py", *argv], timeout=120, cwd=tmp_path)
        assert result.returncode == 2, (spelling, result.returncode, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), (spelling, result.stderr[-2000:])
        assert not ymls[3].exists(), f"{script} {spelling}: the yml ran its code"
        assert not (tmp_path / "runs").exists()  # nothing trained into a default save_path
