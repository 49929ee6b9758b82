"""The run as every phase sees it: settings, tasks, tokenizer and format, durable state, cost model,
plans and clock, built complete by run.open_run before the first phase."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from submission.arc.data import TaskSet
from submission.arc.formats import GridFormat
from submission.arc.submission_io import build_submission, write_json_atomic
from submission.arc.vote import rank, top2
from submission.engines.api import Decoding
from submission.engines.config import GenerateConfig
from submission.pipeline.adapter_disk import AdapterDisk
from submission.pipeline.budget import CostModel, TaskPlan
from submission.pipeline.config import RunConfig, Settings
from submission.pipeline.state import RunState


def write_submission(path: Path, tasks: TaskSet, ids: list[str], state: RunState, select: str) -> None:
    """submission.json from the best predictions so far ([[0]] where there are none), written atomically."""
    attempts = {}
    for tid in ids:
        phase, tests = state.best(tid, len(tasks.tasks[tid].test))
        if phase:
            attempts[tid] = [top2(rank(t, select, state.task_scores(tid, i))) if t else [] for i, t in enumerate(tests)]
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
        """Rewrite submission.json from the best predictions so far (atomic)."""
        write_submission(self.sub_path, self.tasks, self.ids, self.state, self.cfg.select)
