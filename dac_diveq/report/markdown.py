"""Markdown sections of the report: result tables, paired comparisons, figures, provenance."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from dac_diveq.report import labels
from dac_diveq.report.published import PublishedFigure
from dac_diveq.report.runs import Domain, Group, Run, common_domain, higher_is_better, paired_values
from dac_diveq.report.stats import holm, mean_ci, paired_comparison, unpaired_comparison, verdict


_INTERPRETER = re.compile(r"^((?:OMP_NUM_THREADS=\d+ )?)\S*/python[\d.]*(?= |$)")


def portable_command(line: str, root: Path) -> str:
    """A command line as a report's provenance keeps it: the interpreter as ``python`` and paths
    under ``root`` (the repository) relative to it, so a committed report reads the same on every machine.

    Args:
        line: a shell command line, maybe led by ``OMP_NUM_THREADS=N``.
        root: the folder the command ran in.
    """
    return _INTERPRETER.sub(r"\1python", line).replace(f"{Path(root).resolve()}/", "")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table.

    Args:
        header: column titles.
        rows: cells (converted with ``str``; pipes escaped).

    Returns:
        The table text, ending with a newline.
    """
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt(value: float, digits: int = 3) -> str:
    """A number with fixed decimals, or "n/a" when not finite."""
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "n/a"


