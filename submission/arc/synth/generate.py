"""A small re-arc-like task generator (pure numpy): parameterised families of ARC-style rules on
small grids. Every task draws its own rule parameters, so it can only be solved by inferring the
rule from its own demonstrations. Seeded and fast (hundreds of tasks per second).

The families live in submission/arc/synth/rules.py; the split by function (canonical rules, split
keys, the check that no earlier split's rule explains a 'tune' or 'heldout' task) in
submission/arc/synth/split.py. This module draws tasks and writes them in the Kaggle layout, and
re-exports the names callers import from `submission.arc.synth.generate`.

    tasks = generate_tasks(100, seed=0, split="heldout")
"""

from __future__ import annotations

import numpy as np

from submission.arc.data import Pair, Task
from submission.arc.synth.rules import COLORS, FAMILIES, Family, components, noise
from submission.arc.synth.split import (
    COLOR_ONLY,
    HELDOUT_PERCENT,
    OVERRIDES,
    SPLIT_VERSION,
    SPLITS,
    TUNE_PERCENT,
    Rule,
    canonical,
    draw_params,
    earlier_splits,
    explained_by,
    families_for,
    is_heldout,
    rules_of,
    split_key,
    split_of,
)

__all__ = [
    "COLORS", "COLOR_ONLY", "FAMILIES", "HELDOUT_PERCENT", "OVERRIDES", "SPLITS", "SPLIT_VERSION", "TUNE_PERCENT",
    "Family", "Rule", "canonical", "components", "draw_params", "explained_by", "families_for", "generate_task",
    "generate_tasks", "is_heldout", "noise", "rules_of", "split_key", "split_of", "tasks_to_json",
]


def generate_task(rng: np.random.Generator, task_id: str, family: str | None = None, split: str = "train",
                  demos: tuple[int, int] = (2, 4), max_side: int = 10, max_out_side: int = 12) -> Task:
    """One task: a family (random if None), its rule parameters, 2-4 demos and one test pair, all
    with distinct inputs, outputs at most max_out_side, not every output equal to its input, and
    demos that no rule of an earlier split explains (tune: train; heldout: train and tune)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    names = families_for(split)  # a family held out whole has no rule in the other splits
    for _ in range(1000):
        fam = FAMILIES[family or names[int(rng.integers(len(names)))]]
        params = draw_params(rng, fam, split)
        pairs = _draw_pairs(rng, fam, params, int(rng.integers(demos[0], demos[1] + 1)) + 1, max_side, max_out_side)
        if pairs is None or all(p.input.shape == p.output.shape and (p.input == p.output).all() for p in pairs):
            continue
        if explained_by(pairs[:-1], earlier_splits(split)) is None:
            return Task(task_id, tuple(pairs[:-1]), tuple(pairs[-1:]))
    raise ValueError(f"no {split!r} task of family {family!r} after 1000 tries (max_side {max_side})")


def _draw_pairs(rng, fam: Family, params: tuple, n: int, max_side: int, max_out_side: int) -> list[Pair] | None:
    pairs, seen = [], set()
    for _ in range(20 * n):
        g = fam.make(rng, params, max_side).astype(np.int8)
        out = fam.apply(params, g)
        if out is None or g.tobytes() + bytes(g.shape) in seen:
            continue
        out = np.ascontiguousarray(out, dtype=np.int8)
        if max(out.shape) > max_out_side or min(out.shape) < 1:
            continue
        seen.add(g.tobytes() + bytes(g.shape))
        pairs.append(Pair(g, out))
        if len(pairs) == n:
            return pairs
    return None


def generate_tasks(n: int, seed: int = 0, split: str = "train", families: tuple[str, ...] | None = None,
                   **kwargs) -> list[Task]:
    """n tasks, reproducible from (seed, index): task i is the same however many are generated."""
    names = tuple(families or families_for(split))
    unknown = set(names) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; known: {sorted(FAMILIES)}")
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        fam = names[int(rng.integers(len(names)))]
        out.append(generate_task(rng, f"gen-{split}-{seed}-{i:05d}-{fam}", fam, split, **kwargs))
    return out


def tasks_to_json(tasks: list[Task]) -> tuple[dict, dict]:
    """(challenges, solutions) in the Kaggle file layout."""
    ch = {t.id: {"train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in t.train],
                 "test": [{"input": p.input.tolist()} for p in t.test]} for t in tasks}
    sol = {t.id: [p.output.tolist() for p in t.test] for t in tasks}
    return ch, sol
