"""Statistics for the benchmark tables (pure numpy): paired bootstrap confidence intervals.

    diff, (lo, hi) = paired_bootstrap(ttt_scores, no_ttt_scores)   # one score per task, same order
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Mean of a - b over paired items (tasks) and its percentile bootstrap interval: the items are
    resampled with replacement, pairs kept together, so what both settings share cancels out."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or not len(a):
        raise ValueError(f"need two equally long, non-empty score lists, got shapes {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d = a - b
    idx = np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))
    means = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(d.mean()), (float(lo), float(hi))