def fmt_p(p: float) -> str:
    """A p-value: 3 significant digits, "<1e-6" below that, "n/a" when not finite."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return "<1e-6" if p < 1e-6 else f"{p:.3g}"


def domain_of(groups: Sequence[Group]) -> Domain:
    """The domain shared by every run of the groups.

    Args:
        groups: method groups.

    Returns:
        The Domain (SPEECH when there are no runs).

    Raises:
        ValueError: the runs mix domains.
    """
    return common_domain(run for g in groups for run in g.runs)


def setting_heading(domain: Domain, setting: int, rate: float) -> str:
    """A setting in words, e.g. "12 quantizers (6.00 kbps)" or "8 bits per code (0.0312 bpp)".

    Args:
        domain: the runs' domain.
        setting: n_quantizers or bits per code.
        rate: the mean rate at that setting.

    Returns:
        The text.
    """
    return f"{setting} {domain.setting_words} ({fmt(rate, domain.rate_digits)} {domain.rate_unit})"


def _codec_settings(groups: Sequence[Group]) -> list[int]:
    return sorted({int(s) for g in groups if not g.is_reference for s in g.settings()})


def _setting_bitrate(groups: Sequence[Group], setting: int) -> float:
    rates = [g.bitrate(setting) for g in groups if not g.is_reference and setting in g.settings()]
    rates = [r for r in rates if math.isfinite(r)]
    return float(np.mean(rates)) if rates else math.nan


def _nearest(settings: Sequence[int], rates: dict[int, float], bitrate: float) -> Optional[int]:
    finite = [s for s in settings if math.isfinite(rates[s])]
    return min(finite, key=lambda s: abs(rates[s] - bitrate)) if finite else None


def results_tables(groups: Sequence[Group], metrics: Sequence[str],
                   only: Optional[Sequence[int]] = None, published: Sequence[PublishedFigure] = ()) -> str:
    """One table per setting (number of quantizers, or bits per code): methods x metrics,
    "mean ± 95% CI half-width".

    Reference codecs (Opus) and published figures of released codecs are added, in italics and
    outside the bold ranking, to the table whose rate is nearest to theirs.

    Args:
        groups: method groups.
        metrics: metric columns to show.
        only: restrict the tables to these settings (default: all).
        published: published figures (their sources are numbered in the order given, as in
            :func:`published_sources`).

    Returns:
        Markdown text.
    """
    domain = domain_of(groups)
    settings = _codec_settings(groups)
    rates = {s: _setting_bitrate(groups, s) for s in settings}
    references: dict[int, list[tuple[Group, float]]] = {}
    for group in groups:
        if group.is_reference:
            for setting in group.settings():
                target = _nearest(settings, rates, group.bitrate(setting))
                if target is not None:
                    references.setdefault(target, []).append((group, setting))
    printed: dict[int, list[tuple[int, PublishedFigure]]] = {}
    for number, figure in enumerate(published, 1):
        target = _nearest(settings, rates, figure.kbps)
        if target is not None:
            printed.setdefault(target, []).append((number, figure))
    out = []
    for setting in settings:
        if only is not None and setting not in only:
            continue
        out.append(f"### {setting_heading(domain, setting, rates[setting])}\n")
        codec = [g for g in groups if not g.is_reference and setting in g.settings()]
        cis = {g.label: {m: mean_ci(g.pooled(setting, m)) for m in metrics} for g in codec}
        best = {}
        for m in metrics:
            means = [(cis[g.label][m].mean, g.label) for g in codec if math.isfinite(cis[g.label][m].mean)]
            if means:
                best[m] = (max if higher_is_better(m) else min)(means)[0]
        rows = []
        for g in codec:
            n_runs = len(g.runs_at(setting))
            n_files = len({f for run in g.runs for f in run.values(setting, metrics[0] if metrics else "")})
            row: list[Any] = [g.label, f"{n_runs} × {n_files}"]
            for m in metrics:
                ci = cis[g.label][m]
                text = _ci_text(ci, n_runs * n_files)
                row.append(f"**{text}**" if m in best and ci.mean == best[m] else text)
            rows.append(row)
        for group, ref_setting in references.get(setting, []):
            n_files = len({f for run in group.runs for f in run.values(ref_setting, metrics[0] if metrics else "")})
            rate = f"{fmt(group.bitrate(ref_setting), domain.rate_digits)} {domain.rate_unit}"
            row = [f"*{group.label} @ {rate} (reference)*",
                   f"{len(group.runs_at(ref_setting))} × {n_files}"]
            expected = len(group.runs_at(ref_setting)) * n_files
            row += [f"*{_ci_text(mean_ci(group.pooled(ref_setting, m)), expected)}*" for m in metrics]
            rows.append(row)
        for number, figure in printed.get(setting, []):
            rate = f"{fmt(figure.kbps, domain.rate_digits)} {domain.rate_unit}"
            rows.append([f"*{figure.codec} @ {rate} (published [{number}])*", "published"]
                        + [f"*{figure.values[m]:g}*" if m in figure.values else "n/a" for m in metrics])
        header = ["method", "seeds × files"] + [
            f"{labels.name(m)} {'↑' if higher_is_better(m) else '↓'}" for m in metrics]
        out.append(table(header, rows))
        out.append(per_seed_table(codec, metrics, setting))
    return "\n".join(o for o in out if o)


def published_sources(published: Sequence[PublishedFigure], about: str = "") -> str:
    """The numbered sources of the published rows, with what the file says they are.

    Args:
        published: the figures, in the order :func:`results_tables` numbered them.
        about: the file's own description (what the figures are, how they compare).
    """
    if not published:
        return ""
    lines = [about + "\n"] if about else []
    lines += [f"{number}. {figure.codec} at {fmt(figure.kbps, 2)} kbps: {figure.source}; {figure.test_set}."
              for number, figure in enumerate(published, 1)]
    return "\n".join(lines) + "\n"


#: Metrics of the per-seed tables (those present; the pooled tables show every metric).
SEED_METRICS = ("pesq_wb", "stoi", "visqol", "psnr", "ssim")


def per_seed_table(codec: Sequence[Group], metrics: Sequence[str], setting: float) -> str:
    """Each seed's mean over files, and the mean ± 95% CI over those seed means (n = seeds).

    Seeds, not files, are the independent repeats of a training; the pooled tables treat every
    file of every seed as independent. Empty when no method has two seeds at ``setting``.

    Args:
        codec: the codec method groups (no reference codecs).
        metrics: the report's metrics (the per-seed table keeps those in :data:`SEED_METRICS`).
        setting: the number of quantizers or bits per code.

    Returns:
        Markdown text (a caption and a table), or "".
    """
    shown = [m for m in SEED_METRICS if m in metrics]
    if not shown or not any(len(g.seed_keys(setting)) > 1 for g in codec):
        return ""
    seeds = sorted({key for g in codec for key, _ in g.seed_keys(setting)}, key=str)
    rows = []
    for g in codec:
        for m in shown:
            means = {key: float(np.nanmean(list(per_file.values()))) if per_file else math.nan
                     for key, per_file in g.table(setting, m).items()}
            finite = [v for v in means.values() if math.isfinite(v)]
            over = mean_ci(finite)
            over_text = "n/a" if not over.n else fmt(over.mean) if over.n == 1 else _ci_text(over, over.n)
            rows.append([g.label, labels.name(m), *[fmt(means.get(k, math.nan)) for k in seeds],
                         f"{over_text} (n={over.n})" if over.n else over_text])
    caption = ("Per-seed means (each seed's mean over the files; the last column is the mean ± 95% "
               "t-interval over seeds, the honest unit of a training comparison):\n")
    return caption + "\n" + table(["method", "metric", *[f"seed {k}" for k in seeds], "over seeds"], rows)


def _ci_text(ci, expected_n: int) -> str:
    if ci.n == 0:
        return "n/a"
    text = f"{fmt(ci.mean)} ± {fmt(ci.half_width)}"
    return text if ci.n == expected_n else f"{text} (n={ci.n})"


#: The declared primary metrics of a comparison, per domain: the only tests with a verdict.
PRIMARY_METRICS = {"speech": ("stoi", "pesq_wb"), "image": ("psnr", "ssim")}


def primary_metrics(domain: Domain, metrics: Sequence[str]) -> tuple[str, ...]:
    """The domain's primary metrics that the runs have."""
    return tuple(m for m in PRIMARY_METRICS.get(domain.name, ()) if m in metrics)


