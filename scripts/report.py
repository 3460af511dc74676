"""Write a Markdown report (tables, paired statistics, figures, provenance) from evaluated runs.

    python scripts/report.py --runs runs/ste/eval runs/diveq/eval --output reports/speech16k \
        --commands reports/speech16k.commands.txt
    python scripts/report.py --runs-glob 'runs/*/eval' --output reports/all --force
"""
from __future__ import annotations

import argparse
import datetime
import math
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from dac_diveq.report import labels, markdown, plots
from dac_diveq.report.runs import Group, find_run_dirs, group_runs, load_run
from dac_diveq.report.tensorboard import training_curves

PLOT_METRICS = ("pesq_wb", "stoi", "visqol", "mel_distance")
CURVES = (("val/mel/loss", "Validation mel loss", "Mel loss (L1 of log-mel)"),
          ("val/pesq_wb", "Validation PESQ-WB", "PESQ-WB (MOS-LQO)"),
          ("train/mel/loss", "Training mel loss", "Mel loss (L1 of log-mel)"))
DEFAULT_BASELINES = ("ste", "rotation")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Command-line options.

    Args:
        argv: arguments (None: ``sys.argv[1:]``).

    Returns:
        The parsed namespace.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=[], metavar="EVAL_DIR",
                        help="eval folders (<save_path>/eval with per_file.csv and summary.json)")
    parser.add_argument("--runs-glob", nargs="+", default=[], metavar="PATTERN",
                        help="glob patterns of eval folders (quote them; ** allowed)")
    parser.add_argument("--output", type=Path, required=True, help="report folder (README.md + PNGs)")
    parser.add_argument("--baselines", nargs="*", default=None,
                        help="baseline methods for the paired comparisons (default: ste and rotation, if present)")
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--commands", type=Path, default=None,
                        help="text file with the exact commands that produced the runs (embedded verbatim)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing report folder")
    parser.add_argument("--print-headline", action="store_true",
                        help="also print the headline (top-bitrate table, verdict summary; always written "
                             "to headline.md) to stdout")
    return parser.parse_args(argv)


def _figures(groups: list[Group], metrics: list[str], out: Path) -> list[str]:
    parts = ["## Figures\n"]
    for metric in [m for m in PLOT_METRICS if m in metrics]:
        path = plots.metric_vs_bitrate(groups, metric, out / f"{metric}_vs_bitrate.png")
        parts.append(markdown.image(f"{labels.name(metric)} vs bitrate", path, out))
    codec = [g for g in groups if not g.is_reference]
    for key, ylabel, title in (("usage", "Codebook usage (fraction of codes used)", "Codebook usage per stage"),
                               ("perplexity", "Perplexity (codes)", "Codebook perplexity per stage")):
        path = plots.codebook_stages(codec, key, ylabel, title, out / f"codebook_{key}.png")
        parts.append(markdown.image(title, path, out))
    parts.append("\n### Training curves\n")
    per_tag: dict[str, list] = {tag: [] for tag, _, _ in CURVES}
    sources, skipped = [], []
    for group in codec:
        for run in group.runs:
            curves, source = training_curves(run.log_dir, run.checkpoint, [t for t, _, _ in CURVES])
            name = f"{group.label} (seed {run.seed})"
            if source is None:
                skipped.append(f"{name}: no TensorBoard scalars in `{run.log_dir}` and no history in `{run.checkpoint}`")
                continue
            sources.append(f"{name}: {source}")
            for tag, curve in curves.items():
                per_tag[tag].append((group.label, curve))
    for tag, title, ylabel in CURVES:
        if per_tag[tag]:
            path = plots.training_curves(per_tag[tag], f"{title} vs step", ylabel,
                                         out / f"curve_{tag.replace('/', '_')}.png")
            parts.append(markdown.image(title, path, out))
    if sources:
        parts.append("Curves read from:\n\n" + "\n".join(f"- {s}" for s in sources) + "\n")
    if skipped:
        parts.append("Runs without training curves (skipped):\n\n" + "\n".join(f"- {s}" for s in skipped) + "\n")
    return parts


