"""Paired statistics, intervals and Holm correction of dac_diveq.report.stats on synthetic data."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from dac_diveq.report.stats import (BETTER, NO_DIFFERENCE, TOO_FEW, WORSE, holm, mean_ci,
                                    paired_comparison)


def pairs(effect: float, noise: float = 0.1, n: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.normal(3.0, 0.5, n)
    return base + effect + rng.normal(0.0, noise, n), base


def test_known_positive_effect_is_better():
    a, b = pairs(0.3)
    res = paired_comparison(a, b, higher_is_better=True)
    assert res.n == 30
    assert res.p_t < 1e-6 and res.p_wilcoxon < 1e-6
    assert res.ci[0] < 0.3 < res.ci[1] and res.ci[0] > 0
    assert res.diff == pytest.approx(0.3, abs=0.06)
    assert res.verdict == BETTER


def test_negative_effect_is_worse_and_direction_flips_for_distances():
    a, b = pairs(-0.3)
    assert paired_comparison(a, b, higher_is_better=True).verdict == WORSE
    assert paired_comparison(a, b, higher_is_better=False).verdict == BETTER  # a lower distance is better


def test_no_effect_is_no_difference():
    a, b = pairs(0.0, seed=1)
    res = paired_comparison(a, b)
    assert res.p_t > 0.05 and res.p_wilcoxon > 0.05
    assert res.verdict == NO_DIFFERENCE
    assert res.ci[0] < 0 < res.ci[1]


def test_matches_scipy_paired_t_test():
    a, b = pairs(0.05, noise=0.2, seed=2)
    res = paired_comparison(a, b)
    assert res.p_t == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert res.p_wilcoxon == pytest.approx(sps.wilcoxon(a - b).pvalue)


def test_nan_pairs_are_dropped():
    a, b = pairs(0.3)
    a[0], b[1] = math.nan, math.nan
    assert paired_comparison(a, b).n == 28


def test_too_few_pairs():
    res = paired_comparison([1.0], [0.5])
    assert res.n == 1 and res.verdict == TOO_FEW and math.isnan(res.p_t)
    assert paired_comparison([], []).verdict == TOO_FEW
    assert paired_comparison([1.0, math.nan], [0.0, 1.0]).verdict == TOO_FEW


def test_zero_variance_differences():
    assert paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).verdict == NO_DIFFERENCE
    res = paired_comparison([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert res.p_t == 0.0 and res.verdict == BETTER


def test_mean_ci_covers_true_mean_and_matches_t_formula():
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 1.0, 50)
    ci = mean_ci(x)
    assert ci.n == 50
    assert ci.mean - ci.half_width < 2.0 < ci.mean + ci.half_width
    assert ci.half_width == pytest.approx(sps.t.ppf(0.975, 49) * x.std(ddof=1) / math.sqrt(50))


def test_mean_ci_coverage_rate():
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(400):
        ci = mean_ci(rng.normal(0.0, 1.0, 10))
        hits += abs(ci.mean) <= ci.half_width
    assert 0.92 <= hits / 400 <= 0.98


def test_mean_ci_small_and_nan():
    ci = mean_ci([1.0, math.nan])
    assert ci.n == 1 and ci.mean == 1.0 and math.isnan(ci.half_width)
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([]).mean)


def test_holm_against_hand_computation():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_holm_ignores_nan():
    out = holm([0.01, math.nan, 0.02])
    assert math.isnan(out[1])
    assert out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)