def _compare(a: list[float], b: list[float], pairing: str, metric: str, alpha: float):
    if pairing.startswith("seeds"):
        return paired_comparison(a, b, higher_is_better(metric), alpha=alpha)
    return unpaired_comparison(a, b, higher_is_better(metric), alpha=alpha)


def comparisons(groups: Sequence[Group], baselines: Sequence[str], metrics: Sequence[str],
                alpha: float = 0.05) -> tuple[str, list[dict[str, Any]]]:
    """Every codec method against each baseline, with training runs (seeds) as the unit.

    Design: each seed contributes its mean over the files all runs scored; the difference
    method − baseline is tested over seeds (paired t-test on shared seeds, else Welch's t-test on
    the seed means). One family per (method, baseline): the primary metrics
    (:data:`PRIMARY_METRICS`) at the top setting (the full bitrate / largest codebook), Holm-corrected
    within that family only, so adding methods to a report changes no verdict. Other metrics and
    settings are secondary: their uncorrected p-values are shown without a verdict (nested bitrates of
    one model are not separate wins).

    Args:
        groups: method groups.
        baselines: labels of the baseline groups (missing ones are reported and skipped).
        metrics: metric columns.
        alpha: significance level.

    Returns:
        (Markdown text, one dict per primary comparison for programmatic use).
    """
    domain = domain_of(groups)
    by_label = {g.label: g for g in groups}
    codec = [g for g in groups if not g.is_reference]
    primary = primary_metrics(domain, metrics)
    out: list[str] = []
    records: list[dict[str, Any]] = []
    missing = [b for b in baselines if b not in by_label]
    if missing:
        out.append(f"Baselines not among the runs (skipped): {', '.join(missing)}.\n")
    header = ["method", "metric", "seeds", "pairing", "mean diff (method − baseline)", "95% CI of diff",
              "p (t over seeds)"]
    for base_label in [b for b in baselines if b in by_label]:
        base = by_label[base_label]
        settings = [s for s in _codec_settings(groups) if s in base.settings()]
        if not settings:
            continue
        top = max(settings)
        primary_rows, secondary_rows = [], []
        for g in codec:
            if g.label == base_label:
                continue
            family = []
            for setting in settings:
                if setting not in g.settings():
                    continue
                for m in metrics:
                    a, b, pairing = paired_values(g, base, setting, m)
                    res = _compare(a, b, pairing, m, alpha)
                    rec = {"baseline": base_label, "setting": setting, "method": g.label, "metric": m,
                           "pairing": pairing, "result": res}
                    if setting == top and m in primary:
                        family.append(rec)
                    else:
                        where = setting_heading(domain, setting, _setting_bitrate(groups, setting))
                        secondary_rows.append([g.label, f"{labels.name(m)}, {where}", res.n, pairing,
                                               fmt(res.diff, 4), f"[{fmt(res.ci[0], 4)}, {fmt(res.ci[1], 4)}]",
                                               fmt_p(res.p_t)])
            for rec, p_holm in zip(family, holm([r["result"].p_t for r in family])):
                res = rec["result"]
                rec["p_holm"] = p_holm
                rec["verdict"] = verdict(res.diff, p_holm, higher_is_better(rec["metric"]), res.n, alpha)
                primary_rows.append([rec["method"], labels.name(rec["metric"]), res.n, rec["pairing"],
                                     fmt(res.diff, 4), f"[{fmt(res.ci[0], 4)}, {fmt(res.ci[1], 4)}]",
                                     fmt_p(res.p_t), fmt_p(p_holm), rec["verdict"]])
            records += family
        where = setting_heading(domain, top, _setting_bitrate(groups, top))
        if primary_rows:
            out.append(f"### vs {base_label}: primary comparisons, {where}\n")
            out.append(table(header + ["p (Holm, this method's primary family)", "verdict"], primary_rows))
        if secondary_rows:
            out.append(f"<details><summary>vs {base_label}: secondary comparisons (descriptive: uncorrected p, "
                       "no verdict)</summary>\n")
            out.append(table(header, secondary_rows))
            out.append("</details>\n")
    return "\n".join(out), records


