"""Report figures (matplotlib, Agg backend, PNG)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dac_diveq.report import labels  # noqa: E402
from dac_diveq.report.runs import Group, common_domain  # noqa: E402
from dac_diveq.report.stats import MeanCI, mean_ci  # noqa: E402
from dac_diveq.report.tensorboard import Curve  # noqa: E402
from dac_diveq.training.checkpoint import atomic_path  # noqa: E402

DPI = 120


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically and close it: a full disk leaves no truncated
    PNG (the ``OSError`` is raised, the partial file removed).

    Returns:
        ``path``.
    """
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return path



def _colors(n: int) -> list:
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def metric_vs_bitrate(groups: Sequence[Group], metric: str, path: Path) -> Path:
    """Mean metric vs rate (bitrate in kbps, or bits per pixel) per method, 95% t-interval error
    bars; references dashed.

    Each method's points are shifted by about 1% in rate so that error bars do not overlap.

    Args:
        groups: method groups (reference codecs included).
        metric: metric column.
        path: output PNG.

    Returns:
        ``path``.
    """
    domain = common_domain(run for g in groups for run in g.runs)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for j, (group, color) in enumerate(zip(groups, _colors(len(groups)))):
        dodge = 1 + 0.012 * (j - (len(groups) - 1) / 2)  # keeps overlapping error bars apart
        points = []
        for setting in group.settings():
            ci = mean_ci(group.pooled(setting, metric))
            if math.isfinite(ci.mean):
                points.append((group.bitrate(setting) * dodge, ci.mean, 0.0 if math.isnan(ci.half_width) else ci.half_width))
        if not points:
            continue
        x, y, err = (np.array(v) for v in zip(*sorted(points)))
        style = dict(linestyle="--", marker="s") if group.is_reference else dict(linestyle="-", marker="o")
        label = f"{group.label} (reference)" if group.is_reference else group.label
        ax.errorbar(x, y, yerr=err, capsize=3, color=color, label=label, **style)
    ax.set_title(f"{labels.name(metric)} vs {domain.rate_name} (mean, 95% CI)")
    ax.set_xlabel(f"{domain.rate_name.capitalize()} ({domain.rate_unit}; methods offset ~1% for legibility)")
    ax.set_ylabel(labels.axis_label(metric))
    ax.grid(True, alpha=0.4)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _stage_positions(series: Sequence[tuple[str, dict]]) -> tuple[dict, list[str], str]:
    """x positions, tick labels and axis label of the codebook bars.

    Args:
        series: (label, bar key -> values); a key is a stage (int) or (setting, stage).

    Returns:
        (key -> x, tick labels in x order, x axis label).
    """
    keys = sorted({k for _, per_key in series for k in per_key})
    if all(isinstance(k, int) for k in keys):
        return {k: k for k in keys}, [str(k) for k in keys], "Quantizer stage"
    if all(stage == 0 for _, stage in keys):
        return {k: i for i, k in enumerate(keys)}, [str(s) for s, _ in keys], "Bits per code"
    return {k: i for i, k in enumerate(keys)}, [f"{s}/{t}" for s, t in keys], "Bits per code / quantizer stage"


def codebook_stages(groups: Sequence[Group], key: str, ylabel: str, title: str, path: Path) -> Path:
    """Grouped bars of a per-stage codebook statistic, one bar per method per stage.

    The bar is the mean over the group's runs; the error bar the 95% interval over runs
    (shown when a group has at least two runs with the statistic). For image runs
    (``Domain.setting_per_run``) a bar is one (bits per code, stage) pair.

    Args:
        groups: method groups (reference codecs have no codebook and are skipped).
        key: field of ``summary["codebook"]["stages"][i]``, e.g. "usage".
        ylabel: axis label with unit.
        title: figure title.
        path: output PNG.

    Returns:
        ``path``.
    """
    by_setting = common_domain(run for g in groups for run in g.runs).setting_per_run
    series = []
    for group in groups:
        per_stage: dict = {}
        for run in group.runs:
            for i, stage in enumerate((run.summary.get("codebook") or {}).get("stages", []) or []):
                if stage.get(key) is not None:
                    bar = int(stage.get("stage", i))
                    bar_key = (int(max(run.settings(), default=0)), bar) if by_setting else bar
                    per_stage.setdefault(bar_key, []).append(float(stage[key]))
        if per_stage:
            series.append((group.label, per_stage))
    positions, ticks, xlabel = _stage_positions(series)
    fig, ax = plt.subplots(figsize=(max(7, 0.35 * max((len(s) for _, s in series), default=1) * max(len(series), 1)), 4.5))
    width = 0.8 / max(len(series), 1)
    for j, ((label, per_stage), color) in enumerate(zip(series, _colors(len(series)))):
        stages = sorted(per_stage)
        cis = [mean_ci(per_stage[s]) for s in stages]
        err = [0.0 if math.isnan(c.half_width) else c.half_width for c in cis]
        x = np.array([positions[s] for s in stages], dtype=float)
        ax.bar(x + (j - (len(series) - 1) / 2) * width, [c.mean for c in cis], width,
               yerr=err, capsize=2, color=color, label=label)
    if series:
        ax.set_xticks(sorted(positions.values()), ticks)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no codebook statistics in the runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.4)
    return save_figure(fig, path)


def training_curves(curves: Sequence[tuple[str, Curve]], title: str, ylabel: str, path: Path) -> Path:
    """Training/validation curves vs step, one color per method (seeds share the color).

    Args:
        curves: (method label, (steps, values)) per run.
        title: figure title.
        ylabel: axis label with unit.
        path: output PNG.

    Returns:
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    order = list(dict.fromkeys(label for label, _ in curves))
    colors = dict(zip(order, _colors(len(order))))
    shown: set[str] = set()
    for label, (steps, values) in curves:
        ax.plot(steps, values, marker="." if len(steps) < 30 else None, color=colors[label],
                label=None if label in shown else label, alpha=0.85)
        shown.add(label)
    ax.set_title(title)
    ax.set_xlabel("Training step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.4)
    if shown:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_steps(curves: dict[str, list[tuple[int, MeanCI]]], metric: str, setting_text: str, path: Path) -> Path:
    """``metric`` against training steps, one line per method, 95% intervals over seeds.

    Args:
        curves: method -> (step, mean over seeds with its interval), from
            :func:`dac_diveq.report.steps.steps_curves`.
        metric: the metric (axis label).
        setting_text: what the points are taken at (e.g. ``"12 quantizers, 6.0 kbps"``).
        path: output PNG.

    Returns:
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (method, curve), color in zip(curves.items(), _colors(len(curves))):
        steps = [s for s, _ in curve]
        means = [ci.mean for _, ci in curve]
        errors = [0.0 if math.isnan(ci.half_width) else ci.half_width for _, ci in curve]
        ax.errorbar(steps, means, yerr=errors, capsize=3, marker="o", color=color, label=method)
    ax.set_title(f"{labels.name(metric)} vs training steps ({setting_text}; mean over seeds, 95% CI)")
    ax.set_xlabel("training step")
    ax.set_ylabel(labels.axis_label(metric))
    ax.grid(True, alpha=0.4)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
