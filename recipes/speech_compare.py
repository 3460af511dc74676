"""Train every selected method x seed on the same data and budget, evaluate on the held-out real
speech, and write a comparative report.

    python recipes/speech_compare.py --size quickstart                      # CPU, ste/rotation/diveq/sf_diveq, seed 0
    python recipes/speech_compare.py --size gpu --seeds 0 1 2               # one H100, ~8 min per run (LibriTTS)
    python recipes/speech_compare.py --size quickstart --ablation noise_var  # DiVeQ sigma^2 sweep
    python recipes/speech_compare.py --size cpu --methods ste diveq --seeds 0 1 2 --jobs 2 --force   # 2 runs per ~35 min, 2 cores
    python recipes/speech_compare.py --size cpu --init warmup --methods ste diveq   # estimator-only: one warm-up for all
    python recipes/speech_compare.py --size long --init warmup --methods ste diveq --seeds 0 1 2 --jobs 2 --until 2000

Method comparisons are evaluated on the held-out **test** set (``data/speech/test``, reported only);
ablations, which choose something, on the **dev** set (``data/speech/dev``) and cannot read the test set.
The ``gpu`` size trains on LibriTTS (conf/data/libritts.yml) and reports on the committed standard test
list of LibriSpeech test-clean (``data/corpora/librispeech/16000/test_list``); it prepares both first
(``scripts/prepare_data.py --corpus ... --download``: nothing is fetched again once prepared).

``--init`` makes the comparison one of estimators only: ``warmup`` gives every method the same
warm-up without quantization and codebooks initialised from latents (paper A.5), ``none`` gives
none of them either, ``kmeans`` initialises every codebook by k-means of the first batch's latents
(EnCodec's; not for FSQ and SimVQ, which have no learned codebook); ``package`` (default) keeps each
method's own conf (DiVeQ/SF-DiVeQ warm up, STE/RT start quantized), which compares packages, not
estimators. ``--methods`` also takes ``fsq`` and ``simvq`` (conf/{fsq,simvq}.yml at every size).

The ``cpu`` size keeps every evaluated run (per-file CSV, summary JSON, training curves; never
checkpoints) under ``<report>/runs/<variant>/seed<k>/eval`` and builds the report from all runs
found there, so runs added in a later sitting, on another machine, join the ones committed before;
a variant and seed whose evaluation is kept there is not trained again.

The ``long`` size (8000 steps, longer than a sitting) trains every run up to ``--until`` (a milestone,
a multiple of 1000) and evaluates each milestone checkpoint reached, kept under
``<report>/runs/<variant>/seed<k>/step<N>/eval``; the next sitting passes a larger ``--until`` and
the runs resume from ``latest`` (when the machine kept ``runs/``; a fresh machine trains them again).
The report compares the runs at the largest milestone all of them reached and adds the
quality-vs-steps curve of every kept milestone.

Re-running skips finished trainings and evaluations (it resumes interrupted ones) and refuses to
overwrite an existing report unless ``--force``.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from common import METHOD_CONF, ROOT, finished, run, run_side_by_side, write_commands

from dac_diveq.errors import ConfigError
from dac_diveq.report.eval_io import write_atomic
from dac_diveq.report.tensorboard import CURVES_FILE, training_curves, write_curves

#: Curves kept with an evaluation (what reports plot and what the next sitting compares against).
KEPT_CURVES = ("val/mel/loss", "val/pesq_wb", "val/stoi", "val/vq/usage", "train/mel/loss")
#: Files of an evaluation folder that are kept with a report (small; never checkpoints).
KEPT_FILES = ("per_file.csv", "summary.json", CURVES_FILE)


def keep_evaluation(eval_dir: Path, save_path: Path, kept: Path, variant: str = "") -> Path:
    """Copy an evaluation (and its run's training curves) into the report's ``runs/``; an ablation's
    ``variant`` name is recorded in the kept summary, the report's label for its runs."""
    curves, _ = training_curves(save_path / "logs", save_path / "latest" / "trainer.pth", KEPT_CURVES)
    if curves:
        write_curves(eval_dir / CURVES_FILE, curves)
    kept.mkdir(parents=True, exist_ok=True)
    for name in KEPT_FILES:
        if (eval_dir / name).is_file():
            shutil.copy2(eval_dir / name, kept / name)
    if variant:
        stamp_variant(kept / "summary.json", variant)
    return kept


def stamp_variant(summary: Path, variant: str) -> None:
    """Record an ablation's ``variant`` name in an evaluation's summary (where there is one): the
    report labels the runs by it rather than by a list of the options that differ."""
    if summary.is_file():
        data = json.loads(summary.read_text())
        if data.get("variant") != variant:
            write_atomic(summary, json.dumps({**data, "variant": variant}, indent=2) + "\n")

def repo_relative(path: Path) -> Path:
    """``path`` relative to the repository when inside it (the report shows short paths), else itself."""
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


def ablation_baseline(eval_dirs: list, *first_variant: Path) -> str:
    """The report's label of an ablation's first variant (e.g. ``diveq [residual_mode=stagewise,
    lookup=cosine]``): the other variants are compared with it. "" when it has no evaluated run."""
    from dac_diveq.report.runs import group_runs, load_run

    runs = [load_run(ROOT / d) for d in eval_dirs]
    inside = [(ROOT / p).resolve() for p in first_variant]
    for group in group_runs(runs):
        if any(any(parent in run.eval_dir.resolve().parents for parent in inside) for run in group.runs):
            return group.label
    return ""


#: ``--init`` -> the overrides every method trains with (``package``: each conf's own choice).
INIT_PROTOCOLS = {"package": [], "warmup": ["--DiVeQDAC.skip_iters", "200", "--DiVeQDAC.avg_iters", "50"],
                  "none": ["--DiVeQDAC.skip_iters", "0"],
                  # EnCodec's: codebooks = k-means of the first batch's latents, no warm-up.
                  "kmeans": ["--DiVeQDAC.skip_iters", "0", "--DiVeQDAC.kmeans_init"]}
#: Methods without a learned codebook to initialise (FSQ's grid, SimVQ's frozen basis).
NO_KMEANS = ("fsq", "simvq")
#: The prepared reference sets (data/speech/<name>, see dac_diveq.data.heldout).
EVAL_SETS = ("dev", "test")


class RecipeError(ConfigError):
    """A command-line choice the recipe refuses (one line, exit status 2)."""


def eval_folder(eval_set: str, ablation: bool, size: str = "quickstart") -> str:
    """The reference folder a run is evaluated on: the dev set for an ablation (it decides
    something), whichever set is asked for otherwise (the test set by default); a size may name
    its own folders (``SIZES[size]["eval"]``).

    Raises:
        RecipeError: an ablation asked to read the test set.
    """
    if eval_set not in EVAL_SETS:
        raise RecipeError(f"--eval_set {eval_set}: choose from {', '.join(EVAL_SETS)}")
    if ablation and eval_set == "test":
        raise RecipeError("an ablation chooses something and reads the dev set only; the test set is reported, "
                          "never used for a decision (drop --eval_set test)")
    return SIZES.get(size, {}).get("eval", {}).get(eval_set, f"data/speech/{eval_set}")


PY = sys.executable
# Same budget for every method of a size; the gpu size fits one device command (~8 min on an H100).
SIZES = {
    # Validation every 50 steps: a curve of six points (each costs ~1 % of the run).
    "quickstart": {"conf": "conf/quickstart", "overrides": ["--num_iters", "300", "--valid_freq", "50"]},
    # 2 CPU cores, one thread per run (two runs side by side use the machine best): ~35 min per run.
    "cpu": {"conf": "conf/cpu", "overrides": ["--num_iters", "900", "--valid_freq", "300"], "keep_runs": True},
    # Longer than a sitting (--until trains every run to a milestone; --resume auto goes on next time):
    # the cpu conf over 8000 steps, its learning rate still falling 10x over the run, a milestone
    # checkpoint every 1000 steps, each evaluated and kept as it is reached (the quality-vs-steps curve).
    "long": {"conf": "conf/cpu", "overrides": ["--num_iters", "8000", "--valid_freq", "1000",
                                               "--save_iters", str(list(range(1000, 8001, 1000))),
                                               "--ExponentialLR.gamma", "0.99971222"],  # 0.1 ** (1 / 8000)
             "keep_runs": True, "milestone": 1000},
    # Real corpora: LibriTTS for training (the confs' data), the standard test list for the report. 3000 steps
    # of 32 x 0.38 s excerpts are 10 h of audio: train-clean-100's 54 h (9 GB to download) suffice, where the
    # full recipe's train-clean-360 would add 27 GB (prepared later, it joins the same folder). The dev set
    # of ablations stays the embedded one (data/speech/dev), prepared with the embedded data.
    "gpu": {"conf": "conf", "overrides": ["--num_iters", "3000", "--valid_freq", "1000", "--batch_size", "32",
                                          "--save_iters", "[]", "--num_workers", "8"],
            "eval": {"test": "data/corpora/librispeech/16000/test_list"},
            # Released DAC and EnCodec scored on LibriSpeech test-clean: reference rows beside Opus.
            "published": "dac_diveq/data/corpora/librispeech_test_clean_published.json",
            "prepare": [["--corpus", "libritts", "--download", "--subsets", "train-clean-100", "dev-clean"],
                        ["--corpus", "librispeech", "--download", "--subsets", "test-clean"]]},
}
# Ablations the paper cares about: name -> list of (label, method, extra overrides[, conf]), the conf
# (default: the method's) relative to the size's conf folder.
ABLATIONS = {
    "noise_var": [(f"diveq_var{v}", "diveq", ["--DiVeQDAC.noise_var", v]) for v in ("1e-4", "1e-3", "1e-2")],
    "replacement": [("diveq_noreplace", "diveq", ["--DiVeQDAC.replace_every", "0"]),
                    ("diveq_replace", "diveq", [])],
    "lookup": [("diveq_cosine", "diveq", ["--DiVeQDAC.lookup", "cosine"]),
               ("diveq_euclidean", "diveq", ["--DiVeQDAC.lookup", "euclidean"])],
    "residual_mode": [(f"diveq_{mode}", "diveq", ["--DiVeQDAC.residual_mode", mode])
                      for mode in ("stagewise", "stagewise_hard", "joint")],
    "sf_residual_mode": [(f"sf_diveq_{mode}", "sf_diveq", ["--DiVeQDAC.residual_mode", mode])
                         for mode in ("stagewise", "joint")],
    # Reconstruction objectives (issue: a PESQ-aligned objective): DAC's mel loss alone, then with the
    # multi-scale STFT loss or the compressed spectral loss at the weight that matches mel's gradient
    # (conf/cpu/objective/*.yml say how it was measured). Only the cpu size has these confs.
    # The periods-only discriminator at the reconstruction-only variants' wall-clock: its step costs
    # 9.7x the mel step (median 8.45 s vs 0.87 s, one thread, Intel Xeon with AMX; runs/TRAINING.md of
    # the report), so after the same 200-step warm-up it gets 700 / 9.7 = 72 adversarial steps.
    "objective": [("diveq_mel", "diveq", []),
                  ("diveq_stft", "diveq", [], "objective/diveq_stft"),
                  ("diveq_spectral", "diveq", [], "objective/diveq_spectral"),
                  ("diveq_mpd", "diveq", ["--num_iters", "272", "--ExponentialLR.gamma", "0.991570",
                                          "--save_iters", "[]"], "objective/diveq_mpd")],
    # The quickstart's schedule: the constant 3e-4 it had, then the cpu size's 1e-3 falling 10x without
    # and with DiVeQ's warm-up (the quickstart conf since). Only the quickstart size has these confs.
    "schedule": [("diveq_lr3e-4", "diveq", [], "schedule/diveq_lr3e-4"),
                 ("diveq_lr1e-3", "diveq", [], "schedule/diveq_lr1e-3"),
                 ("diveq_lr1e-3_warmup", "diveq", [])],
}


def milestone_target(size: dict, size_name: str, num_iters: int, until: int | None) -> int:
    """The step every run trains to in this sitting: ``--until`` (a milestone of a size that has
    them) or the whole budget.

    Raises:
        RecipeError: ``--until`` for a size without milestones, or not a milestone of the budget.
    """
    if until is None:
        return num_iters
    every = size.get("milestone")
    if not every:
        raise RecipeError(f"--until: the {size_name} size trains its whole budget in one sitting (use --size long)")
    if until <= 0 or until > num_iters or until % every:
        raise RecipeError(f"--until {until}: choose a milestone, a multiple of {every} up to {num_iters}")
    return until


def milestone_folders(size: dict, target: int) -> list[str]:
    """The kept-evaluation sub-folders of a run up to ``target``: ``step1000``, ``step2000``, ...
    for a size with milestones, else ``""`` (the run's one evaluation)."""
    every = size.get("milestone")
    return [f"step{step}" for step in range(every, target + 1, every)] if every else [""]


def common_milestone(kept_runs: Path, eval_name: str) -> list[str]:
    """The kept evaluations of the largest milestone that every run (variant and seed) has reached:
    the report compares runs at one budget (the curve over steps is its own section)."""
    reached: dict[Path, set[int]] = {}
    for summary in kept_runs.glob(f"*/*/step*/{eval_name}/summary.json"):
        run_folder, step = summary.parents[2], int(summary.parents[1].name[len("step"):])
        reached.setdefault(run_folder, set()).add(step)
    if not reached:
        return []
    step = max(set.intersection(*reached.values()), default=None)
    return [] if step is None else sorted(repo_relative(run / f"step{step}" / eval_name) for run in reached)


def write_steps_notes(report: Path, eval_name: str, notes: Path) -> Path:
    """The report's notes with the quality-vs-steps section (every kept milestone) added; returns
    the notes file to pass to the report."""
    from dac_diveq.report.runs import load_run
    from dac_diveq.report.steps import write_steps

    runs = [load_run(p.parent) for p in sorted((report / "runs").glob(f"*/*/step*/{eval_name}/summary.json"))]
    if not runs:
        return notes
    top = max(run.settings()[-1] for run in runs)
    section = write_steps(runs, [m for m in ("stoi", "pesq_wb", "pesq_wb_raw") if m in runs[0].metrics], top,
                          f"{top} quantizers", report)
    text = (notes.read_text().strip() + "\n\n") if notes.is_file() else ""
    combined = report / "runs" / "NOTES.md"
    combined.write_text(text + "# Quality against training steps\n\n" + section + "\n")
    return combined


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quickstart")
    parser.add_argument("--methods", nargs="+", default=["ste", "rotation", "diveq", "sf_diveq"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--ablation", choices=sorted(ABLATIONS), help="run an ablation instead of --methods")
    parser.add_argument("--variants", nargs="+", help="with --ablation: train/evaluate only these of its variants")
    parser.add_argument("--root", type=Path, help="runs folder (default runs/compare/<size>[-<ablation>])")
    parser.add_argument("--report", type=Path, help="report folder (default reports/speech_compare_<size>...)")
    parser.add_argument("--eval_set", choices=EVAL_SETS, default=None,
                        help="reference set: test (default for method comparisons) or dev (ablations: always)")
    parser.add_argument("--init", choices=sorted(INIT_PROTOCOLS), default="package",
                        help="warm-up and codebook initialisation: each conf's own (package), the same warm-up "
                             "for every method (warmup), none for any (none), or k-means of the first batch "
                             "for every method with a learned codebook (kmeans)")
    parser.add_argument("--opus_kbps", nargs="*", default=["6", "8", "12"])
    parser.add_argument("--ladder", nargs="*", type=int, default=None,
                        help="numbers of quantizers to evaluate (default: all, 1..N)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="trainings side by side, the threads shared among them (cpu size: 2 on 2 cores)")
    parser.add_argument("--until", type=int, default=None,
                        help="long size: train every run up to this milestone step in this sitting (default: the "
                             "whole budget), evaluating each milestone reached; the next sitting goes on")
    parser.add_argument("--force", action="store_true", help="overwrite an existing report")
    parser.add_argument("--no_headline", action="store_true",
                        help="do not print the headline table at the end (make quickstart prints it last itself)")
    args = parser.parse_args(argv)

    size = SIZES[args.size]
    num_iters = int(size["overrides"][size["overrides"].index("--num_iters") + 1])
    try:
        eval_audio = eval_folder(args.eval_set or ("dev" if args.ablation else "test"), bool(args.ablation), args.size)
        target = milestone_target(size, args.size, num_iters, args.until)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = args.size + (f"-{args.ablation}" if args.ablation else "") + (
        f"-init_{args.init}" if args.init != "package" else "")
    # The same trainings evaluated on the dev set (a decision) sit beside their test evaluation.
    on_dev = eval_audio.endswith("/dev") and not args.ablation
    eval_name = "eval_dev" if on_dev else "eval"
    root = args.root or Path("runs/compare") / name
    report = args.report or Path("reports") / f"speech_compare_{name.replace('-', '_')}{'_dev' if on_dev else ''}"
    if (ROOT / report).exists() and not args.force:
        print(f"error: {report} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    if args.ablation:
        variants = ABLATIONS[args.ablation]
        labels = [variant[0] for variant in variants]
        unknown = [v for v in args.variants or () if v not in labels]
        if unknown:
            print(f"error: unknown variants {unknown} of {args.ablation}; choose from {labels}", file=sys.stderr)
            return 2
        if args.variants:
            # The first variant stays the baseline of the report (its kept runs are reported).
            variants = [v for v in variants if v[0] in args.variants]
    else:
        unknown = [m for m in args.methods if m not in METHOD_CONF]
        if unknown:
            print(f"error: unknown methods {unknown}; choose from {sorted(METHOD_CONF)}", file=sys.stderr)
            return 2
        refused = [m for m in args.methods if m in NO_KMEANS] if args.init == "kmeans" else []
        if refused:
            print(f"error: --init kmeans initialises learned codebooks; {refused} have none", file=sys.stderr)
            return 2
        variants = [(m, m, [], METHOD_CONF[m]) for m in args.methods]

    confs = [f"{size['conf']}/{own_conf[0] if own_conf else METHOD_CONF[method]}.yml"
             for _, method, _, *own_conf in variants]
    for (label, *_), conf in zip(variants, confs):
        if not (ROOT / conf).is_file():
            print(f"error: {label} needs {conf}, which the {args.size} size does not have", file=sys.stderr)
            return 2

    log: list[str] = []
    tic = time.time()
    for prepare in size.get("prepare", []):
        run([PY, "scripts/prepare_data.py", *prepare], log)
    if not size.get("prepare") or eval_audio.startswith("data/speech/"):
        run([PY, "scripts/prepare_data.py", "--root", "data"], log)
    runs, trainings = [], []
    for (label, method, extra, *_), conf in zip(variants, confs):
        for seed in args.seeds:
            save_path = root / label / f"seed{seed}"
            kept = [ROOT / report / "runs" / label / f"seed{seed}" / step_folder / eval_name
                    for step_folder in milestone_folders(size, target)]
            if size.get("keep_runs") and all((k / "summary.json").exists() for k in kept):
                # Checkpoints are not kept: a fresh machine would otherwise train it again.
                print(f"skip {label} seed {seed}: its evaluation is kept in {repo_relative(kept[-1])}", flush=True)
                continue
            runs.append((label, seed, save_path))
            if finished(ROOT / save_path, target):
                print(f"skip training {save_path}: finished" + (f" to step {target}" if target < num_iters else ""),
                      flush=True)
            else:
                stop = ["--stop_at", target] if target < num_iters else []
                trainings.append(([PY, "scripts/train.py", "--args.load", conf, "--save_path", save_path,
                                   "--seed", seed, "--resume", "auto", *size["overrides"],
                                   *INIT_PROTOCOLS[args.init], *extra, *stop], save_path))
    run_side_by_side(trainings, log, args.jobs)
    eval_dirs, reference = [], None
    for label, seed, save_path in runs:
        for step_folder in milestone_folders(size, target):
            # A milestone is evaluated from its own checkpoint; otherwise the run folder's weights.
            weights, eval_dir = ((save_path / step_folder[len("step"):], save_path / f"{eval_name}_{step_folder}")
                                 if step_folder else (save_path, save_path / eval_name))
            kept = ROOT / report / "runs" / label / f"seed{seed}" / step_folder / eval_name
            if (kept / "summary.json").exists():
                continue
            first = not eval_dirs
            if not (ROOT / eval_dir / "summary.json").exists():
                opus = ["--opus_kbps", " ".join(args.opus_kbps)] if first and args.opus_kbps else []
                ladder = ["--ladder", " ".join(map(str, args.ladder))] if args.ladder else []
                run([PY, "scripts/evaluate.py", "--weights_path", weights, "--input", eval_audio,
                     "--output", eval_dir, *ladder, *opus], log)
            eval_dirs.append(eval_dir)
            if first and (ROOT / eval_dir / "opus" / "summary.json").exists():
                reference = eval_dir / "opus"  # the Opus reference rows, scored once
            if size.get("keep_runs"):
                keep_evaluation(ROOT / eval_dir, ROOT / save_path, kept, label if args.ablation else "")
            elif args.ablation:
                stamp_variant(ROOT / eval_dir / "summary.json", label)
    if size.get("keep_runs"):
        if reference is not None:
            keep_evaluation(ROOT / reference, ROOT / reference, ROOT / report / "runs" / "opus" / eval_name)
        # Every run kept so far, from this sitting and earlier ones.
        eval_dirs = sorted(repo_relative(p.parent) for p in (ROOT / report / "runs").glob("*/*/summary.json"))
        eval_dirs += sorted(repo_relative(p.parent) for p in (ROOT / report / "runs").glob("*/*/*/summary.json"))
        eval_dirs, reference = sorted(set(eval_dirs)), None
        if size.get("milestone"):
            eval_dirs += common_milestone(ROOT / report / "runs", eval_name)
    if reference is not None:
        eval_dirs.append(reference)
    commands = write_commands(ROOT / root / "commands.txt",
                              f"# recipes/speech_compare.py {' '.join(argv or sys.argv[1:])}", log)
    report_cmd = [PY, "scripts/report.py", "--runs", *eval_dirs, "--output", report, "--commands", commands,
                  "--title", f"Speech codec comparison ({name})", *([] if args.no_headline else ["--print-headline"])]
    notes = ROOT / report / "runs" / "TRAINING.md"
    if size.get("milestone"):
        notes = write_steps_notes(ROOT / report, eval_name, notes)
    if notes.is_file():
        report_cmd += ["--notes", repo_relative(notes)]
    if size.get("published") and not args.ablation:
        report_cmd += ["--published", size["published"]]
    if args.ablation:
        first = ABLATIONS[args.ablation][0][0]
        baseline = ablation_baseline(eval_dirs, root / first, report / "runs" / first)
        if baseline:
            report_cmd += ["--baselines", baseline]
    if args.force:
        report_cmd.append("--force")
    run(report_cmd, log)
    print(f"report: {report}/README.md ({time.time() - tic:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
