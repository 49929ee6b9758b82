import json

import pytest

from submission.arc.data import BUNDLED, DataError, load_challenges, load_solutions, safe_name, solutions_for


def write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


BROKEN = {
    "ragged": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]},
    "colour12": {"train": [{"input": [[1]], "output": [[12]]}], "test": [{"input": [[1]]}]},
    "big": {"train": [{"input": [[0] * 31] * 31, "output": [[1]]}], "test": [{"input": [[1]]}]},
    "notest": {"train": [{"input": [[1]], "output": [[1]]}], "test": []},
    "nooutput": {"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]},
    "floats": {"train": [{"input": [[1.5]], "output": [[1]]}], "test": [{"input": [[1]]}]},
    "bools": {"train": [{"input": [[True]], "output": [[1]]}], "test": [{"input": [[1]]}]},
    "empty_row": {"train": [{"input": [[]], "output": [[1]]}], "test": [{"input": [[1]]}]},
    "notdict": [1, 2],
}


def test_invalid_tasks_are_quarantined_with_reasons(tmp_path, task_json):
    p = write(tmp_path, "c.json", {"good": task_json, **BROKEN})
    ts = load_challenges(p)
    assert list(ts.tasks) == ["good"]
    assert set(ts.invalid) == set(BROKEN)
    assert "train[0].input" in ts.invalid["ragged"] and "ragged" in ts.invalid["ragged"]
    assert "12" in ts.invalid["colour12"] and "train[0].output" in ts.invalid["colour12"]
    assert "31" in ts.invalid["big"]
    assert "'test'" in ts.invalid["notest"]
    assert "output" in ts.invalid["nooutput"]
    assert ts.ids[0] == "good" and len(ts.ids) == 1 + len(BROKEN)
    assert ts.num_tests("good") == 2 and ts.num_tests("notest") == 1 and ts.num_tests("notdict") == 1


@pytest.mark.parametrize("content,match", [(None, "not found"), ("{nope", "not valid JSON"),
                                           ("[1, 2]", "expected a JSON object")])
def test_file_level_problems_raise_one_clear_error(tmp_path, content, match):
    p = tmp_path / "c.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(DataError, match=match) as e:
        load_challenges(p)
    assert str(p) in str(e.value)


def test_bundled_sets_load_with_solutions():
    ts = load_challenges("arc1-eval")
    sol = load_solutions("arc1-eval")
    assert len(ts.tasks) == 400 and not ts.invalid and set(sol) == set(ts.ids)
    tid = ts.ids[0]
    assert len(sol[tid]) == len(ts.tasks[tid].test)
    assert all(p.output is None for p in ts.tasks[tid].test)  # answers are not leaked into the tasks
    assert len(load_challenges("arc2-eval").tasks) == 120
    assert set(BUNDLED) >= {"arc1-train", "arc1-eval", "arc2-train", "arc2-eval", "kaggle2025-eval"}
    assert solutions_for("arc1-eval") == "arc1-eval"


def test_solutions_file_paired_with_challenges(tmp_path, task_json):
    c = write(tmp_path, "x_challenges.json", {"a": task_json})
    assert solutions_for(c) is None
    s = write(tmp_path, "x_solutions.json", {"a": [[[2]], [[2]]]})
    assert solutions_for(c) == str(s)
    assert load_solutions(s) == {"a": [[[2]], [[2]]]}


@pytest.mark.parametrize("tid", ["../../x", "/etc/passwd", "a/b", "..", ".", "", "x\x00y", "é" * 100, "C:\\w"])
def test_safe_name_never_escapes(tid):
    name = safe_name(tid)
    assert "/" not in name and "\\" not in name and name not in (".", "..", "") and not name.startswith(".")
    assert len(name) <= 80 and name.isascii()


def test_safe_name_keeps_normal_ids_and_distinguishes_others():
    assert safe_name("00576224") == "00576224"
    assert safe_name("a/b") != safe_name("a_b") != safe_name("a:b")
