"""Breadth-first search over compositions of the DSL's primitives (dsl.py) for programs that reproduce
every demo output of an ARC task, on CPU, with a clock and a memory cap.

Per task: the demos are searched in each of the 8 D8 frames (every grid turned by the same t; a program
P found there is reported as t, P, t^-1), level by level (every frame's depth-1 programs before any
depth-2 one), pruning a composition whose intermediate grids on all inputs equal ones already reached.
A program whose outputs match the demos up to one consistent colour map gets that map as its last step.

    python -c "from submission.arc.data import load_challenges; from submission.programs.search import search; \
print(search(load_challenges('arc1-train').tasks['3c9b0459']).programs[0].source)"
"""

from __future__ import annotations

import importlib
import math
import multiprocessing as mp
import multiprocessing.connection
import os
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from submission.arc.augment import D8, D8_INVERSE, D8_NAMES
from submission.arc.data import Pair, Task
from submission.arc.grid import Grid, grid_key, to_list
from submission.programs.dsl import DIRECTIONAL, Step
from submission.programs.record import ProgramResult
from submission.programs.steps import apply_step, candidates, make, program_text, run_program

__all__ = ["SearchOutcome", "run_program", "search", "search_tasks"]

MAX_ANSWERS = 3     # distinct test-output sets kept per task: pass@2 reads two, one spare for the merge
MAX_FRONTIER = 50_000  # states kept per level across frames: bounds memory at depth 3 (a state is ~5 grids)


@dataclass
class SearchOutcome:
    programs: list[ProgramResult]  # verified programs, best first, one per distinct set of test outputs
    tried: int                     # primitive applications (one step on every input of the task)
    seconds: float
    complete: bool                 # False: the time cap (or the frontier cap) cut the search
    peak_rss_mb: float = 0.0       # ru_maxrss of the process that searched (search_tasks' worker)


@dataclass
class _Frame:
    """The task turned by D8[d8]: inputs (demos then tests), demo outputs, and the steps to try."""
    d8: int
    outputs: tuple[Grid, ...]
    steps: list[Step]


def _recolor_map(got: tuple[Grid, ...], want: tuple[Grid, ...]) -> tuple[int, ...] | None:
    """Flattened (from, to) pairs of the one colour map that turns every `got` into its `want`, or None."""
    lut = -np.ones(10, dtype=np.int64)
    for g, w in zip(got, want):
        if g.shape != w.shape:
            return None
        src, dst = g.ravel().astype(np.int64), w.ravel().astype(np.int64)
        for c in np.unique(src):
            targets = np.unique(dst[src == c])
            if targets.size != 1 or (lut[c] >= 0 and lut[c] != targets[0]):
                return None
            lut[c] = targets[0]
    pairs = [(c, int(t)) for c, t in enumerate(lut) if t >= 0 and t != c]
    return tuple(x for p in pairs for x in p) if pairs else None


def _colors(grids: tuple[Grid, ...]) -> set[int]:
    return set().union(*(np.unique(g).tolist() for g in grids))


def _rank(steps: tuple[Step, ...], d8: int, cmap: bool) -> tuple:
    """Shorter first; then no colour map, the identity frame, fewer parameters, and the text."""
    return (len(steps) + cmap, cmap, d8 != 0, sum(len(a) for _, a in steps), program_text(steps))


class _Finder:
    """Collects verified programs, keeping the best one per distinct set of test outputs."""

    def __init__(self, task: Task):
        self.task = task
        self.n_demo = len(task.train)
        self.found: dict[tuple, tuple[tuple, ProgramResult]] = {}

    def check(self, frame: _Frame, steps: tuple[Step, ...], state: tuple[Grid, ...]) -> None:
        demo = state[:self.n_demo]
        exact = all(g.shape == w.shape and np.array_equal(g, w) for g, w in zip(demo, frame.outputs))
        cmap = None if exact else _recolor_map(demo, frame.outputs)
        if not exact and cmap is None:
            return
        if cmap and not _colors(state[self.n_demo:]) <= _colors(demo):
            return  # the map was read off the demos' colours: a test colour it never saw makes its answer a guess
        full = list(steps) + ([("recolor", cmap)] if cmap else [])
        recolor = make(full[-1]) if cmap else None
        inv = D8[D8_INVERSE[frame.d8]]
        tests = []
        for g in state[self.n_demo:]:
            out = np.ascontiguousarray(inv(recolor(g) if recolor else g), dtype=np.int8)
            tests.append(out)
        key = tuple(grid_key(t) for t in tests)
        rank = _rank(steps, frame.d8, cmap is not None)
        if key in self.found and self.found[key][0] <= rank:
            return
        if frame.d8:
            full = [(D8_NAMES[frame.d8], ()), *full, (D8_NAMES[D8_INVERSE[frame.d8]], ())]
        self.found[key] = (rank, ProgramResult(origin="dsl", source=program_text(full),
                                               demo_fits=(True,) * self.n_demo, test_outputs=tuple(tests)))

    def best(self) -> list[ProgramResult]:
        ranked = sorted(self.found.values(), key=lambda rp: rp[0])
        return [p for _, p in ranked[:MAX_ANSWERS]]


