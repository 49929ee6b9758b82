"""The fit behind the program checks' weights (benchmarks/tune_checks.py): pure functions over program records."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from tune_checks import WEIGHT_MIN, Fit, fit_weights, flat, scores, split, verdict  # noqa: E402


def rows(check: str | None, n: int, right: int, tag: str = "", per_task: int = 1) -> list[dict]:
    """n programs (per_task to a task, in tasks named by `tag`) failing `check` (None: nothing), the first
    `right` of them right."""
    return [{"task": f"{tag}{check}-{i // per_task}", "checks": (check,) if check else (), "right": i < right}
            for i in range(n)]


def by_check(fits: list[Fit]) -> dict[str, Fit]:
    return {f.check: f for f in fits}


def test_a_check_whose_programs_are_right_half_as_often_gets_about_half_weight():
    data = rows(None, 200, 180) + rows("x", 200, 90)
    fit = by_check(fit_weights(data, checks=["x"], n_boot=500))["x"]
    assert (fit.programs, fit.right, fit.tasks) == (200, 90, 200)
    assert fit.weight == pytest.approx(0.5, abs=0.02)
    assert WEIGHT_MIN <= fit.lo < fit.weight < fit.hi <= 1.0
    assert fit.hi - fit.lo < 0.4  # 200 tasks each side: the interval is informative


def test_weights_are_clipped_and_an_unseen_check_is_neutral():
    data = rows(None, 50, 25) + rows("never_right", 100, 0) + rows("always_right", 30, 30)
    fits = by_check(fit_weights(data, checks=["never_right", "always_right", "unseen"], n_boot=200))
    assert fits["never_right"].weight == WEIGHT_MIN
    assert fits["always_right"].weight == 1.0
    assert fits["unseen"].programs == 0 and math.isnan(fits["unseen"].weight)  # no data: no weight, not a guess


def test_one_task_with_many_programs_counts_once_per_task():
    """60 wrong flagged programs in one task against 20 tasks whose flagged program is right."""
    data = rows(None, 40, 40) + rows("x", 20, 20) + rows("x", 60, 0, tag="big", per_task=60)
    per_task = by_check(fit_weights(data, checks=["x"], n_boot=200))["x"]
    per_program = by_check(fit_weights(data, checks=["x"], per_task=False, n_boot=200))["x"]
    assert per_task.programs == per_program.programs == 80 and per_task.tasks == 21
    assert per_task.weight > 0.85 > 0.4 > per_program.weight


def test_the_verdict_keeps_a_constant_inside_the_interval_or_without_data():
    fit = Fit("x", programs=40, right=20, tasks=40, precision=0.5, weight=0.5, lo=0.4, hi=0.6)
    assert verdict(fit, 0.45).startswith("keep: the constant is inside")
    assert verdict(fit, 0.8) == "change to 0.50"
    assert "too few" in verdict(Fit("x", 2, 0, 2, 0.25, 0.3, 0.05, 1.0), 0.8)


def test_the_fit_needs_programs():
    with pytest.raises(ValueError, match="no verified programs"):
        fit_weights([])


def test_the_split_is_seeded_and_a_shorter_one_is_its_prefix():
    ids = [f"{i:08x}" for i in range(50)]
    assert split(ids) == split(list(reversed(ids)))
    assert split(ids, 10) == split(ids)[:10] and sorted(split(ids)) == ids
    assert split(ids, seed=1) != split(ids)


def test_a_flagged_program_drops_behind_two_others_only_when_weights_rank():
    """Three distinct answers; the right one fails no check, two wrong ones fail one and come first."""
    def program(value, checks):
        return {"source": str(value), "checks": list(checks), "right": [value == 1], "outputs": [[[value]]]}

    records = {"t": {"task": "t", "tests": 1,
                     "programs": [program(2, ["c"]), program(3, ["c"]), program(1, [])]}}
    truth = {"t": [[[1]]]}
    assert scores(records, None, truth).tolist() == [[0.0, 0.0]]  # search order: the right one is third
    assert scores(records, {"c": 0.5}, truth).tolist() == [[1.0, 1.0]]
    assert [r["right"] for r in flat(records)] == [False, False, True]
    assert np.all(scores(records, {"c": 1.0}, truth) == 0)  # ties keep the search's order
