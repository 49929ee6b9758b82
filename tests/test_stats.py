"""The paired bootstrap behind the accuracy table's confidence intervals."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from stats import paired_bootstrap  # noqa: E402


def test_no_difference_and_a_constant_difference_are_exact():
    a = [0.0, 1.0, 0.5, 1.0]
    assert paired_bootstrap(a, a) == (0.0, (0.0, 0.0))
    diff, (lo, hi) = paired_bootstrap([x + 0.25 for x in a], a)
    assert diff == pytest.approx(0.25) and lo == pytest.approx(0.25) and hi == pytest.approx(0.25)


def test_pairing_cancels_what_both_share():
    """Task difficulty varies a lot, the effect is a steady +0.1: paired, the interval excludes 0."""
    rng = np.random.default_rng(0)
    base = rng.random(60)
    diff, (lo, hi) = paired_bootstrap(base + 0.1 + rng.normal(0, 0.01, 60), base)
    assert 0.09 < lo < diff < hi < 0.11


def test_a_clear_effect_is_above_zero_and_a_coin_flip_is_not():
    wins = [1.0] * 30 + [0.0] * 10
    assert paired_bootstrap(wins, [0.0] * 40)[1][0] > 0.5
    a, b = [1.0, 0.0] * 20, [0.0, 1.0] * 20  # every task differs, half each way
    diff, (lo, hi) = paired_bootstrap(a, b)
    assert diff == 0 and lo < 0 < hi


def test_seeded_and_the_interval_covers_the_truth_about_95_percent_of_the_time():
    a, b = np.random.default_rng(1).random((2, 30))
    assert paired_bootstrap(a, b, seed=3) == paired_bootstrap(a, b, seed=3)
    rng, covered = np.random.default_rng(2), 0
    for _ in range(200):  # per-task differences in {-1, 0, 1} with mean 0.1
        d = rng.choice([-1.0, 0.0, 1.0], size=80, p=[0.2, 0.5, 0.3])
        _, (lo, hi) = paired_bootstrap(d, np.zeros(80), n_boot=2000, seed=int(rng.integers(1 << 30)))
        covered += lo <= 0.1 <= hi
    assert 0.88 <= covered / 200 <= 0.99


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap([1.0], [0.0], level=95)
