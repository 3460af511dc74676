"""A Markdown report (tables, paired statistics, figures, provenance) from evaluated runs.

:func:`write_report` is what ``scripts/report.py`` runs: it loads the runs' eval folders, checks they
share one :class:`~dac_diveq.report.runs.Domain` (whose tables say what is plotted and which training
curves are shown), writes the figures and ``README.md`` / ``headline.md`` into the output folder.
"""
from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConfigError
from ..training import userfiles
from ..training.checkpoint import atomic_path
from . import labels, markdown, plots
from .runs import DOMAINS, Domain, Group, Run, common_domain, find_run_dirs, group_runs, load_run, read_text
from .published import load_published
from .tensorboard import CURVES_FILE, training_curves

#: Dataset-level metrics read from summary.json (one value per run and setting).
SUMMARY_METRICS = ("fid",)
DEFAULT_BASELINES = ("ste", "rotation")


@dataclass
class ReportOptions:
    """What to report and how.

    Attributes:
        output: report folder (README.md, headline.md, PNGs).
        runs: eval folders (``<save_path>/eval`` with ``per_file.csv`` and ``summary.json``).
        runs_glob: glob patterns of eval folders (``**`` allowed).
        baselines: baseline methods of the paired comparisons (None: ste and rotation, if present).
        title: report title (None: the domain's).
        commands: text file with the commands that produced the runs (embedded verbatim).
        notes: Markdown file about the runs (how they were trained, what a variant means),
            embedded as the section "About these runs".
        alpha: significance level.
        force: write into an existing report folder (replacing the report's own files only).
        published: a file of published figures of released codecs, shown as reference rows
            (:mod:`~dac_diveq.report.published`).
    """

    output: Path
    runs: Sequence[str] = ()
    runs_glob: Sequence[str] = ()
    baselines: Optional[Sequence[str]] = None
    title: Optional[str] = None
    commands: Optional[Path] = None
    notes: Optional[Path] = None
    alpha: float = 0.05
    force: bool = False
    published: Optional[Path] = None

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        self.commands = None if self.commands is None else Path(self.commands)


#: The report's text files in its folder.
TEXT_FILES = ("README.md", "headline.md")
#: The codebook statistics shown as figures (``codebook_<key>.png``).
CODEBOOK_KEYS = ("usage", "perplexity")


def metric_figure(metric: str, domain: Domain) -> str:
    """File name of a metric-vs-rate figure."""
    return f"{metric}_vs_{domain.rate_slug}.png"


def curve_figure(tag: str) -> str:
    """File name of a training-curve figure."""
    return f"curve_{tag.replace('/', '_')}.png"


def report_files() -> set[str]:
    """Every file name a report may write in its folder (any domain): the only files ``--force``
    replaces or removes there (a figure the new report does not draw must not stay behind)."""
    names = set(TEXT_FILES) | {f"codebook_{key}.png" for key in CODEBOOK_KEYS}
    for domain in DOMAINS.values():
        names |= {metric_figure(metric, domain) for metric in domain.plot_metrics}
        names |= {curve_figure(tag) for tag, _, _ in domain.curves}
    return names


def _figures(groups: list[Group], metrics: list[str], out: Path, domain: Domain) -> list[str]:
    """Write the PNGs and return their Markdown section.

    Args:
        groups: method groups.
        metrics: metrics with at least one value.
        out: report folder.
        domain: the runs' domain (plotted metrics, rate axis, curve tags).

    Returns:
        Markdown parts.
    """
    curve_specs = domain.curves
    parts = ["## Figures\n"]
    for metric in [m for m in domain.plot_metrics if m in metrics]:
        path = plots.metric_vs_bitrate(groups, metric, out / metric_figure(metric, domain))
        parts.append(markdown.image(f"{labels.name(metric)} vs {domain.rate_name}", path, out))
    codec = [g for g in groups if not g.is_reference]
    per = f"by {domain.setting_words}" if domain.setting_per_run else "per stage"
    figures = (("Codebook usage (fraction of codes used)", f"Codebook usage {per}"),
               ("Perplexity (codes)", f"Codebook perplexity {per}"))
    for key, (ylabel, title) in zip(CODEBOOK_KEYS, figures):
        path = plots.codebook_stages(codec, key, ylabel, title, out / f"codebook_{key}.png")
        parts.append(markdown.image(title, path, out))
    parts.append("\n### Training curves\n")
    per_tag: dict[str, list] = {tag: [] for tag, _, _ in curve_specs}
    sources, skipped = [], []
    for group in codec:
        for run in group.runs:
            curves, source = training_curves(run.log_dir, run.checkpoint, [t for t, _, _ in curve_specs],
                                             run.eval_dir / CURVES_FILE)
            label, name = _run_names(group, run, domain)
            if source is None:
                skipped.append(f"{name}: no TensorBoard scalars in `{run.log_dir}` and no history in `{run.checkpoint}`")
                continue
            sources.append(f"{name}: {source}")
            for tag, curve in curves.items():
                per_tag[tag].append((label, curve))
    for tag, title, ylabel in curve_specs:
        if per_tag[tag]:
            path = plots.training_curves(per_tag[tag], f"{title} vs step", ylabel,
                                         out / curve_figure(tag))
            parts.append(markdown.image(title, path, out))
    if sources:
        parts.append("Curves read from:\n\n" + "\n".join(f"- {s}" for s in sources) + "\n")
    if skipped:
        parts.append("Runs without training curves (skipped):\n\n" + "\n".join(f"- {s}" for s in skipped) + "\n")
    return parts


