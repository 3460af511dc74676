"""Load evaluated runs (``<save_path>/eval/{per_file.csv,summary.json}``) without pandas.

A *group* is every run of one method variant (typically several seeds). Runs belong to a
:class:`Domain`:

- speech (DAC): columns ``n_quantizers, bitrate_kbps``; a *setting* is a number of quantizers
  for codec runs, or a bitrate in kbps for reference codecs (Opus), whose rows all have
  ``n_quantizers == 0``; the *rate* is the bitrate in kbps.
- image (VQ-VAE): columns ``bits, bpp``; a *setting* is the bits per code index (log2 of the
  codebook size); the *rate* is bits per pixel.
"""
from __future__ import annotations

import contextlib
import csv
import glob
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..training import userfiles

#: Metric columns in display order (speech, then image).
METRICS = ("pesq_wb", "pesq_wb_raw", "pesq_nb", "pesq_nb_raw", "stoi", "estoi", "visqol", "si_sdr", "mel_distance",
           "stft_distance", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "psnr", "ssim", "lpips", "fid")
#: Metrics where a lower value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"mel_distance", "stft_distance", "lpips", "fid"})
#: Methods that are reference codecs rather than quantizers of the DAC model.
REFERENCE_METHODS = frozenset({"opus"})


@dataclass(frozen=True)
class Domain:
    """What a setting and a rate are for one kind of run, and the words the report uses.

    Attributes:
        name: ``summary["domain"]`` value, e.g. "speech".
        setting_column: CSV column of the setting (an integer).
        rate_column: CSV column of the rate.
        setting_words: plural noun after the setting number in headings, e.g. "quantizers".
        rate_unit: unit of the rate, e.g. "kbps".
        rate_name: the rate in words, for titles and axes, e.g. "bitrate".
        rate_slug: the rate in figure file names, e.g. "bitrate".
        rate_digits: decimals of the rate in headings.
        setting_noun: what one table / comparison is per, in running text, e.g. "bitrate".
        title: default report title.
        always_metrics: metrics shown (as n/a) even when their column is entirely empty.
        provenance: extra (summary key, column title) pairs of the provenance table.
        setting_per_run: each run has one setting (image: one codebook size per model), so
            codebook statistics and training curves are shown per (method, setting).
        plot_metrics: metrics plotted against the rate.
        curves: ``(TensorBoard tag, title, axis label)`` of the training curves shown.
    """

    name: str
    setting_column: str
    rate_column: str
    setting_words: str
    rate_unit: str
    rate_name: str
    rate_slug: str
    rate_digits: int
    setting_noun: str
    title: str
    always_metrics: tuple[str, ...] = ()
    provenance: tuple[tuple[str, str], ...] = ()
    setting_per_run: bool = False
    plot_metrics: tuple[str, ...] = ()
    curves: tuple[tuple[str, str, str], ...] = ()


SPEECH = Domain("speech", "n_quantizers", "bitrate_kbps", "quantizers", "kbps", "bitrate", "bitrate", 2,
                "bitrate", "DAC quantizer evaluation", provenance=(("visqol_mapping", "ViSQOL mapping"),),
                plot_metrics=("pesq_wb", "stoi", "visqol", "mel_distance"),
                curves=(("val/mel/loss", "Validation mel loss", "Mel loss (L1 of log-mel)"),
                        ("val/pesq_wb", "Validation PESQ-WB", "PESQ-WB (MOS-LQO)"),
                        ("train/mel/loss", "Training mel loss", "Mel loss (L1 of log-mel)")))
IMAGE = Domain("image", "bits", "bpp", "bits per code", "bpp", "bits per pixel", "bpp", 4,
               "bits-per-code setting", "Image VQ-VAE quantizer evaluation", always_metrics=("lpips",),
               provenance=(("codebook_size", "codebook size"), ("lpips_weights", "LPIPS weights"),
                           ("inception_weights", "Inception weights (FID)")),
               setting_per_run=True, plot_metrics=("psnr", "ssim", "lpips"),
               curves=(("val/psnr", "Validation PSNR", "PSNR (dB)"),
                       ("val/rec/mse", "Validation reconstruction MSE", "MSE (pixels in [-1, 1])"),
                       ("val/codebook/usage", "Validation codebook usage", "Fraction of codes used"),
                       ("train/loss", "Training loss", "Loss (weighted sum of terms)")))