def verdict_summary(records: Sequence[dict[str, Any]], setting_noun: str = "bitrate") -> str:
    """Bullet list: per baseline and method, the verdict of each primary comparison.

    Args:
        records: the second return value of :func:`comparisons` (primary comparisons only).
        setting_noun: the domain's word for a setting (``Domain.setting_noun``), kept for callers.

    Returns:
        Markdown text ("" when there are no records).
    """
    found: dict[tuple[str, str], list[str]] = {}
    for rec in records:
        res = rec["result"]
        found.setdefault((rec["baseline"], rec["method"]), []).append(
            f"{labels.name(rec['metric'])} {fmt(res.diff, 4)} over {res.n} seed{'' if res.n == 1 else 's'}: {rec['verdict']}")
    lines = [f"- **{method} vs {base}**: " + "; ".join(parts) + "." for (base, method), parts in found.items()]
    return "\n".join(lines) + ("\n" if lines else "")


def summary_value(run: Run, setting: int, key: str) -> float:
    """A dataset-level metric (e.g. FID) of one run at one setting, from ``summary.json``.

    Args:
        run: a loaded Run.
        setting: the setting.
        key: the summary key, e.g. "fid".

    Returns:
        ``summary["by_setting"][str(setting)][key]`` if numeric, else ``summary[key]`` when the
        run has that single setting, else NaN.
    """
    per_setting = (run.summary.get("by_setting") or {}).get(str(setting)) or {}
    value = per_setting.get(key) if isinstance(per_setting, dict) else None
    if value is None and run.settings() == [setting]:
        value = run.summary.get(key)
    return float(value) if isinstance(value, (int, float)) else math.nan


