"""The checks that lower a program's weight, on real tiny solvers (no mocks): equivariance under the demos'
own symmetries, colour relabelling, identity answers and size branching in Python source."""

import numpy as np
import pytest

from submission.arc.augment import Transform
from submission.arc.data import Pair, Task
from submission.programs.checks import (
    BRANCHES_ON_SIZE_WEIGHT,
    IDENTITY_WEIGHT,
    NOT_D8_INVARIANT_WEIGHT,
    branches_on_size,
    checks,
    consistent,
    weigh,
)
from submission.programs.record import ProgramResult


def g(rows):
    return np.array(rows, dtype=np.int8)


def task(pairs, tests, tid="t"):
    return Task(tid, tuple(Pair(g(a), g(b)) for a, b in pairs), tuple(Pair(g(x)) for x in tests))


RECOLOUR = task([([[1, 0], [0, 1]], [[2, 0], [0, 2]]), ([[1, 1, 0]], [[2, 2, 0]]), ([[0], [1]], [[0], [2]])],
                [[[1, 0, 1]]])
GRAVITY = task([([[1], [0], [1]], [[0], [1], [1]]), ([[3, 0], [0, 0]], [[0, 0], [3, 0]])], [[[0, 2], [2, 0]]])


def each(f):
    return lambda grids: [f(x) for x in grids]


def recolour(x):
    return np.where(x == 1, 2, x).astype(np.int8)


def memoriser(t):
    """Fits the demos by remembering them; returns anything else unchanged."""
    table = {p.input.tobytes() + bytes(p.input.shape): p.output for p in t.train}
    return lambda x: table.get(x.tobytes() + bytes(x.shape), x)


def gravity(x):
    """Every non-zero cell falls to the bottom of its column."""
    out = np.zeros_like(x)
    for c in range(x.shape[1]):
        col = x[:, c][x[:, c] != 0]
        out[x.shape[0] - len(col):, c] = col
    return out


def test_an_equivariant_rule_passes_d8_and_a_colour_specific_one_is_flagged_for_colour():
    assert checks(each(recolour), RECOLOUR) == ("not_colour_invariant",)


def test_a_memoriser_fits_the_demos_but_fails_their_transforms_and_answers_the_input():
    assert checks(each(memoriser(RECOLOUR)), RECOLOUR) == ("not_d8_invariant", "not_colour_invariant", "identity")


def test_a_program_that_misses_a_demo_is_not_judged_on_invariance():
    assert checks(each(lambda x: x), RECOLOUR) == ("identity",)
    assert "not_d8_invariant" not in checks(each(lambda x: g([[5]])), RECOLOUR)


def test_demos_rule_out_a_symmetry_they_contradict():
    # demo 1's input is its own mirror top-bottom, its output is not: the task is not flip_ud-equivariant
    flip_ud, flip_lr = Transform(5), Transform(4)
    assert not consistent(flip_ud, GRAVITY) and consistent(flip_lr, GRAVITY)


def test_an_orientation_specific_rule_passes_when_it_commutes_with_some_allowed_symmetry():
    # gravity-down commutes with flip_lr (not with the quarter turns); flip_lr with flip_ud and rot180
    assert gravity(GRAVITY.train[0].input).tolist() == [[0], [1], [1]]
    assert checks(each(gravity), GRAVITY) == ()
    flip = task([([[1, 2], [3, 4]], [[2, 1], [4, 3]]), ([[5, 0, 0]], [[0, 0, 5]])], [[[1, 0], [0, 2]]])
    assert checks(each(lambda x: x[:, ::-1]), flip) == ()
    # a colour map spelled out per demo commutes with every symmetry, but with no relabelling
    spelled = task([([[1, 2]], [[2, 1]]), ([[3, 4]], [[4, 3]])], [[[1, 4]]])
    swap = np.array([0, 2, 1, 4, 3, 5, 6, 7, 8, 9], dtype=np.int8)
    assert checks(each(lambda x: swap[x]), spelled) == ("not_colour_invariant",)


def test_a_runner_that_returns_too_few_outputs_is_a_clear_error():
    with pytest.raises(ValueError, match="task 't'.*outputs"):
        checks(lambda grids: grids[:1], RECOLOUR)


def test_branches_on_size_looks_for_demo_sizes_in_comparisons():
    branchy = "def solve(g):\n    if g.shape[0] == 3:\n        return g[::-1]\n    return g\n"
    assert branches_on_size(branchy, GRAVITY)  # demo 1 is 3 rows high
    assert branches_on_size("def solve(g):\n    return g if len(g) < 2 else g.T\n", GRAVITY)
    assert not branches_on_size("def solve(g):\n    return g if len(g) < 30 else g.T\n", GRAVITY)
    assert not branches_on_size("def solve(g):\n    return g[::-1]\n", GRAVITY)
    assert not branches_on_size("flip_ud | crop_bbox", GRAVITY)  # a DSL composition, not Python
    assert checks(each(gravity), GRAVITY, source=branchy) == ("branches_on_size",)


def test_weigh_multiplies_each_new_check_once():
    r = ProgramResult("dsl", "x", (True,), (g([[1]]),))
    once = weigh(r, ("identity", "not_d8_invariant"))
    assert once.weight == pytest.approx(IDENTITY_WEIGHT * NOT_D8_INVARIANT_WEIGHT)
    again = weigh(once, ("identity", "branches_on_size"))
    assert again.checks == ("identity", "not_d8_invariant", "branches_on_size")
    assert again.weight == pytest.approx(IDENTITY_WEIGHT * NOT_D8_INVARIANT_WEIGHT * BRANCHES_ON_SIZE_WEIGHT)
    with pytest.raises(ValueError, match="unknown program checks"):
        weigh(r, ("spooky",))