#: summary["domain"] -> Domain.
DOMAINS = {d.name: d for d in (SPEECH, IMAGE)}


class RunFileError(DataError):
    """A run's file (``summary.json``, ``per_file.csv``, ``curves.json``, a trainer history) that
    is not what an evaluation writes: one line naming it."""


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Parse ``path`` in the block: what a malformed file raises there (a JSON or CSV error, a
    number that is not one, a list where a mapping belongs) becomes one :class:`RunFileError`
    naming the file.

    Only the parsing of one file runs in such a block, so an error there is the file's.
    """
    try:
        yield
    except RunFileError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, csv.Error) as exc:
        # UnicodeDecodeError and json.JSONDecodeError are ValueErrors.
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise RunFileError(f"{path}: malformed ({reason})") from None


def read_text(path: Path) -> str:
    """A run's text file, checked to be a regular file first (a named pipe would block).

    Raises:
        FileNotFoundError, userfiles.PathKindError: missing, or not a regular file (one line).
        RunFileError: not UTF-8 text.
    """
    userfiles.check_file(path)
    with reading(path):
        return path.read_text()


#: Types of the ``summary.json`` fields a report reads (each may be absent).
SUMMARY_FIELDS: dict[str, tuple[type, ...]] = {
    "domain": (str,), "method": (str,), "seed": (int, type(None)), "step": (int, type(None)), "files": (list,),
    "failed": (list,), "by_bitrate": (dict,), "by_setting": (dict,),
    # A reference codec (Opus) has no codebook and no training: null.
    "codebook": (dict, type(None)), "training": (list, type(None)),
    "training_config": (dict, type(None)), "weights": (str, type(None)), "residual_mode": (str, type(None)),
    "lookup": (str, type(None)),
    # An ablation's name for the variant the run belongs to (``diveq_stft``), set by the recipe.
    "variant": (str, type(None)),
}


def check_summary(summary: Any, path: Path) -> dict[str, Any]:
    """``summary`` (a parsed ``summary.json``), checked to have the form the report reads.

    Raises:
        RunFileError: the first field of another type (one line naming the file).
    """
    if not isinstance(summary, dict):
        raise RunFileError(f"{path}: malformed (a {type(summary).__name__}, not a mapping)")
    for key, kinds in SUMMARY_FIELDS.items():
        if key in summary and (not isinstance(summary[key], kinds) or isinstance(summary[key], bool)):
            raise RunFileError(f"{path}: malformed ({key} is of type {type(summary[key]).__name__}, expected "
                               f"{' or '.join(kind.__name__ for kind in kinds)})")
    for key in ("by_bitrate", "by_setting"):
        if not all(isinstance(v, dict) for v in (summary.get(key) or {}).values()):
            raise RunFileError(f"{path}: malformed ({key} holds a value that is not a mapping)")
    stages = (summary.get("codebook") or {}).get("stages", [])
    if not (isinstance(stages, list) and all(isinstance(stage, dict) for stage in stages)):
        raise RunFileError(f"{path}: malformed (codebook stages are not a list of mappings)")
    return summary


def detect_domain(summary: dict[str, Any], columns: Sequence[str]) -> Domain:
    """The domain of a run: ``summary["domain"]``, else guessed from the CSV header.

    Args:
        summary: the parsed ``summary.json``.
        columns: the ``per_file.csv`` header.

    Returns:
        IMAGE when the summary says so, or (no "domain" key) when the header has ``bits`` but
        no ``n_quantizers``; SPEECH otherwise.

    Raises:
        ValueError: an unknown ``summary["domain"]``.
    """
    name = summary.get("domain")
    if name is None:
        image = IMAGE.setting_column in columns and SPEECH.setting_column not in columns
        return IMAGE if image else SPEECH
    if str(name) not in DOMAINS:
        raise DataError(f"unknown domain {name!r} in summary.json; expected one of {sorted(DOMAINS)}")
    return DOMAINS[str(name)]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better.

    Args:
        metric: a column name of ``per_file.csv``.

    Returns:
        False for distances, True otherwise.
    """
    return metric not in LOWER_IS_BETTER