def _frames(task: Task) -> tuple[list[_Frame], list[tuple[Grid, ...]]]:
    """The distinct D8 frames of a task (a frame whose grids repeat an earlier one's is dropped), and
    each frame's starting state: its inputs, demos first."""
    frames, starts, seen = [], [], set()
    for d8, t in enumerate(D8):
        inputs = tuple(np.ascontiguousarray(t(p.input)) for p in (*task.train, *task.test))
        outputs = tuple(np.ascontiguousarray(t(p.output)) for p in task.train)
        key = tuple(grid_key(g) for g in (*inputs, *outputs))
        if key in seen:
            continue
        seen.add(key)
        steps = candidates(list(zip(inputs, outputs)), inputs[len(task.train):])
        frames.append(_Frame(d8, outputs, steps))
        starts.append(inputs)
    return frames, starts


def search(task: Task, depth: int = 2, time_s: float = 2.0, prune: bool = True) -> SearchOutcome:
    """Programs of at most `depth` steps (plus a final colour map) reproducing every demo, best first;
    stops at the first depth that yields one, at `time_s` seconds, or when the frontier is full.
    `prune=False` keeps duplicate intermediate states (for measuring what pruning saves)."""
    start = time.monotonic()
    deadline = start + time_s
    frames, starts = _frames(task)
    finder = _Finder(task)
    seen = [{tuple(grid_key(g) for g in s)} for s in starts]
    frontier = [[((), s)] for s in starts]
    finder.check(frames[0], (), starts[0])
    tried, complete = 0, True
    for level in range(1, depth + 1):
        if finder.found:
            break
        nxt: list[list] = [[] for _ in frames]
        kept = 0
        for fi, frame in enumerate(frames):
            prims = [(step, make(step)) for step in frame.steps]
            directional = [(step, f) for step, f in prims if step[0] in DIRECTIONAL]
            for steps, state in frontier[fi]:
                # in a turned frame, a program without a directional step repeats one of the identity frame's
                plain = frame.d8 != 0 and not any(name in DIRECTIONAL for name, _ in steps)
                for step, f in (directional if plain and level == depth else prims):
                    if time.monotonic() > deadline:
                        return _outcome(finder, tried, start, False)
                    tried += 1
                    new = _apply(f, state)
                    if new is None:
                        continue
                    key = tuple(grid_key(g) for g in new)
                    if prune and key in seen[fi]:
                        continue
                    path = (*steps, step)
                    if not plain or step[0] in DIRECTIONAL:
                        finder.check(frame, path, new)
                    if level < depth and kept < MAX_FRONTIER:
                        seen[fi].add(key)
                        nxt[fi].append((path, new))
                        kept += 1
                    elif level < depth:
                        complete = False
        frontier = nxt
    return _outcome(finder, tried, start, complete)


def _apply(f, state: tuple[Grid, ...]) -> tuple[Grid, ...] | None:
    out = []
    for g in state:
        r = apply_step(f, g)
        if r is None:
            return None
        out.append(r)
    return tuple(out)


def _outcome(finder: _Finder, tried: int, start: float, complete: bool) -> SearchOutcome:
    return SearchOutcome(finder.best(), tried, time.monotonic() - start, complete)


# -- worker processes ------------------------------------------------------------------------------

def _task_data(task: Task) -> dict:
    """A task as plain lists, to cross a process boundary."""
    return {"id": task.id, "train": [[to_list(p.input), to_list(p.output)] for p in task.train],
            "test": [to_list(p.input) for p in task.test]}


def _task_from(data: dict) -> Task:
    arr = lambda g: np.asarray(g, dtype=np.int8)  # noqa: E731
    return Task(data["id"], tuple(Pair(arr(x), arr(y)) for x, y in data["train"]),
                tuple(Pair(arr(x)) for x in data["test"]))