def build_report(args: argparse.Namespace, argv: Sequence[str]) -> tuple[str, str]:
    """Load the runs, write the figures into ``args.output`` and return the README text.

    Args:
        args: parsed options.
        argv: the arguments, for the generation command.

    Returns:
        (the Markdown text, a headline: the table at the highest bitrate and the verdict summary).

    Raises:
        ValueError: no run found.
    """
    dirs = find_run_dirs(args.runs, args.runs_glob)
    if not dirs:
        raise ValueError("no eval folder (with summary.json) found among --runs / --runs-glob")
    groups = group_runs(load_run(d) for d in dirs)
    codec = [g for g in groups if not g.is_reference]
    metrics = [m for m in dict.fromkeys(m for g in groups for m in g.metrics())
               if any(math.isfinite(v) for g in groups for s in g.settings() for v in g.pooled(s, m))]
    labels_present = [g.label for g in groups]
    baselines = ([b for b in DEFAULT_BASELINES if b in labels_present] if args.baselines is None
                 else list(args.baselines))
    title = args.title or "DAC quantizer evaluation"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"# {title}\n",
             f"Generated {now} from {len(dirs)} runs; methods: {', '.join(labels_present)}.\n",
             "## How to read this report\n",
             "- Each cell is *mean ± half-width of the 95% t-interval* over all files × seeds pooled "
             "(n = seeds × files, shown per row; a cell with fewer valid values states its own n). "
             "Pooling treats files of different seeds as independent, so the interval ignores "
             "between-seed correlation.\n"
             "- **Bold**: best codec method per column (↑ higher is better, ↓ lower is better). "
             "Reference codecs (italics) are shown at the table of the nearest bitrate and are not ranked.\n"
             f"- Paired comparisons: method − baseline on the same files; seed-matched pairs (seed, file) when "
             f"both have runs with the same seed, otherwise per-file means over seeds. p-values: two-sided paired "
             f"t-test and Wilcoxon signed-rank test (scipy). **Holm correction** is applied to the t-test p-values "
             f"within each comparison table (one baseline × one bitrate, all methods × metrics); the verdict uses "
             f"the Holm-adjusted t-test p at α = {args.alpha:g}. Fewer than 2 pairs: \"too few pairs\". "
             "The exact Wilcoxon p cannot go below 2/2^n (0.031 for n = 6), so with few pairs it may stay "
             "above α while the t-test does not.\n"]
    parts += ["## Results per bitrate\n", markdown.results_tables(groups, metrics)]
    top = max((int(s) for g in codec for s in g.settings()), default=None)
    headline = [markdown.results_tables(groups, metrics, only=[top])] if top is not None else []
    parts.append("## Paired comparisons against baselines\n")
    if not baselines:
        parts.append("No baseline run present (looked for: "
                     f"{', '.join(args.baselines if args.baselines is not None else DEFAULT_BASELINES)}).\n")
    else:
        text, records = markdown.comparisons(groups, baselines, metrics, args.alpha)
        summary = markdown.verdict_summary(records)
        if summary:
            parts.append("Summary (Holm-adjusted verdicts):\n\n" + summary)
            headline.append("Paired comparisons, Holm-adjusted verdicts:\n\n" + summary)
        parts.append(text)
    if any(g.is_reference for g in groups):
        parts.append("Reference codecs are not in the paired comparisons (their bitrates differ from the DAC's).\n")
    args.output.mkdir(parents=True, exist_ok=True)
    parts += _figures(groups, metrics, args.output)
    parts += ["## Provenance\n", markdown.provenance(groups)]
    if codec:
        parts.append("\nCodebook summary: " + "; ".join(
            f"{g.label} mean usage {markdown.fmt(_mean(g, 'mean_usage'))}, mean perplexity "
            f"{markdown.fmt(_mean(g, 'mean_perplexity'), 1)}" for g in codec) + ".\n")
    parts.append("\n### Commands that produced the runs\n")
    if args.commands is not None:
        parts.append(markdown.code_block(args.commands.read_text()))
    else:
        parts.append("Not given (pass `--commands FILE`).\n")
    parts.append("\n### This report\n")
    parts.append(markdown.code_block(shlex.join([sys.executable, "scripts/report.py", *argv])))
    parts.append(f"Generated {now}.\n")
    return "\n".join(parts), "\n".join(headline)


def _mean(group: Group, key: str) -> float:
    values = [float(r.summary.get("codebook", {}).get(key)) for r in group.runs
              if isinstance(r.summary.get("codebook", {}).get(key), (int, float))]
    return sum(values) / len(values) if values else math.nan


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point.

    Args:
        argv: arguments (None: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on a usage error (existing report without --force, no runs, bad --commands).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    out: Path = args.output
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        print(f"error: {out} already exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    if args.commands is not None and not args.commands.is_file():
        print(f"error: --commands {args.commands}: no such file", file=sys.stderr)
        return 2
    if out.is_dir():
        for stale in [out / "README.md", out / "headline.md", *out.glob("*.png")]:
            stale.unlink(missing_ok=True)
    try:
        text, headline = build_report(args, argv)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    (out / "README.md").write_text(text)
    (out / "headline.md").write_text(headline + "\n")
    if args.print_headline:
        print(headline)
    print(f"wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
