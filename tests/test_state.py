"""Durable run state: a torn last line in each .jsonl (a kill mid-write) costs only that record, and
the records appended after it are read back too."""

import json

import pytest

from submission.pipeline.state import Answer, RunState


def answer(tid: str, key: str, grid) -> Answer:
    return Answer(tid, "main", key, 0, "identity", True, (grid,), (-0.5,), 4, 0.1)


@pytest.mark.parametrize("name", ["train.jsonl", "predictions.jsonl", "scores.jsonl"])
def test_a_torn_last_line_costs_only_itself_and_the_next_write_lands(tmp_path, name):
    state = RunState(tmp_path)
    state.add_train({"task_id": "a", "level": 0, "status": "ok", "adapter": "x"})
    state.add_answers([answer("a", "k1", [[1, 2]])])
    state.add_scores("a", [[([[1, 2]], [-0.1, -0.2])]])
    path = tmp_path / name
    whole = path.read_text()
    torn = json.dumps({"task_id": "b", "phase": "main", "key": "k9"})[:25]
    path.write_text(whole + torn)  # a kill in the middle of the next record

    again = RunState.load(tmp_path)  # the torn record is dropped, the rest is there
    assert again.train["a"][0]["status"] == "ok" and again.finished("a", "main") == {"k1"}
    assert list(again.scores) == ["a"]

    again.add_train({"task_id": "c", "level": 0, "status": "ok", "adapter": "y"})  # the resumed run goes on
    again.add_answers([answer("c", "k2", [[3]])])
    again.add_scores("c", [[([[3]], [-0.3])]])
    third = RunState.load(tmp_path)
    assert set(third.train) == {"a", "c"} and third.finished("c", "main") == {"k2"} and set(third.scores) == {"a", "c"}
    assert path.read_text().startswith(whole + torn + "\n")  # the fragment stays alone on its line


def test_the_vote_does_not_depend_on_the_order_answers_arrive_in(tmp_path):
    """Two workers land the same answers in another order than one: the ranking (ties broken by first
    seen) must come out the same, or the worker count changes the submission."""
    from submission.arc.vote import rank, top2

    answers = [Answer("t", "main", f"0|{tr}|{k}", 0, tr, tr == "identity", (g,), (-1.0,), 3, 0.1)
               for k, (tr, g) in enumerate([("rot90", [[1, 0]]), ("flip_lr", [[7, 0]]), ("rot180", [[2]])])]
    tops = []
    for name, order in (("one", answers), ("two", answers[::-1])):
        state = RunState(tmp_path / name)
        state.out.mkdir()
        state.add_answers(order)
        tops.append([g.tolist() for g in top2(rank(state.best("t", 1)[1][0], "vote"))])
    assert tops[0] == tops[1] and len(tops[0]) == 2  # a three-way tie: which two, in which order, is fixed