def _outcome_data(o: SearchOutcome) -> dict:
    return {"programs": [{"source": p.source, "demo_fits": list(p.demo_fits),
                          "test_outputs": [None if g is None else to_list(g) for g in p.test_outputs]}
                         for p in o.programs],
            "tried": o.tried, "seconds": o.seconds, "complete": o.complete, "peak_rss_mb": o.peak_rss_mb}


def _outcome_from(d: dict) -> SearchOutcome:
    progs = [ProgramResult(origin="dsl", source=p["source"], demo_fits=tuple(p["demo_fits"]),
                           test_outputs=tuple(None if g is None else np.asarray(g, dtype=np.int8)
                                              for g in p["test_outputs"])) for p in d["programs"]]
    return SearchOutcome(progs, d["tried"], d["seconds"], d["complete"], d["peak_rss_mb"])


def _worker(conn, memory_mb: int, searcher: str) -> None:
    """Take (task, depth, time_s) from conn, answer with the outcome as plain data, until None."""
    limit = memory_mb * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    module, name = searcher.split(":")
    run = getattr(importlib.import_module(module), name)
    while (job := conn.recv()) is not None:
        data, depth, time_s = job
        t0 = time.monotonic()
        try:
            outcome = run(_task_from(data), depth, time_s)
        except MemoryError:  # the cap hit inside numpy or Python: report it as a failed task, keep the worker
            outcome = SearchOutcome([], 0, time.monotonic() - t0, False)
        outcome.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send(_outcome_data(outcome))


class _Slot:
    """One worker process and the task it is running."""

    def __init__(self, ctx, memory_mb: int, searcher: str):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, memory_mb, searcher), daemon=True)
        self.proc.start()
        child.close()
        self.task: str | None = None
        self.started = 0.0

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def search_tasks(tasks: Iterable[Task], depth: int = 2, time_s: float = 2.0, memory_mb: int = 2048,
                 workers: int = 1, until: float | Callable[[], float] = math.inf,
                 searcher: str = "submission.programs.search:search") -> Iterator[tuple[str, SearchOutcome]]:
    """Search tasks in `workers` processes, each capped at `memory_mb` of address space; yield
    (task_id, outcome) as tasks finish. No task starts after `until` (a time.monotonic() deadline, or a function
returning one, asked before each start: a caller can stop the search early). A worker
    that dies yields an empty, incomplete outcome for its task and is replaced. `searcher` ("module:function",
    called as f(task, depth, time_s)) is the search each worker runs; tests name a fake.

    Workers are spawned, not forked: the caller may hold threads (engines, progress bars), and a forked
    child of a threaded process can deadlock on a lock some other thread held; a spawn costs a fresh
    interpreter (~0.2 s) per worker, not per task."""
    ctx = mp.get_context("spawn")
    queue = iter(tasks)
    with _single_threaded_blas():
        slots = [_Slot(ctx, memory_mb, searcher) for _ in range(max(1, workers))]
    grace = 30.0 + 2 * time_s  # a live worker past this on one task is stuck: killed and reported failed
    try:
        while True:
            for slot in slots:
                if slot.task is None and time.monotonic() < (until() if callable(until) else until):
                    task = next(queue, None)
                    if task is not None:
                        slot.task, slot.started = task.id, time.monotonic()
                        slot.conn.send((_task_data(task), depth, time_s))
            busy = [s for s in slots if s.task is not None]
            if not busy:
                return
            ready = mp.connection.wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=1.0)
            for i, slot in enumerate(slots):
                if slot.task is None:
                    continue
                task_id, result = slot.task, None
                if slot.conn in ready or slot.proc.sentinel in ready:
                    try:
                        result = _outcome_from(slot.conn.recv()) if slot.conn.poll() else None
                    except (EOFError, OSError):
                        result = None
                    if result is None and slot.proc.is_alive():
                        continue
                elif time.monotonic() - slot.started < grace:
                    continue
                if result is None:  # died (memory, signal) or stuck: a fresh worker takes its place
                    result = SearchOutcome([], 0, time.monotonic() - slot.started, False)
                    slot.task = None
                    slot.stop()
                    with _single_threaded_blas():
                        slots[i] = _Slot(ctx, memory_mb, searcher)
                slot.task = None
                yield task_id, result
    finally:
        for slot in slots:
            slot.stop()


class _single_threaded_blas:
    """Spawned workers inherit the environment at start: one BLAS thread keeps their address space small."""

    KEYS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.KEYS}
        os.environ.update({k: "1" for k in self.KEYS})

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
