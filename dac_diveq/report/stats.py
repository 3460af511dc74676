"""Statistics for the report: t confidence intervals, paired comparisons, Holm correction."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

BETTER = "better (p<0.05)"
WORSE = "worse (p<0.05)"
NO_DIFFERENCE = "no significant difference"
TOO_FEW = "too few seeds to test"


@dataclass(frozen=True)
class MeanCI:
    """Mean with the half-width of its t confidence interval.

    Attributes:
        mean: sample mean (NaN when no finite value).
        half_width: half-width of the interval (NaN when n < 2).
        n: number of finite values used.
    """

    mean: float
    half_width: float
    n: int


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of a method (a) against a baseline (b).

    Attributes:
        diff: mean of a - b over the pairs.
        ci: (low, high) t confidence interval of the mean difference.
        p_t: two-sided p-value of the paired t-test.
        p_wilcoxon: two-sided p-value of the Wilcoxon signed-rank test.
        n: number of pairs (both values finite).
        verdict: "better (p<0.05)", "worse (p<0.05)", "no significant difference" or
            "too few pairs", from ``p_t`` and the metric's direction.
    """

    diff: float
    ci: tuple[float, float]
    p_t: float
    p_wilcoxon: float
    n: int
    verdict: str


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def mean_ci(values: Sequence[float], level: float = 0.95) -> MeanCI:
    """Mean and half-width of the t confidence interval; NaNs are dropped.

    Args:
        values: samples (pooled files x seeds).
        level: confidence level.

    Returns:
        The mean, half-width (NaN when fewer than 2 values) and n.
    """
    x = _finite(values)
    n = int(x.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, math.nan, n)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    return MeanCI(mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * sem, n)


def verdict(diff: float, p: float, higher_is_better: bool, n: int, alpha: float = 0.05) -> str:
    """Plain-words verdict of a comparison.

    Args:
        diff: mean difference method - baseline.
        p: p-value used for the decision (raw or corrected).
        higher_is_better: direction of the metric.
        n: number of pairs.
        alpha: significance level (the labels say 0.05; other levels are reported as such).

    Returns:
        One of the verdict strings of this module.
    """
    if n < 2:
        return TOO_FEW
    if not (math.isfinite(p) and p < alpha) or diff == 0:
        return NO_DIFFERENCE
    good = diff > 0 if higher_is_better else diff < 0
    label = BETTER if good else WORSE
    return label if alpha == 0.05 else label.replace("0.05", f"{alpha:g}")


def paired_comparison(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True,
                      level: float = 0.95, alpha: float = 0.05) -> PairedComparison:
    """Paired t-test and Wilcoxon signed-rank test of a against b.

    Pairs where either value is not finite are dropped. When every difference is the same
    (zero variance) the t-test is degenerate: p is 0 for a non-zero difference, 1 otherwise.

    Args:
        a: the method's values, aligned with ``b``.
        b: the baseline's values.
        higher_is_better: direction of the metric, for the verdict.
        level: confidence level of the interval of the mean difference.
        alpha: significance level of the verdict.

    Returns:
        A PairedComparison.
    """
    a_arr, b_arr = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired samples differ in length: {a_arr.size} vs {b_arr.size}")
    keep = np.isfinite(a_arr) & np.isfinite(b_arr)
    d = a_arr[keep] - b_arr[keep]
    n = int(d.size)
    if n < 2:
        diff = float(d.mean()) if n else math.nan
        return PairedComparison(diff, (math.nan, math.nan), math.nan, math.nan, n, TOO_FEW)
    ci = mean_ci(d, level)
    diff = ci.mean
    if float(d.std(ddof=1)) == 0.0:
        p_t = 0.0 if diff != 0 else 1.0
    else:
        p_t = float(stats.ttest_1samp(d, 0.0).pvalue)
    if np.all(d == 0):
        p_w = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-n / ties notices
            p_w = float(stats.wilcoxon(d).pvalue)
    return PairedComparison(diff, (diff - ci.half_width, diff + ci.half_width), p_t, p_w, n,
                            verdict(diff, p_t, higher_is_better, n, alpha))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1).

    Non-finite p-values are kept as NaN and do not count towards the number of tests.

    Args:
        pvalues: raw p-values of a family of tests.

    Returns:
        Adjusted p-values in the input order.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(v) for v in out]


def unpaired_comparison(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True,
                        level: float = 0.95, alpha: float = 0.05) -> PairedComparison:
    """Welch's t-test of a against b (two groups of independent runs, e.g. seed means without
    shared seeds); the interval is Welch's for the difference of means. No Wilcoxon (NaN)."""
    x, y = _finite(a), _finite(b)
    n = int(min(x.size, y.size))
    diff = float(x.mean() - y.mean()) if x.size and y.size else math.nan
    if x.size < 2 or y.size < 2:
        return PairedComparison(diff, (math.nan, math.nan), math.nan, math.nan, n, TOO_FEW)
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        p = 0.0 if diff != 0 else 1.0
        half = 0.0
    else:
        df = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
        p = float(2 * stats.t.sf(abs(diff) / se, df))
        half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return PairedComparison(diff, (diff - half, diff + half), p, math.nan, n,
                            verdict(diff, p, higher_is_better, n, alpha))