def summary_metric_table(groups: Sequence[Group], keys: Sequence[str]) -> str:
    """One table of dataset-level metrics (one value per run, e.g. FID): mean ± 95% CI over seeds.

    Args:
        groups: method groups.
        keys: summary keys of the metrics.

    Returns:
        Markdown text ("" when no run has any of them).
    """
    domain = domain_of(groups)
    keys = [k for k in keys if any(math.isfinite(summary_value(r, s, k)) for g in groups
                                   for r in g.runs for s in r.settings())]
    rows = []
    for setting in _codec_settings(groups) if keys else []:
        for g in [g for g in groups if not g.is_reference and setting in g.settings()]:
            cis = [mean_ci([summary_value(r, setting, k) for r in g.runs_at(setting)]) for k in keys]
            rows.append([g.label, setting_heading(domain, setting, _setting_bitrate(groups, setting)),
                         max(c.n for c in cis), *(_ci_text(c, c.n) for c in cis)])
    if not rows:
        return ""
    header = ["method", "setting", "seeds"] + [f"{labels.name(k)} {'↑' if higher_is_better(k) else '↓'}" for k in keys]
    return table(header, rows)


def image(title: str, path: Path, root: Path) -> str:
    """A Markdown image link relative to the report folder."""
    return f"![{title}]({path.relative_to(root).as_posix()})\n"


def weights_cell(summary: dict, is_reference: bool) -> str:
    """The weights column of the provenance table: a reference codec (Opus) has none, whatever an
    older evaluation recorded beside it."""
    weights = summary.get("weights")
    return "n/a (reference codec)" if is_reference or not weights else f"`{weights}`"


def provenance(groups: Sequence[Group]) -> str:
    """Table of every run: what produced it and where.

    The last columns are the domain's extras (``Domain.provenance``): the ViSQOL mapping for
    speech; the codebook size and the LPIPS and FID Inception weights used for images.

    Args:
        groups: method groups.

    Returns:
        Markdown text.
    """
    extras = domain_of(groups).provenance
    rows = []
    for g in groups:
        for run in g.runs:
            s = run.summary
            failed = s.get("failed") or []
            failed_text = str(len(failed)) + (f" ({', '.join(map(str, failed[:5]))}{', …' if len(failed) > 5 else ''})"
                                              if failed else "")
            wall = s.get("wall_time_s")
            rows.append([g.label, "n/a" if s.get("seed") is None else s["seed"],
                         "n/a" if s.get("step") is None else s["step"], s.get("residual_mode", "n/a"), s.get("lookup", "n/a"),
                         weights_cell(s, g.is_reference), f"`{run.eval_dir}`", s.get("commit") or "n/a",
                         s.get("config_hash", "n/a"), s.get("device", "n/a"), s.get("torch", "n/a"),
                         training_threads(s), trained_on(s), fmt(float(wall), 1) if isinstance(wall, (int, float)) else "n/a",
                         len(s.get("files") or []), failed_text, *(s.get(key, "n/a") for key, _ in extras)])
    return table(["method", "seed", "step", "residual mode", "lookup", "weights", "eval folder", "commit", "config hash",
                  "device", "torch", "training threads", "trained on", "wall time (s)", "files", "failed",
                  *(title for _, title in extras)], rows)


def training_threads(summary: dict) -> str:
    """The intra-op thread counts the run was trained with (``"2"``, or ``"1 from step 0, 2 from step
    400"`` when a resume changed it): seeded runs reproduce only at the same count."""
    environments = [e for e in summary.get("training") or [] if isinstance(e, dict) and "threads" in e]
    if not environments:
        return "n/a"
    if len({e["threads"] for e in environments}) == 1:
        return str(environments[0]["threads"])
    return ", ".join(f"{e['threads']} from step {e.get('step', '?')}" for e in environments)


def trained_on(summary: dict) -> str:
    """The processor(s) the run trained on (``"<cpu> (2 cores)"``, or each with the step it took
    over from when a resume moved the run), "n/a" for runs recorded before processors were."""
    environments = [e for e in summary.get("training") or [] if isinstance(e, dict) and e.get("processor")]
    if not environments:
        return "n/a"
    if len({e["processor"] for e in environments}) == 1:
        return str(environments[0]["processor"])
    return ", ".join(f"{e['processor']} from step {e.get('step', '?')}" for e in environments)


def code_block(text: str) -> str:
    """A fenced code block (``text`` is verbatim)."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}bash\n{text.rstrip()}\n{fence}\n"
