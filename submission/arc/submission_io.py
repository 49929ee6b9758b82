"""submission.json: build one from selections with [[0]] fallbacks, validate it against a
challenges file, and write it atomically (temp file + fsync + rename) so it is never partial."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from submission.arc.data import TaskSet
from submission.arc.grid import grid_problem, to_list

FALLBACK = [[0]]


def build_submission(tasks: TaskSet, attempts: Mapping[str, Sequence[Sequence[Any] | None]]) -> dict[str, list]:
    """{task_id: [{"attempt_1", "attempt_2"} per test input]} for every id in the challenges;
    `attempts[id][i]` is a list of up to 2 grids for test input i; anything missing is [[0]]."""
    sub = {}
    for tid in tasks.ids:
        per_test = attempts.get(tid) or []
        entries = []
        for i in range(tasks.num_tests(tid)):
            given = per_test[i] if i < len(per_test) and per_test[i] else []
            grids = [to_list(g) if hasattr(g, "shape") else g for g in given]
            grids = [g for g in grids if grid_problem(g) is None] or [FALLBACK]
            entries.append({"attempt_1": grids[0], "attempt_2": grids[1] if len(grids) > 1 else grids[0]})
        sub[tid] = entries
    return sub


def validate_submission(sub: Any, tasks: TaskSet) -> list[str]:
    """Every problem with a submission for these challenges (empty list: valid)."""
    if not isinstance(sub, dict):
        return [f"top level is {type(sub).__name__}, expected an object {{task_id: [...]}}"]
    problems = [f"task {tid!r}: missing" for tid in tasks.ids if tid not in sub]
    problems += [f"task {tid!r}: not in the challenges" for tid in sub if tid not in tasks.raw]
    for tid in tasks.ids:
        entries = sub.get(tid)
        if entries is None:
            continue
        if not isinstance(entries, list):
            problems.append(f"task {tid!r}: expected a list of {{attempt_1, attempt_2}}, got {type(entries).__name__}")
            continue
        if len(entries) != tasks.num_tests(tid):
            problems.append(f"task {tid!r}: {len(entries)} entries, the challenges have {tasks.num_tests(tid)} "
                            "test inputs")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                problems.append(f"task {tid!r}[{i}]: expected an object with attempt_1 and attempt_2")
                continue
            for key in ("attempt_1", "attempt_2"):
                if key not in entry:
                    problems.append(f"task {tid!r}[{i}]: missing {key}")
                elif (p := grid_problem(entry[key])) is not None:
                    problems.append(f"task {tid!r}[{i}].{key}: {p}")
    return problems


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
