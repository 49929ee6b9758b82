"""Checks that lower a verified program's weight: signs that it fits the demos by coincidence rather than by
the task's rule. Generic over how a program runs: `run(inputs) -> outputs` (None where it failed), so the DSL
interpreter and the sandbox are checked the same way, with one batched call per program.

  not_d8_invariant      it fits the demos but none of their D8-transformed versions (t(x) -> t(y)) for the
                        symmetries t the demos do not rule out (see `consistent`): it commutes, f(t(x)) = t(f(x)),
                        with no symmetry the task allows. A rule nearly always commutes with some: flip_lr with
                        flip_ud and rot180, gravity-down with flip_lr, most with all eight; a program that fits by
                        accident (memorised cells, a colour map spelled out per demo) rarely with any. Requiring
                        every allowed t instead would flag every orientation-specific rule (flip_lr fails rot90),
                        and rank a spurious but symmetric program above the right one.
  not_colour_invariant  the same under COLOUR_MAPS seeded relabellings that keep 0 and move every colour the
                        demos use: it fits none of them
                        (colour-specific rules, common in ARC, are flagged too: the mildest weight)
  identity              it returns a test input unchanged although every demo changes its input
  branches_on_size      (Python source only) it compares a shape or len() with a literal equal to one of the
                        demos' heights or widths: an `if h == 3:` that picks per demo instead of a rule
"""

from __future__ import annotations

import ast
import math
from dataclasses import replace
from typing import Callable

import numpy as np

from submission.arc.augment import Transform, color_permutation
from submission.arc.data import Task
from submission.arc.grid import Grid, grid_key, grids_equal
from submission.programs.record import ProgramResult

Runner = Callable[[list[Grid]], list[Grid | None]]

# multiplied into a program's weight per failed check (merge.py: a weight is a share of a full vote)
# Fitted 2026-12-07 by benchmarks/tune_checks.py (ARC-AGI-1 training, seed 20261207, all 400 tasks, the DSL at
# depth 2, 2 s) as P(right | fails it) / P(right | fails nothing): not_colour_invariant 0.90 [0.77, 1.00] from 34
# programs, so 0.8 stands; 0-1 programs failed the others, too few to fit: they stay guesses. benchmarks/README.md.
NOT_D8_INVARIANT_WEIGHT = 0.6
NOT_COLOUR_INVARIANT_WEIGHT = 0.8
IDENTITY_WEIGHT = 0.1  # an unchanged test input where every demo changes is almost never the answer
BRANCHES_ON_SIZE_WEIGHT = 0.3
WEIGHTS = {"not_d8_invariant": NOT_D8_INVARIANT_WEIGHT, "not_colour_invariant": NOT_COLOUR_INVARIANT_WEIGHT,
           "identity": IDENTITY_WEIGHT, "branches_on_size": BRANCHES_ON_SIZE_WEIGHT}

COLOUR_MAPS = 2  # relabellings tried (fixed seed: the same for every program and run)
COLOUR_SEED = 20240
SIZE_WORDS = ("shape", "size")  # attributes whose comparison with a demo's side length counts as size branching


def d8_transforms() -> list[Transform]:
    """The 7 non-identity symmetries of the square."""
    return [Transform(d) for d in range(1, 8)]


def colour_transforms(task: Task, n: int = COLOUR_MAPS, seed: int = COLOUR_SEED) -> list[Transform]:
    """n seeded colour relabellings that keep 0 (background) and move every other colour the demos use (a map
    that fixed them would test nothing)."""
    used = {int(c) for p in task.train for g in (p.input, p.output) for c in np.unique(g)} - {0}
    rng = np.random.default_rng(seed)
    found: list[Transform] = []
    for _ in range(1000 * n):  # a random map of 9 colours moves all 9 with probability ~1/e: ample
        t = Transform(0, color_permutation(rng, "keep0"))
        if all(t.colors[c] != c for c in used) and t not in found:
            found.append(t)
        if len(found) == n:
            break
    return found