def _number(text: Optional[str]) -> float:
    if text is None or text.strip() == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclass
class Run:
    """One evaluated run.

    Attributes:
        eval_dir: the folder holding ``per_file.csv`` and ``summary.json``.
        summary: the parsed ``summary.json``.
        rows: one dict per CSV row: ``file`` (str), the domain's setting column (int), its
            rate column and every metric (float, NaN where empty).
        metrics: the metric columns present in the CSV, in display order.
        domain: speech or image.
    """

    eval_dir: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    metrics: list[str]
    domain: Domain = SPEECH

    @property
    def method(self) -> str:
        """The quantization method (or reference codec) name."""
        return str(self.summary.get("method", "unknown"))

    @property
    def seed(self) -> Optional[int]:
        """The training seed, or None when unknown."""
        seed = self.summary.get("seed")
        return None if seed is None else int(seed)

    @property
    def is_reference(self) -> bool:
        """True for a reference codec (its settings are bitrates)."""
        return self.method.lower() in REFERENCE_METHODS

    @property
    def save_path(self) -> Path:
        """The training folder (parent of the eval folder)."""
        return self.eval_dir.parent

    @property
    def log_dir(self) -> Path:
        """The TensorBoard log folder of the training run."""
        return self.save_path / "logs"

    @property
    def checkpoint(self) -> Path:
        """The latest trainer state of the training run."""
        return self.save_path / "latest" / "trainer.pth"

    def setting(self, row: dict[str, Any]) -> float:
        """The setting a row belongs to.

        Args:
            row: one of ``self.rows``.

        Returns:
            The rate (rounded to 1e-3) for a reference codec, else the setting column
            (n_quantizers or bits).
        """
        if self.is_reference:
            return round(float(row[self.domain.rate_column]), 3)
        return int(row[self.domain.setting_column])

    def settings(self) -> list[float]:
        """Sorted distinct settings of the run."""
        return sorted({self.setting(r) for r in self.rows})

    def values(self, setting: float, metric: str) -> dict[str, float]:
        """Per-file values of one metric at one setting.

        Args:
            setting: n_quantizers or bits (codec), or bitrate (reference).
            metric: a metric column.

        Returns:
            file -> value (NaN where the metric failed or is absent).
        """
        return {r["file"]: float(r.get(metric, math.nan)) for r in self.rows if self.setting(r) == setting}

    def bitrate(self, setting: float) -> float:
        """Mean rate (kbps or bpp, see ``domain``) of the rows at ``setting``."""
        rates = [r[self.domain.rate_column] for r in self.rows if self.setting(r) == setting]
        return float(np.nanmean(rates)) if rates else math.nan


def load_run(eval_dir: Path | str) -> Run:
    """Read one eval folder.

    Args:
        eval_dir: folder with ``per_file.csv`` and ``summary.json``.

    Returns:
        The Run.

    Raises:
        FileNotFoundError: a file is missing.
        userfiles.PathKindError: a file is a named pipe or other non-file.
        RunFileError: a file is not what an evaluation writes (one line naming it).
        ValueError: the CSV lacks a required column of its domain, or the domain is unknown.
    """
    eval_dir = Path(eval_dir)
    summary_path, table = eval_dir / "summary.json", eval_dir / "per_file.csv"
    text = read_text(summary_path)
    with reading(summary_path):
        summary = check_summary(json.loads(text), summary_path)
    userfiles.check_file(table)
    with open(table, newline="") as handle, reading(table):
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        domain = detect_domain(summary, columns)
        setting, rate = domain.setting_column, domain.rate_column
        missing = {"file", setting, rate} - set(columns)
        if missing:
            raise RunFileError(f"{eval_dir / 'per_file.csv'}: missing columns {sorted(missing)} "
                             f"({domain.name} run)")
        metrics = [m for m in METRICS if m in columns]
        rows = []
        for raw in reader:
            if None in raw.values() or None in raw:  # a short or a long row
                cells = sum(v is not None for k, v in raw.items() if k is not None) + len(raw.get(None) or [])
                raise RunFileError(f"{table}: malformed (line {reader.line_num} has {cells} cells for "
                                   f"{len(columns)} columns)")
            row: dict[str, Any] = {"file": raw["file"], setting: int(float(raw[setting])),
                                   rate: _number(raw[rate])}
            row.update({m: _number(raw.get(m)) for m in metrics})
            rows.append(row)
    return Run(eval_dir, summary, rows, metrics, domain)


