"""The run as every phase sees it: settings, tasks, tokenizer and format, durable state, cost model,
plans and clock, built complete by run.open_run before the first phase."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from submission.arc.data import TaskSet
from submission.arc.formats import GridFormat
from submission.arc.grid import Grid
from submission.arc.submission_io import build_submission, write_json_atomic
from submission.arc.vote import Candidate, rank
from submission.engines.api import Decoding
from submission.engines.config import GenerateConfig
from submission.pipeline.adapter_disk import AdapterDisk
from submission.pipeline.budget import CostModel, TaskPlan
from submission.pipeline.config import RunConfig, Settings
from submission.pipeline.state import RunState
from submission.programs import merge


def task_attempts(state: RunState, tid: str, n_tests: int, select: str,
                  policy: str = "off") -> list[tuple[list[Grid], list[Candidate]]]:
    """Per test input: the attempts (transduction's candidates ranked by `select`, merged with the task's stored
    programs under `policy`, programs/merge.py) and transduction's ranked candidates."""
    _, tests = state.best(tid, n_tests)
    programs = state.programs.get(tid, [])
    out = []
    for i, t in enumerate(tests):
        ranked = rank(t, select, state.task_scores(tid, i)) if t else []
        out.append((merge.attempts(ranked, programs, i, policy, len(t)), ranked))
    return out


def write_submission(path: Path, tasks: TaskSet, ids: list[str], state: RunState, select: str,
                     policy: str = "off") -> None:
    """submission.json from the best predictions so far and the stored programs ([[0]] where there are none),
    written atomically."""
    attempts = {tid: [a for a, _ in task_attempts(state, tid, len(tasks.tasks[tid].test), select, policy)]
                for tid in ids}
    write_json_atomic(path, build_submission(tasks, attempts))


@dataclass
class Run:
    """What every phase reads: the settings, tasks, tokenizer, state, cost model and clock."""

    settings: Settings
    tasks: TaskSet
    ids: list[str]
    out: Path
    sub_path: Path
    state: RunState
    t0: float
    budget: float
    deadline: float  # time.monotonic() by which every worker is stopped
    log_path: Path | None  # engine output (None: the console, --verbose)
    seed: dict[str, int]  # per task, whatever worker runs it
    tokenizer: Any  # the model folder's own (transformers), loaded once in the driver
    fmt: GridFormat  # the preset's text format, ending answers with the tokenizer's eos
    decoding: Decoding  # the answer tokens and stop tokens, checked against the tokenizer
    max_len: int  # prompt + answer tokens: --max-model-len capped at the model's own
    workers: int
    gpus: list[str] | None  # one per worker (None: CPU)
    costs: CostModel
    plans: dict[str, TaskPlan]
    disk: AdapterDisk | None = None  # the bound on live adapters (None: not sized yet)
    events: list[str] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)  # tasks whose adapter's answering pass ran in this process
    sandbox: dict[str, str] | None = None  # the program sandbox's layers, once a phase started it

    @property
    def cfg(self) -> RunConfig:
        return self.settings.run

    @property
    def gen(self) -> GenerateConfig:
        return self.settings.gen

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, msg: str) -> None:
        self.events.append(msg)
        print(msg)

    def refresh(self) -> None:
        """Rewrite submission.json from the best predictions so far (atomic; one writer at a time)."""
        with self.state.lock:
            write_submission(self.sub_path, self.tasks, self.ids, self.state, self.cfg.select,
                             self.cfg.program_policy)
