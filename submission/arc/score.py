"""The leaderboard rule: per task, the fraction of its test outputs matched exactly by either
attempt; the score is the mean over the tasks of the solutions."""

from __future__ import annotations

from typing import Any

from submission.arc.grid import grids_equal


def score_task(entries: Any, truths: list[Any]) -> float:
    """Fraction of a task's test outputs that attempt_1 or attempt_2 matches."""
    if not truths:
        return 0.0
    hits = 0
    for i, truth in enumerate(truths):
        entry = entries[i] if isinstance(entries, list) and i < len(entries) else None
        if isinstance(entry, dict) and any(grids_equal(entry.get(k), truth) for k in ("attempt_1", "attempt_2")):
            hits += 1
    return hits / len(truths)


def score_submission(submission: dict[str, Any], solutions: dict[str, list[Any]]) -> tuple[float, dict[str, float]]:
    """(overall score, {task_id: task score}) over every task in `solutions`."""
    per_task = {tid: score_task(submission.get(tid), truths) for tid, truths in solutions.items()}
    return (sum(per_task.values()) / len(per_task) if per_task else 0.0), per_task