def common_domain(runs: Iterable[Run]) -> Domain:
    """The one domain shared by all runs.

    Args:
        runs: loaded runs.

    Returns:
        Their domain (SPEECH when there are none).

    Raises:
        ValueError: the runs mix domains (one line naming an example run of each).
    """
    examples: dict[str, Run] = {}
    counts: dict[str, int] = {}
    for run in runs:
        examples.setdefault(run.domain.name, run)
        counts[run.domain.name] = counts.get(run.domain.name, 0) + 1
    if len(examples) > 1:
        parts = [f"{name} ({counts[name]} runs, e.g. {run.eval_dir})" for name, run in examples.items()]
        raise ConfigError("runs mix domains: " + " and ".join(parts) + "; report them separately")
    return next(iter(examples.values())).domain if examples else SPEECH


def find_run_dirs(paths: Sequence[str] = (), patterns: Sequence[str] = ()) -> list[Path]:
    """Eval folders from explicit paths and glob patterns (a matched file stands for its folder).

    Args:
        paths: eval folders.
        patterns: glob patterns (``**`` allowed) matching eval folders or their files.

    Returns:
        Distinct folders holding a ``summary.json``, in first-seen order.
    """
    found: list[Path] = []
    candidates = [Path(p) for p in paths]
    for pattern in patterns:
        candidates += [Path(p) for p in sorted(glob.glob(pattern, recursive=True))]
    for path in candidates:
        folder = path.parent if path.is_file() else path
        if (folder / "summary.json").exists() and folder.resolve() not in [f.resolve() for f in found]:
            found.append(folder)
    return found


@dataclass
class Group:
    """All runs of one method variant.

    Attributes:
        label: display name (the method, plus residual mode / lookup when those vary).
        method: the method name.
        runs: the runs, one per seed usually.
    """

    label: str
    method: str
    runs: list[Run] = field(default_factory=list)
    #: Options that only some runs' trainers recorded (set by :func:`check_poolable`).
    unshared_options: list[str] = field(default_factory=list)

    @property
    def is_reference(self) -> bool:
        """True for a reference codec."""
        return bool(self.runs) and self.runs[0].is_reference

    @property
    def domain(self) -> Domain:
        """The runs' domain (see :func:`common_domain`)."""
        return common_domain(self.runs)

    def settings(self) -> list[float]:
        """Sorted union of the runs' settings."""
        return sorted({s for run in self.runs for s in run.settings()})

    def metrics(self) -> list[str]:
        """Metrics present in any run, in display order."""
        present = {m for run in self.runs for m in run.metrics}
        return [m for m in METRICS if m in present]

    def runs_at(self, setting: Optional[float] = None) -> list[Run]:
        """The runs that have ``setting`` (all runs when None).

        An image group has one run per (bits, seed), so only some of its runs have a setting.

        Args:
            setting: a setting, or None.

        Returns:
            The runs, in order.
        """
        return [run for run in self.runs if setting is None or setting in run.settings()]

    def seed_keys(self, setting: Optional[float] = None) -> list[tuple[Any, Run]]:
        """(key, run) pairs: the seed, or a unique placeholder for a run without one.

        Args:
            setting: only the runs that have this setting (default: all runs).

        Returns:
            The pairs, in run order.
        """
        keys, seen = [], set()
        for i, run in enumerate(self.runs_at(setting)):
            key: Any = run.seed if run.seed is not None else f"run{i}"
            if key in seen:
                key = f"{key}#{i}"
            seen.add(key)
            keys.append((key, run))
        return keys

    def table(self, setting: float, metric: str) -> dict[Any, dict[str, float]]:
        """seed key -> file -> value at ``setting``."""
        return {key: run.values(setting, metric) for key, run in self.seed_keys(setting)}

    def pooled(self, setting: float, metric: str) -> list[float]:
        """Values over files x seeds at ``setting`` (NaNs included)."""
        return [v for per_file in self.table(setting, metric).values() for v in per_file.values()]

    def bitrate(self, setting: float) -> float:
        """Mean rate (kbps or bpp) at ``setting`` over the runs."""
        rates = [run.bitrate(setting) for run in self.runs if setting in run.settings()]
        return float(np.nanmean(rates)) if rates else math.nan