def _run_names(group: Group, run: Run, domain: Domain) -> tuple[str, str]:
    """Curve label (one colour each) and display name of a run.

    Args:
        group: the run's group.
        run: the run.
        domain: the runs' domain.

    Returns:
        (label, name): e.g. ("diveq", "diveq (seed 0)"), or for images
        ("diveq @ 8 bits per code", "diveq @ 8 bits per code (seed 0)").
    """
    label = group.label
    if domain.setting_per_run:
        label += " @ " + ", ".join(f"{s} {domain.setting_words}" for s in run.settings())
    return label, f"{label} (seed {run.seed})"


def load_runs(options: ReportOptions) -> list[Run]:
    """The runs ``options`` names, read and checked (form, one domain, what may be pooled).

    Raises:
        ValueError: no run found, a malformed run file, or runs that cannot be reported together.
    """
    dirs = find_run_dirs(options.runs, options.runs_glob)
    if not dirs:
        raise ConfigError("no eval folder (with summary.json) found among --runs / --runs-glob")
    runs = [load_run(d) for d in dirs]
    common_domain(runs)
    group_runs(runs)
    return runs


def build_report(options: ReportOptions, command: str, runs: Optional[list[Run]] = None) -> tuple[str, str]:
    """Load the runs, write the figures into ``options.output`` and return the README text.

    Args:
        options: what to report and how.
        command: the command line that generated the report (quoted in it).
        runs: the runs, when :func:`load_runs` has read them already.

    Returns:
        (the Markdown text, a headline: the table at the top setting (most quantizers, or most
        bits per code) and the verdict summary).

    Raises:
        ValueError: no run found, or runs of different domains (speech and image).
    """
    runs = load_runs(options) if runs is None else runs
    domain = common_domain(runs)
    groups = group_runs(runs)
    codec = [g for g in groups if not g.is_reference]
    present = list(dict.fromkeys(m for g in groups for m in g.metrics()))
    metrics = [m for m in present
               if any(math.isfinite(v) for g in groups for s in g.settings() for v in g.pooled(s, m))]
    empty = [m for m in present if m in domain.always_metrics and m not in metrics]
    table_metrics = [m for m in present if m in metrics or m in empty]
    labels_present = [g.label for g in groups]
    baselines = ([b for b in DEFAULT_BASELINES if b in labels_present] if options.baselines is None
                 else list(options.baselines))
    title = options.title or domain.title
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"# {title}\n",
             f"Generated {now} from {len(runs)} runs; methods: {', '.join(labels_present)}.\n",
             "## How to read this report\n",
             "- Each cell is *mean ± half-width of the 95% t-interval* over all files × seeds pooled "
             "(n = seeds × files, shown per row; a cell with fewer valid values states its own n). "
             "Pooling treats files of different seeds as independent, so the interval ignores "
             "between-seed correlation.\n"
             "- **Bold**: best codec method per column (↑ higher is better, ↓ lower is better). "
             f"Reference codecs (italics) are shown at the table of the nearest {domain.rate_name} and are not ranked.\n"
             "- Comparisons (the design in two sentences): a training run is the unit, each seed "
             "contributing its mean over the files every run scored, and method − baseline is tested over "
             "seeds (paired t-test on shared seeds, Welch's otherwise; one seed each is 'too few seeds to "
             "test'). Each method's primary family, the primary metrics at the top "
             f"{domain.setting_noun} ({', '.join(labels.name(m) for m in markdown.primary_metrics(domain, metrics)) or 'none'}), "
             f"is Holm-corrected on its own at α = {options.alpha:g}, so adding methods changes no verdict; other "
             "metrics and settings are descriptive (uncorrected p, no verdict).\n"]
    if "si_sdr" in metrics:
        parts[-1] += ("- SI-SDR compares waveforms sample by sample. Codecs trained on spectral losses (DAC and "
                      "every method here) do not keep the phase of the input, so strongly negative values "
                      "(-20 to -50 dB) are expected even for intelligible output and say little about quality; "
                      "a waveform codec such as Opus scores above 0 dB. Read PESQ, STOI and ViSQOL instead.\n")
    parts[-1] += "".join(f"- {labels.name(m)}: no value in any run, shown as n/a (see the provenance table for "
                         "why, e.g. which LPIPS weights were available).\n" for m in empty)
    for group in (g for g in groups if g.unshared_options):
        shown = ", ".join(f"`{k}`" for k in group.unshared_options[:4])
        more = f" and {len(group.unshared_options) - 4} more" if len(group.unshared_options) > 4 else ""
        parts[-1] += (f"- The runs of {group.label} were trained by trainer versions that record different options "
                      f"({shown}{more} only in some): they are pooled because every option they all record agrees.\n")
    if options.notes is not None:
        notes = read_text(Path(options.notes)).strip()
        # The notes' own headings sit below this section's.
        parts += ["## About these runs\n", re.sub(r"^(#+) ", r"\1## ", notes, flags=re.M) + "\n"]
    published = load_published(options.published) if options.published is not None else None
    figures = published.figures if published else ()
    parts += [f"## Results per {domain.setting_noun}\n", markdown.results_tables(groups, table_metrics,
                                                                                published=figures)]
    if published:
        parts += ["### Published figures of released codecs\n", markdown.published_sources(figures, published.about)]
    dataset_level = markdown.summary_metric_table(groups, SUMMARY_METRICS)
    if dataset_level:
        parts += ["## Dataset-level metrics\n", "One value per run (from `summary.json`); mean ± 95% t-interval "
                  "over seeds.\n", dataset_level]
    top = max((int(s) for g in codec for s in g.settings()), default=None)
    headline = ([markdown.results_tables(groups, table_metrics, only=[top], published=figures)]
                if top is not None else [])
    if headline and figures:
        headline.append("Published figures: " + markdown.published_sources(figures).replace("\n", " ").strip() + "\n")
    parts.append("## Paired comparisons against baselines\n")
    if not baselines:
        parts.append("No baseline run present (looked for: "
                     f"{', '.join(options.baselines if options.baselines is not None else DEFAULT_BASELINES)}).\n")
    else:
        text, records = markdown.comparisons(groups, baselines, metrics, options.alpha)
        summary = markdown.verdict_summary(records, domain.setting_noun)
        if summary:
            parts.append("Summary (primary comparisons, Holm-adjusted verdicts):\n\n" + summary)
            headline.append("Primary comparisons over seeds, Holm-adjusted verdicts:\n\n" + summary)
        parts.append(text)
    if any(g.is_reference for g in groups):
        parts.append("Reference codecs are not in the paired comparisons (their bitrates differ from the DAC's).\n")
    options.output.mkdir(parents=True, exist_ok=True)
    parts += _figures(groups, metrics, options.output, domain)
    parts += ["## Provenance\n", markdown.provenance(groups)]
    if codec:
        parts.append("\nCodebook summary: " + "; ".join(_codebook_summary(codec, domain)) + ".\n")
    parts.append("\n### Commands that produced the runs\n")
    if options.commands is not None:
        parts.append(markdown.code_block(read_text(Path(options.commands))))
    else:
        parts.append("Not given (pass `--commands FILE`).\n")
    parts.append("\n### This report\n")
    parts.append(markdown.code_block(command))
    parts.append(f"Generated {now}.\n")
    return "\n".join(parts), "\n".join(headline)


