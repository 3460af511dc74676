"""Quality against training steps: one curve per method from the evaluations of runs' milestone
checkpoints (the ``long`` recipe size extends them sitting by sitting).

A point is a (method, step): each seed contributes its mean over the files it scored, and the point
is the mean over seeds with the 95% t-interval over seeds (the seed is the unit of replication, as
in the comparisons).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

from dac_diveq.errors import DataError
from dac_diveq.report import labels
from dac_diveq.report.markdown import fmt, table
from dac_diveq.report.plots import plot_steps
from dac_diveq.report.runs import Run
from dac_diveq.report.stats import MeanCI, mean_ci

#: One method's curve: (step, mean over seeds with its interval), steps ascending.
Curve = list[tuple[int, MeanCI]]


def steps_curves(runs: Iterable[Run], metric: str, setting: float) -> dict[str, Curve]:
    """Per method, ``metric`` at ``setting`` (e.g. 12 quantizers) against the checkpoint's step.

    Args:
        runs: evaluations of milestone checkpoints (their summaries record ``step``).
        metric: a metric column.
        setting: n_quantizers (speech) or bits per code (image).

    Returns:
        method -> curve, methods in first-seen order.

    Raises:
        ValueError: a run without a recorded training step (evaluated before steps were recorded).
    """
    per_seed: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        step = run.summary.get("step")
        if not isinstance(step, int):
            raise DataError(f"{run.eval_dir}: its summary records no training step (re-evaluate it)")
        values = [v for v in run.values(setting, metric).values() if math.isfinite(v)]
        if values:
            per_seed.setdefault(run.method, {}).setdefault(step, []).append(sum(values) / len(values))
    return {method: [(step, mean_ci(means)) for step, means in sorted(steps.items())]
            for method, steps in per_seed.items()}


def steps_table(curves_by_metric: dict[str, dict[str, Curve]]) -> str:
    """A Markdown table: method, step, seeds, then each metric's mean ± half-width over seeds."""
    metrics = list(curves_by_metric)
    points = {m: {(method, step): ci for method, curve in curves.items() for step, ci in curve}
              for m, curves in curves_by_metric.items()}
    methods = dict.fromkeys(method for curves in curves_by_metric.values() for method in curves)
    rows = []
    for method in methods:
        for step in sorted({s for m in metrics for (name, s) in points[m] if name == method}):
            cis = [points[m].get((method, step)) for m in metrics]
            cells = ["n/a" if ci is None else fmt(ci.mean) + ("" if math.isnan(ci.half_width)
                                                               else f" ± {fmt(ci.half_width)}") for ci in cis]
            rows.append([method, step, max(ci.n for ci in cis if ci is not None), *cells])
    return table(["method", "step", "seeds", *(labels.name(m) for m in metrics)], rows)


def write_steps(runs: Sequence[Run], metrics: Sequence[str], setting: float, setting_text: str,
                output: Path) -> str:
    """The quality-vs-steps section of a report: a table and one PNG per metric in ``output``.

    Returns:
        The Markdown section (images linked relative to ``output``).
    """
    curves_by_metric = {m: steps_curves(runs, m, setting) for m in metrics}
    curves_by_metric = {m: c for m, c in curves_by_metric.items() if c}
    parts = [f"Each point: the mean over seeds of each seed's mean over the files, at {setting_text}, "
             "with the 95% t-interval over seeds.\n", steps_table(curves_by_metric)]
    for metric, curves in curves_by_metric.items():
        png = plot_steps(curves, metric, setting_text, output / f"steps_{metric}.png")
        parts.append(f"\n![{labels.name(metric)} vs steps]({png.name})\n")
    return "\n".join(parts)
