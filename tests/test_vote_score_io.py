import json

import numpy as np
import pytest

from submission.arc.data import load_challenges
from submission.arc.score import score_submission, score_task
from submission.arc.submission_io import build_submission, validate_submission, write_json_atomic
from submission.arc.vote import Prediction, flat_vote, hierarchical_vote, top2

A, B, C, D = (np.full((1, 1), v, np.int8) for v in range(4))


def P(g, t):
    return Prediction(g, t, t == "identity")


def test_hierarchical_vote_golden():
    preds = ([P(A, "rot90")] * 5 + [P(B, "rot90")] * 4 + [P(C, "rot90")] * 3 + [P(D, "rot90")] * 2
             + [P(B, "flip_lr")] * 2 + [P(C, "flip_lr")]
             + [P(C, "identity")] + [P(D, "identity")])
    ranked = hierarchical_vote(preds)
    # C is in the top 3 of all three transforms; B of two; A, D of one each (D via identity wins the tie)
    assert [int(c.grid[0, 0]) for c in ranked] == [2, 1, 3, 0]
    assert [c.transform_votes for c in ranked] == [3, 2, 1, 1]
    assert ranked[2].count == 3 and ranked[0].by_transform == {"rot90": 3, "flip_lr": 1, "identity": 1}
    assert [int(g[0, 0]) for g in top2(ranked)] == [2, 1]
    # a flat vote ranks by raw count
    assert [int(c.grid[0, 0]) for c in flat_vote(preds)][:3] == [1, 2, 0]  # B=6; A=C=5, C has identity


def test_ties_prefer_identity():
    ranked = hierarchical_vote([P(A, "rot90"), P(B, "identity")])
    assert int(ranked[0].grid[0, 0]) == 1
    assert int(flat_vote([P(A, "rot90"), P(B, "identity")])[0].grid[0, 0]) == 1
    assert len(top2(hierarchical_vote([P(A, "identity")]))) == 2


def test_score_partial_credit():
    sol = {"a": [[[1]], [[2]]], "b": [[[3]]], "c": [[[4]]]}
    sub = {"a": [{"attempt_1": [[0]], "attempt_2": [[1]]}, {"attempt_1": [[0]], "attempt_2": [[0]]}],
           "b": [{"attempt_1": [[3]], "attempt_2": [[0]]}]}
    overall, per = score_submission(sub, sol)
    assert per == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert overall == pytest.approx(0.5)
    assert score_task([{"attempt_1": [[1, 2]], "attempt_2": "x"}], [[[1], [2]]]) == 0.0  # shape must match
    assert score_task("garbage", [[[1]]]) == 0.0


def test_build_and_validate_submission(tmp_path, task_json):
    (tmp_path / "c.json").write_text(json.dumps({"t1": task_json, "bad": {"train": [], "test": [{"input": [[1]]}]}}))
    ts = load_challenges(tmp_path / "c.json")
    sub = build_submission(ts, {"t1": [[A, B]]})
    assert sub["t1"] == [{"attempt_1": [[0]], "attempt_2": [[1]]}, {"attempt_1": [[0]], "attempt_2": [[0]]}]
    assert sub["bad"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]
    assert validate_submission(sub, ts) == []
    broken = {"t1": [{"attempt_1": [[1]]}, {"attempt_1": [[1, 2], [3]], "attempt_2": [[1]]}], "zzz": []}
    problems = validate_submission(broken, ts)
    assert any("missing attempt_2" in p for p in problems)
    assert any("ragged" in p for p in problems)
    assert any("'bad': missing" in p for p in problems)
    assert any("'zzz': not in the challenges" in p for p in problems)
    assert validate_submission([], ts)
    assert any("1 entries" in p for p in validate_submission({**sub, "t1": sub["t1"][:1]}, ts))