def _mean(runs: Sequence[Run], key: str) -> float:
    """Mean of a numeric ``summary["codebook"][key]`` over runs (NaN when none has it)."""
    values = [float((r.summary.get("codebook") or {}).get(key)) for r in runs
              if isinstance((r.summary.get("codebook") or {}).get(key), (int, float))]
    return sum(values) / len(values) if values else math.nan


def _codebook_summary(codec: Sequence[Group], domain: Domain) -> list[str]:
    """Mean codebook usage and perplexity per method (per method and bits per code for images).

    Args:
        codec: the non-reference groups.
        domain: the runs' domain.

    Returns:
        One phrase per method (and setting).
    """
    subsets = [(g.label, g.runs) for g in codec] if not domain.setting_per_run else [
        (f"{g.label} @ {s} {domain.setting_words}", g.runs_at(s)) for g in codec for s in g.settings()]
    return [f"{label} mean usage {markdown.fmt(_mean(runs, 'mean_usage'))}, mean perplexity "
            f"{markdown.fmt(_mean(runs, 'mean_perplexity'), 1)}" for label, runs in subsets]


def write_report(options: ReportOptions, command: str) -> tuple[Path, str]:
    """Build the report into ``options.output``.

    Args:
        options: what to report and how.
        command: the command line that generated the report (quoted in it).

    Returns:
        ``(README.md path, headline text)``; the headline is also written to ``headline.md``.

    Raises:
        FileExistsError: the output folder holds files and ``force`` is off.
        FileNotFoundError: ``commands`` is not a file.
        ValueError: no run found, or runs of different domains.
    """
    out = Path(options.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not options.force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it")
    for flag, path in (("--commands", options.commands), ("--notes", options.notes)):
        if path is not None:
            try:
                userfiles.check_file(path)
            except (FileNotFoundError, userfiles.PathKindError) as exc:
                raise ConfigError(f"{flag} {exc}") from None
    runs = load_runs(options)  # before anything is removed: a bad run file leaves the old report whole
    if out.is_dir():  # the report's own files only: a user's other files (PNGs too) stay
        for name in sorted(report_files()):
            if (out / name).is_file() or (out / name).is_symlink():
                (out / name).unlink()
    text, headline = build_report(options, command, runs)
    for name, content in (("README.md", text), ("headline.md", headline + "\n")):
        with atomic_path(out / name) as tmp:  # a full disk leaves no truncated README
            tmp.write_text(content)
    return out / "README.md", headline
