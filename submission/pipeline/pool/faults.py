"""Fault injection for tests, behind one hook per worker kind; a no-op unless ARC_TTT_FAULTS is set.

    ARC_TTT_FAULTS="taskA=raise;taskB=hang;taskC=nan;taskD=oom;taskE=gen_hang;slow_request_s=0.5;slow_train_s=4;count=/tmp/n"

A task fault fires at ladder level 0 (append '*' to fire at every level). `slow_request_s` makes the
generator take that long per request (a slow engine, for deadline tests); `slow_train_s` adds that
much to every TTT item (a worker that is surely busy when a test kills it); `slow_batch_s` makes a
generation call spend that long per request before it answers anything (compute that grows with the
batch, as on a machine slower than its profile); `count` appends one line
per generated request to a file (resume tests count what was generated again); `slow_score_s` and
`score_count` do the same for PoE scoring calls (one line per call: its task); `load_crash=1` makes
every worker die while it builds its engine; `slow_load_s` adds that much to every engine start (a
machine slower than its profile: the +2 h Kaggle case).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any, Callable, Iterator

from submission.engines.api import ScoreRequest

ENV = "ARC_TTT_FAULTS"


def spec() -> dict[str, str]:
    text = os.environ.get(ENV, "")
    return dict(kv.split("=", 1) for kv in text.split(";") if "=" in kv)


def at_load() -> None:
    """`load_crash=1`: the worker dies building its engine, with a traceback (a broken install, an OOM)."""
    s = spec()
    time.sleep(float(s.get("slow_load_s", 0)))
    if s.get("load_crash"):
        raise RuntimeError("injected fault: the engine failed to load")


def task_fault(task_id: str, level: int, kinds: tuple[str, ...]) -> str | None:
    """The fault a test asked for on this task at this ladder level, if any."""
    f = spec().get(task_id)
    if not f:
        return None
    kind, every = f.rstrip("*"), f.endswith("*")
    return kind if kind in kinds and (every or level == 0) else None


def hook_train(handle: Callable) -> Callable:
    """The TTT item handler, with the faults a test asked for."""
    s = spec()
    if not s:
        return handle
    delay = float(s.get("slow_train_s", 0))

    def faulty(item):
        time.sleep(delay)
        fault = task_fault(item.task.id, item.level, ("raise", "hang", "nan", "oom"))
        if fault == "hang":
            time.sleep(1e9)
        if fault == "raise":
            raise RuntimeError("injected fault")
        if fault == "oom":
            import torch

            raise getattr(torch.cuda, "OutOfMemoryError", RuntimeError)("CUDA out of memory (injected)")
        if fault == "nan":  # the weights blow up: a real NaN/inf loss
            item = replace(item, train=replace(item.train, learning_rate=1e20, max_steps=4))
        return handle(item)

    return faulty


def hook_generate(handle: Callable) -> Callable:
    """The generation item handler, with the faults a test asked for."""
    s = spec()
    if not s:
        return handle
    delay, count, batch_delay = float(s.get("slow_request_s", 0)), s.get("count"), float(s.get("slow_batch_s", 0))
    score_delay, score_count = float(s.get("slow_score_s", 0)), s.get("score_count")

    def faulty(item):
        if any(task_fault(t, 0, ("gen_hang",)) for t in item.task_ids):
            time.sleep(1e9)
        if not isinstance(item.requests[0], ScoreRequest):
            time.sleep(batch_delay * len(item.requests))
        result = handle(item)
        if not isinstance(result, Iterator):  # a score item: one list for the whole call
            time.sleep(score_delay)
            if score_count:
                with open(score_count, "a") as f:
                    f.write(f"score {','.join(item.task_ids)}\n")
            return result
        return _slowed(result, delay, count)

    return faulty


def _slowed(parts: Iterator[Any], delay: float, count: str | None) -> Iterator[Any]:
    for part in parts:
        time.sleep(delay)
        if count:
            with open(count, "a") as f:
                f.write("1\n")
        yield part
