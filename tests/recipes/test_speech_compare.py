"""The comparison recipe's command line (its training/evaluation/report steps are tested in
tests/codec, tests/scripts; the full recipe runs in minutes, see reports/)."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_python

pytestmark = pytest.mark.slow  # launches the recipe


def _run(*args):
    return run_python(["recipes/speech_compare.py", *args], timeout=120)


def test_refuses_to_overwrite_an_existing_report(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    result = _run("--report", str(report), "--root", str(tmp_path / "runs"))
    assert result.returncode == 2 and "--force" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing was trained


def test_unknown_method_is_a_one_line_error(tmp_path):
    result = _run("--methods", "ste", "vqvae", "--report", str(tmp_path / "r"), "--root", str(tmp_path / "runs"))
    assert result.returncode == 2 and "unknown methods" in result.stderr and "Traceback" not in result.stderr


def _recipe():
    import importlib
    import sys

    from tests.conftest import ROOT as REPO

    sys.path.insert(0, str(REPO / "recipes"))
    try:
        return importlib.import_module("speech_compare")
    finally:
        sys.path.remove(str(REPO / "recipes"))


def test_kept_evaluations_carry_their_training_curves(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    recipe = _recipe()
    run, eval_dir = tmp_path / "run", tmp_path / "run" / "eval"
    eval_dir.mkdir(parents=True)
    (eval_dir / "per_file.csv").write_text("file,n_quantizers,stoi\na.wav,12,0.7\n")
    (eval_dir / "summary.json").write_text('{"method": "diveq"}\n')
    writer = SummaryWriter(str(run / "logs"))
    for step, value in ((300, 0.6), (600, 0.7)):
        writer.add_scalar("val/stoi", value, step)
    writer.close()
    kept = recipe.keep_evaluation(eval_dir, run, tmp_path / "report" / "runs" / "diveq" / "seed0" / "eval")
    assert sorted(p.name for p in kept.iterdir()) == ["curves.json", "per_file.csv", "summary.json"]
    assert '"val/stoi"' in (kept / "curves.json").read_text()


def test_an_ablation_evaluation_is_labelled_by_its_variant_at_every_size(tmp_path):
    recipe = _recipe()
    summary = tmp_path / "eval" / "summary.json"
    recipe.stamp_variant(summary, "diveq_lr")  # no evaluation yet: nothing written
    assert not summary.exists()
    summary.parent.mkdir()
    summary.write_text('{"method": "diveq", "seed": 0}\n')
    recipe.stamp_variant(summary, "diveq_lr")
    assert json.loads(summary.read_text()) == {"method": "diveq", "seed": 0, "variant": "diveq_lr"}
    from dac_diveq.report.runs import group_runs, load_run

    (summary.parent / "per_file.csv").write_text("file,n_quantizers,bitrate_kbps,stoi\na.wav,12,6.0,0.7\n")
    assert [g.label for g in group_runs([load_run(summary.parent)])] == ["diveq_lr"]


def test_a_kept_evaluation_is_not_trained_again_on_a_fresh_machine(tmp_path, monkeypatch):
    """Checkpoints are never committed: a variant/seed whose evaluation is kept in the report is
    skipped (no training, no evaluation), the others are trained, and the report uses both."""
    recipe = _recipe()
    report = tmp_path / "report"
    kept = report / "runs" / "ste" / "seed0" / "eval"
    kept.mkdir(parents=True)
    (kept / "summary.json").write_text('{"method": "ste"}\n')
    commands = []
    record = lambda cmd, log: commands.append([str(c) for c in cmd])  # noqa: E731
    monkeypatch.setattr(recipe, "run", record)
    monkeypatch.setattr(sys.modules["common"], "run", record)  # what run_side_by_side calls
    code = recipe.main(["--size", "cpu", "--methods", "ste", "--seeds", "0", "1", "--report", str(report),
                        "--root", str(tmp_path / "runs"), "--force", "--no_headline"])
    assert code == 0
    trained = [c[c.index("--save_path") + 1] for c in commands if "scripts/train.py" in c]
    assert trained == [str(tmp_path / "runs" / "ste" / "seed1")]
    reported = next(c for c in commands if "scripts/report.py" in c)
    assert any(arg.endswith("ste/seed0/eval") for arg in reported)


def test_trainings_side_by_side_share_the_threads_and_log_to_their_folders(tmp_path, monkeypatch):
    recipe = _recipe()
    common = sys.modules["common"]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    script = "import os, sys, time; time.sleep(0.5); print(os.environ['OMP_NUM_THREADS']); sys.exit(int(sys.argv[1]))"
    cmds = [([sys.executable, "-c", script, code], tmp_path / f"run{i}") for i, code in enumerate(("0", "3", "0"))]
    log = []
    with pytest.raises(subprocess.CalledProcessError) as failure:
        common.run_side_by_side(cmds, log, jobs=2)
    assert failure.value.returncode == 3
    # Every run ran (the failure was raised after the others ended), each with 2 // 2 threads.
    assert [(tmp_path / f"run{i}" / "train.log").read_text().strip() for i in range(3)] == ["1", "1", "1"]
    assert len(log) == 3 and all(line.startswith("OMP_NUM_THREADS=1 ") for line in log)
    assert recipe.run_side_by_side is common.run_side_by_side


def test_side_by_side_progress_is_read_from_the_trainings_logs(tmp_path):
    _recipe()
    common = sys.modules["common"]
    log = tmp_path / "train.log"
    assert common.steps_logged(log) == 0  # not written yet
    log.write_bytes(b"checkpoints: x\rtrain:   0%|  | 0/900 [00:00<?, ?step/s]\rtrain:   1%|  | 12/900 [00:25<30:00, "
                    b"2.1s/step, loss=60.1]\rtrain:   1%|  | 13/900 [00:27<30:00, 2.1s/step]")
    assert common.steps_logged(log) == 13
    assert common.planned_steps(["python", "scripts/train.py", "--num_iters", "900"]) == 900
    assert common.planned_steps(["python", "scripts/train.py"]) is None


def test_an_ablation_is_compared_with_its_first_variant_and_carries_its_notes(tmp_path, monkeypatch):
    import json

    import numpy as np

    from tests.scripts.test_report import write_run

    recipe = _recipe()
    report = tmp_path / "report"
    for label, mode in (("diveq_stagewise", "stagewise"), ("diveq_stagewise_hard", "stagewise_hard")):
        eval_dir = write_run(report / "runs" / label, "seed0", 0, [(12, 6.0)], 0.5, np.random.default_rng(0))
        summary = json.loads((eval_dir / "summary.json").read_text())
        (eval_dir / "summary.json").write_text(json.dumps({**summary, "method": "diveq", "residual_mode": mode}))
        # write_run's layout is <root>/<method>_s<seed>/eval: move it to the recipe's <label>/seed0/eval
        target = report / "runs" / label / "seed0" / "eval"
        target.parent.mkdir(parents=True)
        eval_dir.rename(target)
    (report / "runs" / "TRAINING.md").write_text("# How\nTrained by hand.\n")
    commands = []
    record = lambda cmd, log: commands.append([str(c) for c in cmd])  # noqa: E731
    monkeypatch.setattr(recipe, "run", record)
    monkeypatch.setattr(sys.modules["common"], "run", record)
    assert recipe.main(["--size", "cpu", "--ablation", "residual_mode", "--seeds", "0", "--report", str(report),
                        "--root", str(tmp_path / "runs"), "--force", "--no_headline"]) == 0
    trained = [c[c.index("--save_path") + 1] for c in commands if "scripts/train.py" in c]
    assert trained == [str(tmp_path / "runs" / "diveq_joint" / "seed0")]
    reported = next(c for c in commands if "scripts/report.py" in c)
    assert reported[reported.index("--baselines") + 1] == "diveq [residual_mode=stagewise, lookup=exact]"
    assert reported[reported.index("--notes") + 1] == str(report / "runs" / "TRAINING.md")


def test_an_unknown_ablation_variant_is_a_one_line_error(tmp_path):
    result = _run("--ablation", "residual_mode", "--variants", "diveq_jiont", "--report", str(tmp_path / "r"),
                  "--root", str(tmp_path / "runs"))
    assert result.returncode == 2 and "unknown variants ['diveq_jiont']" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def test_the_command_log_is_the_same_on_every_machine(tmp_path):
    _recipe()
    common = sys.modules["common"]
    log = []
    common.run([sys.executable, "-c", "pass", common.ROOT / "runs" / "x y"], log)
    assert log == ["python -c pass 'runs/x y'"]
    # An older history written with this machine's paths is made portable when the next run adds to it.
    history = tmp_path / "commands.txt"
    history.write_text(f"# recipes/speech_compare --size cpu\n{sys.executable} scripts/report.py "
                       f"--commands {common.ROOT}/runs/compare/cpu/commands.txt\n")
    common.write_commands(history, "# recipes/speech_compare --size cpu --seeds 1", ["OMP_NUM_THREADS=1 " + log[0]])
    lines = history.read_text().splitlines()
    assert lines[1] == "python scripts/report.py --commands runs/compare/cpu/commands.txt"
    assert lines[2] == "# recipes/speech_compare --size cpu --seeds 1"
    assert lines[-1] == "OMP_NUM_THREADS=1 python -c pass 'runs/x y'"
    assert str(common.ROOT) not in history.read_text()


def _commands(recipe, monkeypatch, argv):
    commands = []
    record = lambda cmd, log: commands.append([str(c) for c in cmd])  # noqa: E731
    monkeypatch.setattr(recipe, "run", record)
    monkeypatch.setattr(sys.modules["common"], "run", record)
    return recipe.main(argv), commands


def test_an_ablation_reads_the_dev_set_and_never_the_test_set(tmp_path, monkeypatch):
    recipe = _recipe()
    common = ["--size", "cpu", "--seeds", "0", "--report", str(tmp_path / "r"), "--root", str(tmp_path / "runs"),
              "--force", "--no_headline"]
    code, commands = _commands(recipe, monkeypatch, ["--ablation", "lookup", *common])
    inputs = [c[c.index("--input") + 1] for c in commands if "scripts/evaluate.py" in c]
    assert code == 0 and inputs and set(inputs) == {"data/speech/dev"}
    with pytest.raises(recipe.RecipeError, match="dev set only"):
        recipe.eval_folder("test", ablation=True)
    result = _run("--ablation", "lookup", "--eval_set", "test", "--report", str(tmp_path / "r2"),
                  "--root", str(tmp_path / "runs2"))
    assert result.returncode == 2 and "dev set only" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs2").exists()


def test_a_method_comparison_reports_on_the_test_set_and_its_dev_evaluation_sits_beside(tmp_path, monkeypatch):
    recipe = _recipe()
    common = ["--size", "cpu", "--methods", "ste", "diveq", "--seeds", "0", "--root", str(tmp_path / "runs"),
              "--force", "--no_headline"]
    code, commands = _commands(recipe, monkeypatch, [*common, "--report", str(tmp_path / "r")])
    evals = [(c[c.index("--input") + 1], c[c.index("--output") + 1]) for c in commands if "scripts/evaluate.py" in c]
    assert code == 0 and {i for i, _ in evals} == {"data/speech/test"}
    assert all(o.endswith("/eval") for _, o in evals)
    code, commands = _commands(recipe, monkeypatch, [*common, "--report", str(tmp_path / "r_dev"), "--eval_set", "dev"])
    evals = [(c[c.index("--input") + 1], c[c.index("--output") + 1]) for c in commands if "scripts/evaluate.py" in c]
    assert code == 0 and {i for i, _ in evals} == {"data/speech/dev"} and all(o.endswith("/eval_dev") for _, o in evals)


@pytest.mark.parametrize("init, expected", [("package", None), ("warmup", "200"), ("none", "0"), ("kmeans", "0")])
def test_the_init_protocol_is_the_same_for_every_method(tmp_path, monkeypatch, init, expected):
    recipe = _recipe()
    code, commands = _commands(recipe, monkeypatch, [
        "--size", "cpu", "--methods", "ste", "rotation", "diveq", "sf_diveq", "--seeds", "0", "--init", init,
        "--report", str(tmp_path / "r"), "--root", str(tmp_path / "runs"), "--force", "--no_headline"])
    trainings = [c for c in commands if "scripts/train.py" in c]
    assert code == 0 and len(trainings) == 4
    skips = {c[c.index("--DiVeQDAC.skip_iters") + 1] if "--DiVeQDAC.skip_iters" in c else None for c in trainings}
    assert skips == {expected}
    assert all(("--DiVeQDAC.kmeans_init" in c) == (init == "kmeans") for c in trainings)


def test_the_baselines_train_from_their_own_confs_and_refuse_kmeans(tmp_path, monkeypatch):
    recipe = _recipe()
    common = ["--size", "cpu", "--methods", "fsq", "simvq", "ste", "--seeds", "0", "--root", str(tmp_path / "runs"),
              "--force", "--no_headline"]
    code, commands = _commands(recipe, monkeypatch, [*common, "--report", str(tmp_path / "r")])
    confs = [c[c.index("--args.load") + 1] for c in commands if "scripts/train.py" in c]
    assert code == 0 and confs == ["conf/cpu/fsq.yml", "conf/cpu/simvq.yml", "conf/cpu/ste.yml"]
    code, commands = _commands(recipe, monkeypatch, [*common, "--report", str(tmp_path / "r2"), "--init", "kmeans"])
    assert code == 2 and not commands


def test_the_objective_ablation_trains_each_variant_with_its_own_conf(tmp_path, monkeypatch):
    recipe = _recipe()
    argv = ["--size", "cpu", "--ablation", "objective", "--seeds", "0", "--report", str(tmp_path / "r"),
            "--root", str(tmp_path / "runs"), "--force", "--no_headline"]
    code, commands = _commands(recipe, monkeypatch, argv)
    confs = {c[c.index("--save_path") + 1].split("/")[-2]: c[c.index("--args.load") + 1]
             for c in commands if "scripts/train.py" in c}
    assert code == 0 and confs == {"diveq_mel": "conf/cpu/diveq.yml",
                                   "diveq_stft": "conf/cpu/objective/diveq_stft.yml",
                                   "diveq_spectral": "conf/cpu/objective/diveq_spectral.yml",
                                   "diveq_mpd": "conf/cpu/objective/diveq_mpd.yml"}
    # the discriminator variant trains for the reconstruction-only variants' wall-clock, not their steps
    mpd = next(c for c in commands if "scripts/train.py" in c and "diveq_mpd" in " ".join(map(str, c)))
    assert mpd[len(mpd) - 1 - mpd[::-1].index("--num_iters") + 1] == "272"
    # sizes without the variant's conf refuse before training anything
    result = _run("--size", "quickstart", "--ablation", "objective", "--report", str(tmp_path / "q"),
                  "--root", str(tmp_path / "qruns"))
    assert result.returncode == 2 and "conf/quickstart/objective/diveq_stft.yml" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "qruns").exists()


def test_the_schedule_ablation_measures_the_quickstart_schedule_against_its_predecessor(tmp_path, monkeypatch):
    from dac_diveq.training.config import load_yml

    recipe = _recipe()
    argv = ["--size", "quickstart", "--ablation", "schedule", "--seeds", "0", "--report", str(tmp_path / "r"),
            "--root", str(tmp_path / "runs"), "--force", "--no_headline"]
    monkeypatch.setattr(recipe, "ablation_baseline", lambda *args: "")  # reads evaluations the fake run never wrote
    code, commands = _commands(recipe, monkeypatch, argv)
    trainings = [c for c in commands if "scripts/train.py" in c]
    confs = {c[c.index("--save_path") + 1].split("/")[-2]: c[c.index("--args.load") + 1] for c in trainings}
    assert code == 0 and confs == {"diveq_lr3e-4": "conf/quickstart/schedule/diveq_lr3e-4.yml",
                                   "diveq_lr1e-3": "conf/quickstart/schedule/diveq_lr1e-3.yml",
                                   "diveq_lr1e-3_warmup": "conf/quickstart/diveq.yml"}
    steps = int(trainings[0][trainings[0].index("--num_iters") + 1])
    old, lr, conf = (load_yml(ROOT / confs[name]) for name in ("diveq_lr3e-4", "diveq_lr1e-3", "diveq_lr1e-3_warmup"))
    # the quickstart conf: the cpu size's rule, 1e-3 falling 10x over the run, over the run the recipe trains
    assert conf["AdamW.lr"] == lr["AdamW.lr"] == 1e-3 and conf["num_iters"] == steps
    assert conf["ExponentialLR.gamma"] ** steps == pytest.approx(0.1, rel=1e-4)
    assert 0 < conf["DiVeQDAC.avg_iters"] <= conf["DiVeQDAC.skip_iters"] < steps
    # the warm-up is the one difference between the last two variants; the first is the schedule it replaced
    assert {k for k in conf if conf[k] != lr.get(k)} == {"DiVeQDAC.skip_iters", "save_path"}
    assert old["AdamW.lr"] == 3e-4 and old["ExponentialLR.gamma"] ** steps > 0.99 and old["DiVeQDAC.skip_iters"] == 0
    # every ablation reads the dev set only
    evaluations = [c for c in commands if "scripts/evaluate.py" in c]
    assert evaluations and all(c[c.index("--input") + 1] == "data/speech/dev" for c in evaluations)


def test_the_long_size_trains_to_a_milestone_and_evaluates_each_milestone_checkpoint(tmp_path, monkeypatch):
    recipe = _recipe()
    argv = ["--size", "long", "--methods", "diveq", "--seeds", "0", "--until", "2000", "--report",
            str(tmp_path / "r"), "--root", str(tmp_path / "runs"), "--force", "--no_headline"]
    code, commands = _commands(recipe, monkeypatch, argv)
    train = [c for c in commands if "scripts/train.py" in c]
    assert code == 0 and len(train) == 1 and train[0][train[0].index("--stop_at") + 1] == "2000"
    assert train[0][train[0].index("--num_iters") + 1] == "8000"
    evals = [(c[c.index("--weights_path") + 1], c[c.index("--output") + 1]) for c in commands
             if "scripts/evaluate.py" in c]
    run = str(tmp_path / "runs" / "diveq" / "seed0")
    assert evals == [(f"{run}/1000", f"{run}/eval_step1000"), (f"{run}/2000", f"{run}/eval_step2000")]
    for until in ("1500", "9000"):
        result = _run("--size", "long", "--until", until, "--report", str(tmp_path / f"r{until}"),
                      "--root", str(tmp_path / "runs2"))
        assert result.returncode == 2 and "choose a milestone" in result.stderr and not (tmp_path / "runs2").exists()
    result = _run("--size", "cpu", "--until", "300", "--report", str(tmp_path / "rc"), "--root", str(tmp_path / "runs3"))
    assert result.returncode == 2 and "--size long" in result.stderr and "Traceback" not in result.stderr


def test_a_long_report_compares_the_largest_milestone_every_run_reached(tmp_path):
    recipe = _recipe()
    kept = tmp_path / "report" / "runs"
    for run, steps in (("diveq/seed0", (1000, 2000, 3000)), ("ste/seed0", (1000, 2000))):
        for step in steps:
            (kept / run / f"step{step}" / "eval").mkdir(parents=True)
            (kept / run / f"step{step}" / "eval" / "summary.json").write_text("{}")
    chosen = recipe.common_milestone(kept, "eval")
    assert [str(p).split("runs/")[-1] for p in chosen] == ["diveq/seed0/step2000/eval", "ste/seed0/step2000/eval"]


def test_the_gpu_size_prepares_the_corpora_and_reports_on_the_standard_test_list(tmp_path, monkeypatch):
    recipe = _recipe()
    argv = ["--size", "gpu", "--methods", "ste", "diveq", "--seeds", "0", "--root", str(tmp_path / "runs"),
            "--report", str(tmp_path / "r"), "--force", "--no_headline"]
    code, commands = _commands(recipe, monkeypatch, argv)
    prepares = [c[c.index("scripts/prepare_data.py") + 1:] for c in commands if "scripts/prepare_data.py" in c]
    assert code == 0 and prepares == [["--corpus", "libritts", "--download", "--subsets", "train-clean-100",
                                       "dev-clean"],
                                      ["--corpus", "librispeech", "--download", "--subsets", "test-clean"]]
    trainings = [c for c in commands if "scripts/train.py" in c]
    assert len(trainings) == 2 and all(c[c.index("--args.load") + 1].startswith("conf/") for c in trainings)
    assert not any("--train/build_dataset.folders" in c for c in trainings)  # the confs' LibriTTS
    evals = {c[c.index("--input") + 1] for c in commands if "scripts/evaluate.py" in c}
    assert evals == {"data/corpora/librispeech/16000/test_list"}
    # the released DAC and EnCodec, scored on test-clean by a paper, beside Opus in the report
    reports = [c for c in commands if "scripts/report.py" in c]
    published = reports[0][reports[0].index("--published") + 1]
    assert published == "dac_diveq/data/corpora/librispeech_test_clean_published.json" and (ROOT / published).is_file()
