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
    assert set(RULES) == {"identity", "vote", "flat", "poe", "combined", "nvarc"}
    # identity: only untransformed prompts count, whatever the other transforms say
    mixed = [P(B, "rot90")] * 5 + [P(C, "identity"), P(A, "identity"), P(A, "identity")]
    assert [int(c.grid[0, 0]) for c in rank(mixed, "identity")] == [0, 2]
    with pytest.raises(ValueError):
        rank(preds, "nope")
