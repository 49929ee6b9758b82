"""The merge policies on hand-made candidates: what each does with transduction's two attempts and the
verified programs' outputs."""

import numpy as np
import pytest

from submission.arc.vote import Prediction, rank
from submission.programs.merge import POLICIES, attempts, chosen_program, program_grids
from submission.programs.record import ProgramResult

X, Y, Z, W = ([[1]], [[2]], [[3, 3]], [[4], [4]])


def g(rows):
    return np.array(rows, dtype=np.int8)


def ranked(*counts):
    """Transduction's candidates by the paper's vote from (grid, how many predictions) pairs."""
    preds = [Prediction(g(grid), f"t{i}", i == 0) for grid, n in counts for i in range(n)]
    return rank(preds, "vote")


def program(out, weight=1.0, fits=(True, True), source="p"):
    return ProgramResult("dsl", source, fits, (g(out),), weight)


def lists(grids):
    return [x.tolist() for x in grids]


def test_fill_never_displaces_a_unanimous_vote_and_fills_its_repeated_attempt_2():
    unanimous = ranked((X, 8))
    wrong = program(Y)  # fits the demos, wrong on the test
    assert lists(attempts(unanimous, [wrong], 0, "fill")) == [X, Y]
    assert chosen_program(attempts(unanimous, [wrong], 0, "fill"), unanimous, [wrong], 0) is wrong
    # two distinct candidates: the program changes nothing
    two = ranked((X, 5), (Z, 3))
    assert lists(attempts(two, [wrong], 0, "fill")) == [X, Z]
    assert chosen_program([g(X), g(Z)], two, [wrong], 0) is None
    # a program agreeing with attempt 1 has nothing to add
    assert lists(attempts(unanimous, [program(X)], 0, "fill")) == [X, X]


def test_fill_gives_both_attempts_to_programs_when_transduction_has_nothing():
    assert lists(attempts([], [program(Y), program(Z, 0.5)], 0, "fill")) == [Y, Z]
    assert lists(attempts([], [program(Y)], 0, "fill")) == [Y, Y]
    assert attempts([], [], 0, "fill") == []


def test_only_verified_programs_with_an_output_count():
    half = program(Y, fits=(True, False))
    failed = ProgramResult("dsl", "q", (True,), (None,))
    assert program_grids([half, failed], 0) == []
    assert lists(attempts(ranked((X, 4)), [half, failed], 0, "fill")) == [X, X]
    assert program_grids([program(Y)], 1) == []  # no second test input


def test_vote_weighs_programs_in_shares_of_the_predictions():
    assert lists(attempts(ranked((X, 8)), [program(Y)], 0, "vote")) == [X, Y]  # 4 votes < 8
    # 3 + 2 predictions: a weight-1 program is worth 2.5, ahead of Z (2), behind X (3)
    assert lists(attempts(ranked((X, 3), (Z, 2)), [program(Y)], 0, "vote")) == [X, Y]
    assert lists(attempts(ranked((X, 3), (Z, 2)), [program(Y, 0.3)], 0, "vote")) == [X, Z]  # 0.75 votes
    assert lists(attempts(ranked((X, 3), (Z, 2)), [program(Z)], 0, "vote")) == [Z, X]  # 2 + 2.5 > 3
    # programs that agree vote once (at their best weight)
    same = [program(Y, 0.6), program(Y, 0.6, source="q")]
    assert lists(attempts(ranked((X, 3), (Z, 2)), same, 0, "vote")) == [X, Z]  # 1.5 < 2


def test_vote_never_moves_a_programs_grid_behind_where_the_rule_put_it():
    preds = [Prediction(g(X), "identity", True)] + [Prediction(g(Z), "rot90")] * 3
    by_rule = rank(preds + [Prediction(g(X), "flip_lr")], "vote")
    assert [c.count for c in by_rule] == [2, 3]  # the hierarchical vote prefers the identity's answer
    assert lists(attempts(by_rule, [program(X, 0.1)], 0, "vote")) == [X, Z]
    assert lists(attempts(by_rule, [], 0, "vote")) == [X, Z]


def test_induction_first_puts_the_top_program_first():
    assert lists(attempts(ranked((X, 8)), [program(Y)], 0, "induction-first")) == [Y, X]
    assert lists(attempts(ranked((X, 8)), [program(Y, 0.2), program(W)], 0, "induction-first")) == [W, X]
    assert lists(attempts(ranked((X, 8)), [], 0, "induction-first")) == [X, X]


def test_off_is_transduction_alone_and_unknown_policies_are_named():
    assert lists(attempts(ranked((X, 8)), [program(Y)], 0, "off")) == [X, X]
    assert set(POLICIES) == {"fill", "vote", "induction-first", "off"}
    with pytest.raises(ValueError, match="program policy must be one of"):
        attempts(ranked((X, 1)), [], 0, "always")