def consistent(t: Transform, task: Task) -> bool:
    """The demos do not contradict equivariance under t: no demo input that t maps onto a demo input (itself
    included) while t does not map its output onto that demo's output. (If x = t(x) and f is equivariant, then
    f(x) = t(f(x)): a t-symmetric input with an asymmetric output proves the task is not.)"""
    outputs = {grid_key(p.input): p.output for p in task.train}
    for p in task.train:
        other = outputs.get(grid_key(t(p.input)))
        if other is not None and not grids_equal(t(p.output), other):
            return False
    return True


def _fits(outputs: list[Grid | None], wanted: list[Grid]) -> bool:
    return all(o is not None and grids_equal(o, w) for o, w in zip(outputs, wanted, strict=True))


def checks(run: Runner, task: Task, source: str | None = None) -> tuple[str, ...]:
    """The checks a program fails (names as in WEIGHTS), from one batched call of `run`: demos, test inputs, and
    the demos under each D8 symmetry and colour relabelling. `source`: Python text for branches_on_size (DSL
    compositions in words are not parsed). The invariance checks apply only to a program that fits the demos."""
    demos = list(task.train)
    groups = {"d8": [t for t in d8_transforms() if consistent(t, task)],
              "colour": [t for t in colour_transforms(task) if consistent(t, task)]}
    inputs = [p.input for p in demos] + [p.input for p in task.test]
    for ts in groups.values():
        inputs += [t(p.input) for t in ts for p in demos]
    outputs = list(run(inputs))
    if len(outputs) != len(inputs):
        raise ValueError(f"task {task.id!r}: the program runner gave {len(outputs)} outputs for {len(inputs)} inputs")
    n, k = len(demos), len(task.test)
    found = []
    fits, tests, rest = outputs[:n], outputs[n:n + k], outputs[n + k:]
    if _fits(fits, [p.output for p in demos]):
        for name, ts in groups.items():
            mine, rest = rest[:n * len(ts)], rest[n * len(ts):]
            if ts and not any(_fits(mine[i * n:(i + 1) * n], [t(p.output) for p in demos]) for i, t in enumerate(ts)):
                found.append("not_d8_invariant" if name == "d8" else "not_colour_invariant")
    if all(not grids_equal(p.input, p.output) for p in demos) and any(
            o is not None and grids_equal(o, p.input) for o, p in zip(tests, task.test)):
        found.append("identity")
    if source is not None and branches_on_size(source, task):
        found.append("branches_on_size")
    return tuple(found)


def _mentions_size(node: ast.AST) -> bool:
    """An expression that reads a grid's size: x.shape, x.size, len(...)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in SIZE_WORDS:
            return True
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "len":
            return True
    return False


def branches_on_size(source: str, task: Task) -> bool:
    """Python source that compares a size (x.shape, x.size, len(...)) with an integer literal equal to one of
    the demos' heights or widths. Not Python (a DSL composition in words): False."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    sides = {s for p in task.train for g in (p.input, p.output) for s in g.shape}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        literals = {o.value for o in operands if isinstance(o, ast.Constant) and type(o.value) is int}
        if literals & sides and any(_mentions_size(o) for o in operands):
            return True
    return False


def weigh(result: ProgramResult, failed_checks: tuple[str, ...]) -> ProgramResult:
    """The result with each newly failed check recorded and its weight multiplied in (WEIGHTS)."""
    unknown = [c for c in failed_checks if c not in WEIGHTS]
    if unknown:
        raise ValueError(f"unknown program checks {unknown}: known are {', '.join(WEIGHTS)}")
    new = tuple(dict.fromkeys(c for c in failed_checks if c not in result.checks))
    return replace(result, weight=result.weight * math.prod(WEIGHTS[c] for c in new), checks=result.checks + new)