def _option_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _setting_key(run: Run) -> Any:
    """The setting a run was trained for where a run has one (image: bits per code), else None.

    Options that set it (an image run's codebook size, FSQ levels) differ between such runs by
    design: runs are compared option by option only with runs at the same setting."""
    return tuple(run.settings()) if run.domain.setting_per_run and not run.is_reference else None


def _differing_options(runs: list[Run], configs: list[dict[str, Any]], keys: Iterable[str]) -> list[str]:
    """The keys whose values differ between runs at the same setting (:func:`_setting_key`)."""
    buckets: dict[Any, list[dict[str, Any]]] = {}
    for run, config in zip(runs, configs):
        buckets.setdefault(_setting_key(run), []).append(config)
    return sorted(k for k in keys if any(len({_option_text(c[k]) for c in bucket}) > 1
                                         for bucket in buckets.values()))


def _option_labels(runs: list[Run]) -> dict[int, str]:
    """``key=value`` for the training options (recorded by every run) in which runs of one method
    differ, e.g. ``DiVeQDAC.noise_var=0.0001``, a dict option by its differing entries
    (``lambdas.stft/loss=2.5``, ``-`` where a run has no such entry); keyed by ``id(run)``. Residual
    mode and lookup are labelled by :func:`group_runs` already; options that differ only with the
    setting a run was trained for (an image run's codebook size) are that setting, not a variant."""
    configs = [run.summary.get("training_config") for run in runs]
    if len(runs) < 2 or not all(isinstance(c, dict) for c in configs):
        return {}
    text = _option_text
    shared = set.intersection(*(set(c) for c in configs))
    varying = [k for k in _differing_options(runs, configs, shared)
               if k.rsplit(".", 1)[-1] not in ("residual_mode", "lookup")]
    columns: list[tuple[str, Any]] = []  # (shown name, how to read it from a config)
    for key in varying:
        if all(isinstance(c[key], dict) for c in configs):
            entries = sorted(set().union(*(c[key] for c in configs)))
            columns += [(f"{key}.{e}", lambda c, k=key, e=e: text(c[k][e]) if e in c[k] else "-") for e in entries
                        if len({text(c[key][e]) if e in c[key] else "-" for c in configs}) > 1]
        else:
            columns.append((key, lambda c, k=key: text(c[k])))
    if not columns:
        return {}
    return {id(run): ", ".join(f"{name}={read(c)}" for name, read in columns) for run, c in zip(runs, configs)}


