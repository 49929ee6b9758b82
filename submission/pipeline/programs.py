"""The program phase: the DSL search (programs/search.py) over the run's tasks in CPU worker processes, right
after the fallback, before any model starts. Each searched task's verified programs, weighed by the checks
(programs/checks.py), are appended durably to OUT/programs.jsonl (one line per task, searched once per run
folder: resume reads it back); selection merges them with the model's candidates under --program-policy
(programs/merge.py) whenever submission.json is written. The phase ends at PROGRAM_BUDGET_SHARE of a budget
and keeps what it found; the tasks it did not reach are searched by the next run into the same folder."""

from __future__ import annotations

import math
import os
import time
from collections import Counter

from submission.arc.data import Task
from submission.arc.grid import Grid
from submission.pipeline.context import Run, task_attempts
from submission.programs.checks import Runner, checks, weigh
from submission.programs.merge import chosen_program
from submission.programs.record import ProgramResult

PROGRAM_BUDGET_SHARE = 0.1  # of a --budget: the search stops there (TTT and inference need the rest)
KEEP_PROGRAMS = 8  # verified programs kept per task (the search's first: the shortest compositions)
SEARCH_MEMORY_MB = 2048  # per search worker (the search caps its own processes)
SPARE_CORES = 1  # left to the driver and the engines' own threads


def search_workers(tasks: int) -> int:
    """CPU worker processes for the search: the cores less SPARE_CORES, at least one, at most one per task."""
    return max(1, min(tasks, (os.cpu_count() or 1) - SPARE_CORES))


def dsl_runner(source: str) -> Runner:
    """Run a DSL composition on a batch of grids (None where it fails): what the checks call."""
    from submission.programs.search import run_program

    def run(grids: list[Grid]) -> list[Grid | None]:
        out = []
        for g in grids:
            try:
                out.append(run_program(source, g))
            except Exception:  # a primitive that cannot apply to a transformed grid fails there, not the run
                out.append(None)
        return out

    return run


def weighed(task: Task, programs: list[ProgramResult]) -> list[ProgramResult]:
    """The first KEEP_PROGRAMS verified programs, each with the checks it fails weighed in."""
    kept = [p for p in programs if p.verified][:KEEP_PROGRAMS]
    return [weigh(p, checks(dsl_runner(p.source), task)) for p in kept]


def search_until(run: Run) -> float:
    """When the phase stops (time.monotonic()): PROGRAM_BUDGET_SHARE into a budget, never past the deadline."""
    return min(run.deadline, run.t0 + PROGRAM_BUDGET_SHARE * run.budget) if run.budget else math.inf


def describe(tasks: int, depth: int, seconds: float, budget: float) -> str:
    """The program phase in the plan: at most `seconds` per task on the search workers, cut at its budget share."""
    workers = search_workers(tasks)
    most = math.ceil(tasks / workers) * seconds
    cap = f", cut at {PROGRAM_BUDGET_SHARE:.0%} of the budget ({PROGRAM_BUDGET_SHARE * budget:.0f} s)" if budget else ""
    return (f"programs: DSL search to depth {depth}, {tasks} tasks x at most {seconds:g} s on {workers} CPU "
            f"worker(s): at most {most:.0f} s before any model starts{cap}")


def phase_programs(run: Run) -> int:
    """Search every task not searched yet in this folder; returns how many were searched now."""
    cfg = run.cfg
    todo = [t for t in run.ids if t not in run.state.searches]
    if cfg.program_policy == "off" or not todo or time.monotonic() >= search_until(run):
        return 0
    from submission.programs.search import search_tasks

    workers = search_workers(len(todo))
    print(f"programs: DSL search (depth {cfg.dsl_depth}, {cfg.dsl_seconds:g} s per task) over {len(todo)} tasks "
          f"on {workers} CPU worker(s)")
    done = 0
    for tid, outcome in search_tasks([run.tasks.tasks[t] for t in todo], depth=cfg.dsl_depth,
                                     time_s=cfg.dsl_seconds, memory_mb=SEARCH_MEMORY_MB, workers=workers,
                                     until=search_until(run)):
        run.state.add_programs(tid, weighed(run.tasks.tasks[tid], list(outcome.programs)), tried=outcome.tried,
                               seconds=round(outcome.seconds, 3), complete=outcome.complete)
        done += 1
    found = sum(bool(run.state.programs.get(t)) for t in todo)
    run.log(f"programs: {done} of {len(todo)} tasks searched, {found} with a verified program"
            + ("" if done == len(todo) else " (the phase's time ran out: a resumed run searches the rest)"))
    run.refresh()
    return done


def summary(run: Run) -> dict:
    """summary.json's `programs`: tasks searched, programs tried, tasks with a verified program, test inputs
    whose attempts hold a program's answer that transduction's top 2 did not (chosen), per origin."""
    cfg, state = run.cfg, run.state
    verified, chosen = Counter(), Counter()
    for tid in run.ids:
        programs = state.programs.get(tid, [])
        for origin in {p.origin for p in programs if p.verified}:
            verified[origin] += 1
        for i, (attempted, ranked) in enumerate(task_attempts(state, tid, len(run.tasks.tasks[tid].test),
                                                              cfg.select, cfg.program_policy)):
            if p := chosen_program(attempted, ranked, programs, i):
                chosen[p.origin] += 1
    searches = [state.searches[t] for t in run.ids if t in state.searches]
    return {"policy": cfg.program_policy, "searched": len(searches), "tried": sum(s.get("tried", 0) for s in searches),
            "complete": sum(bool(s.get("complete")) for s in searches),
            "search_s": round(sum(s.get("seconds", 0.0) for s in searches), 2),
            "verified": sum(verified.values()), "chosen": sum(chosen.values()),
            "per_origin": {o: {"verified": verified[o], "chosen": chosen[o]} for o in sorted(verified)},
            # the DSL runs this project's primitives in its workers; the sandbox runs model-written programs
            "sandbox": run.sandbox,
            "induction": {k: sum(i.get(k, 0) for i in state.induced.values())
                          for k in ("samples", "parsed", "distinct", "verified")} | {"tasks": len(state.induced)}}