def test_write_json_atomic(tmp_path):
    p = tmp_path / "sub" / "s.json"
    write_json_atomic(p, {"a": 1})
    write_json_atomic(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [f.name for f in p.parent.iterdir()] == ["s.json"]


class Unserialisable:
    pass


def test_a_write_that_fails_midway_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    """json.dump writes in chunks: an object that fails after the first chunks is a write torn midway.
    A plain open().write() would leave a truncated file here; the atomic write leaves the old one."""
    p = tmp_path / "submission.json"
    before = {"task": [{"attempt_1": [[1, 2]], "attempt_2": [[3]]}]}
    write_json_atomic(p, before)
    old = p.read_bytes()
    torn = {"a" * 100_000: [[0] * 30] * 30, "b": Unserialisable()}  # megabytes of text, then a failure
    with pytest.raises(TypeError):
        write_json_atomic(p, torn)
    assert p.read_bytes() == old and json.loads(old) == before
    assert [f.name for f in tmp_path.iterdir()] == ["submission.json"]  # no temporary file left behind
    with pytest.raises(TypeError):  # what the test guards against: a plain write tears the file
        with open(p, "w") as f:
            json.dump(torn, f)
    assert p.read_bytes() != old


def test_poe_and_combined_rules():
    from submission.arc.grid import grid_key
    from submission.arc.vote import RULES, rank

    preds = [P(A, "identity")] * 3 + [P(B, "rot90")] * 2 + [P(C, "flip_lr")]
    scores = {grid_key(A): [-9.0, -8.0], grid_key(B): [-1.0, -2.0], grid_key(C): [-0.5, -20.0]}
    assert [int(c.grid[0, 0]) for c in rank(preds, "vote")] == [0, 1, 2]
    # product of experts: B (-3) beats A (-17) and C (-20.5)
    assert [int(c.grid[0, 0]) for c in rank(preds, "poe", scores)] == [1, 0, 2]
    # combined: log(count) + mean logp: A ln3-8.5=-7.4, B ln2-1.5=-0.8, C 0-10.25
    assert [int(c.grid[0, 0]) for c in rank(preds, "combined", scores)] == [1, 0, 2]
    # unscored candidates keep vote order after the scored ones
    assert [int(c.grid[0, 0]) for c in rank(preds, "poe", {grid_key(C): [-1.0]})] == [2, 0, 1]
    assert set(RULES) == {"identity", "vote", "flat", "poe", "combined", "nvarc", "marc"}
    # identity: only untransformed prompts count, whatever the other transforms say
    mixed = [P(B, "rot90")] * 5 + [P(C, "identity"), P(A, "identity"), P(A, "identity")]
    assert [int(c.grid[0, 0]) for c in rank(mixed, "identity")] == [0, 2]
    with pytest.raises(ValueError):
        rank(preds, "nope")


def G(*rows):
    return np.array(rows, dtype=np.int8)


def test_marc_line_majority_can_make_a_grid_no_answer_is():
    from submission.arc.vote import line_majority

    s, q, t = ((1, 1), (5, 5)), ((3, 3), (4, 4)), ((6, 6), (4, 4))
    assert line_majority([s, q, t]) == ((1, 1), (4, 4))  # row 0: a three-way tie, first seen; row 1: (4, 4) twice
    assert line_majority([s, q, t], transpose=True) == ((1, 1), (5, 5))  # columns (1,5), (1,5): s's, first seen
    # rows of another shape count where their width matches: 2x2 answers' rows vote in a 3x2 majority
    a, b = ((1, 1), (2, 2)), ((9, 9), (2, 2), (5, 5))
    assert line_majority([a, a, b, b, b]) == b


def test_marc_top3_fills_missing_places_with_the_row_then_column_majority():
    from submission.arc.vote import marc_top3

    a, b, c = ((1, 2), (3, 4)), ((1, 2), (5, 6)), ((7, 8), (3, 4))
    assert marc_top3([a]) == [a, a, a]  # one answer: both majorities are that answer
    assert marc_top3([a, a, b]) == [a, b, a]  # the third place: row majority is a (taken) -> column majority a
    assert marc_top3([b, c, a, c]) == [c, b, a]  # three distinct: by count, ties first seen
    assert marc_top3([]) == []


def test_marc_vote_against_the_procedure_in_its_code():
    """Hand-made answers, the expected attempts worked out from MARC's procedure: three per group (the pool,
    identity, Transpose(), Flip(0), Flip(1), Rotate(180), Rotate(270)), three over those, the tie rule."""
    from submission.arc.vote import marc_vote, rank

    A, B, C = G([1, 1]), G([2, 2]), G([3, 3])
    # the pool: A x3, B x2, C x1 -> [A, B, C]; identity: C x1 -> [C, C, C]; rot90 is in no named group (MARC
    # votes in Rotate(270)'s group, the inverse of our rot270, not of rot90); flip_lr: B x2 -> [B, B, B]
    preds = ([P(A, "rot90")] * 3 + [P(B, "flip_lr")] * 2 + [P(C, "identity")])
    # candidates: A, B, C, C, C, C, B, B, B -> B x4, C x4, A x1: C1 = B (first seen of the tied), C2 = C, C3 = A
    assert [g.tolist() for g in marc_vote(preds)] == [B.tolist(), C.tolist()]
    # the tie rule: the second and third found equally often -> the identity prompts' favourite is second
    preds2 = [P(A, "rot90")] * 3 + [P(B, "rot90")] * 2 + [P(C, "rot90")] + [P(C, "identity")] * 2 + [P(B, "identity")]
    # pool [A, B, C]; identity [C, B, C] -> candidates A, B, C, C, B, C: C x3, B x2, A x1 -> C1 C, C2 B, C3 A
    assert [g.tolist() for g in marc_vote(preds2)] == [C.tolist(), B.tolist()]
    preds3 = [P(A, "rot90")] * 2 + [P(B, "rot90")] * 2 + [P(C, "transpose")] + [P(B, "identity")]
    # pool: A x2, B x3, C x1 -> [B, A, C]; identity [B, B, B]; transpose [C, C, C]
    # candidates B, A, C, B, B, B, C, C, C: B x4, C x4, A x1 -> C1 B, C2 C, C3 A: no tie between C2 and C3
    assert [g.tolist() for g in marc_vote(preds3)] == [B.tolist(), C.tolist()]
    preds4 = [P(A, "rot90")] * 2 + [P(B, "rot90")] + [P(C, "rot90")] + [P(A, "identity")]
    # pool [A, B, C]; identity [A, A, A] -> A x4, B x1, C x1: C2 B and C3 C tie, identity has neither -> C3
    assert [g.tolist() for g in marc_vote(preds4)] == [A.tolist(), C.tolist()]
    assert [c.grid.tolist() for c in rank(preds4, "marc")[:2]] == [A.tolist(), C.tolist()]