def group_runs(runs: Iterable[Run]) -> list[Group]:
    """Group runs by method variant.

    The label is the run's ``variant`` (an ablation's name for it, e.g. ``diveq_stft``) or else its
    method; when runs of one method differ in ``residual_mode`` or ``lookup``,
    those are appended, e.g. ``diveq [residual_mode=detach, lookup=exact]``, and so is every other
    training option in which they differ (``diveq [DiVeQDAC.noise_var=0.0001]``): runs that trained
    differently are never pooled, and the label says how they differ.

    Args:
        runs: loaded runs.

    Returns:
        Groups, codec methods first (in first-seen order), reference codecs last.
    """
    runs = list(runs)
    name = lambda run: run.summary.get("variant") or run.method  # noqa: E731
    variants: dict[str, set[tuple[str, str]]] = {}
    by_name: dict[str, list[Run]] = {}
    for run in runs:
        variants.setdefault(name(run), set()).add(
            (str(run.summary.get("residual_mode")), str(run.summary.get("lookup"))))
        by_name.setdefault(name(run), []).append(run)
    option_labels = {k: v for named_runs in by_name.values() for k, v in _option_labels(named_runs).items()}
    groups: dict[str, Group] = {}
    for run in runs:
        parts = []
        if len(variants[name(run)]) > 1:
            parts.append(f"residual_mode={run.summary.get('residual_mode')}, lookup={run.summary.get('lookup')}")
        if id(run) in option_labels:
            parts.append(option_labels[id(run)])
        label = name(run) + (f" [{', '.join(parts)}]" if parts else "")
        groups.setdefault(label, Group(label, run.method)).runs.append(run)
    ordered = list(groups.values())
    for group in ordered:
        check_poolable(group)
    return [g for g in ordered if not g.is_reference] + [g for g in ordered if g.is_reference]


def check_poolable(group: Group) -> None:
    """Check that the runs of one group trained the same (losses, level, schedule, data, budget...:
    ``summary["training_config"]`` without the run's own keys such as its seed); :func:`group_runs`
    already separates runs whose shared options differ, so this guards its callers' own groups.

    Options are compared where every run recorded them. An option that only some runs recorded was
    added by a later trainer version (its runs trained with the option at its default when the
    earlier ones had no such option); such keys are listed in ``group.unshared_options`` and the
    report names them, rather than refusing runs that trained the same. Runs with one setting each
    (image: bits per code) are compared with the group's runs at the same setting.

    Raises:
        ValueError: two runs' recorded values of a shared option differ (one line naming the keys).
    """
    known = [(run, run.summary.get("training_config")) for run in group.runs
             if isinstance(run.summary.get("training_config"), dict)]
    if len(known) < 2:
        return
    shared = set.intersection(*(set(config) for _, config in known))
    group.unshared_options = sorted(set.union(*(set(config) for _, config in known)) - shared)
    firsts: dict[Any, tuple[Run, dict[str, Any]]] = {}
    for run, config in known:
        first_run, first = firsts.setdefault(_setting_key(run), (run, config))
        keys = sorted(k for k in shared if _option_text(first[k]) != _option_text(config[k]))
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            raise ConfigError(f"cannot pool the runs of {group.label}: {first_run.eval_dir} and {run.eval_dir} "
                             f"trained differently ({shown})")


def paired_values(method: Group, baseline: Group, setting: float,
                  metric: str) -> tuple[list[float], list[float], str]:
    """Align a method's and a baseline's values at the level of training runs.

    A training run (a seed), not a file, is the unit of replication: each run contributes its mean
    over the files that every run of both groups scored. When both groups have runs of the same
    integer seeds, pairs are those seeds (same data order and initial draws); otherwise the values
    are the groups' own per-seed means, unpaired (then the lists may differ in length).

    Args:
        method: the compared group.
        baseline: the baseline group.
        setting: n_quantizers (speech) or bits per code (image).
        metric: a metric column.

    Returns:
        (method values, baseline values, pairing description).
    """
    a_table, b_table = method.table(setting, metric), baseline.table(setting, metric)
    tables = [t for t in (*a_table.values(), *b_table.values())]
    files = sorted(set.intersection(*(set(name for name, v in t.items() if math.isfinite(v)) for t in tables))
                   ) if tables else []

    def mean(per_file: dict[str, float]) -> float:
        return float(np.mean([per_file[name] for name in files])) if files else math.nan

    shared = sorted(k for k in a_table if isinstance(k, int) and k in b_table)
    if shared:
        return ([mean(a_table[k]) for k in shared], [mean(b_table[k]) for k in shared],
                "seeds " + ", ".join(str(k) for k in shared) + f" (each the mean of {len(files)} files)")
    return ([mean(t) for t in a_table.values()], [mean(t) for t in b_table.values()],
            f"unpaired seed means ({len(files)} files each)")
