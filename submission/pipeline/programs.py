"""The DSL search (programs/search.py) over the run's tasks in CPU worker processes. Each searched task's verified
programs, weighed by the checks (programs/checks.py), are appended durably to OUT/programs.jsonl (one line per
task, searched once per run folder: resume reads it back); selection merges them with the model's candidates
under --program-policy (programs/merge.py) whenever submission.json is written.

Where it runs (--program-search):
  before  a phase right after the fallback, before any model starts; it ends at PROGRAM_BUDGET_SHARE of a budget
          and keeps what it found (the tasks it did not reach are searched by the next run into the same folder)
  beside  a thread that feeds CPU worker processes while the GPU phases run (the 2024 runner-up ran icecuber's
          search on the cores TTT left idle), to the end of the run; each task's programs are stored as
          it finishes and reach submission.json within BESIDE_REFRESH_S
  auto    beside when the GPU workers leave a core spare (CORES_PER_GPU_WORKER each, SPARE_CORES for the
          driver), else before: on a CPU-only machine the engines need every core"""

from __future__ import annotations

import math
import os
import threading
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
CORES_PER_GPU_WORKER = 2  # a GPU worker's process (trainer or vLLM) and its tokenising / scheduling
FINISH_MARGIN_S = 5.0  # a search beside the GPU phases starts no task this close to the deadline
BESIDE_REFRESH_S = 10.0  # beside: submission.json is rebuilt (every task re-ranked) at most this often
# beside the GPU phases the search shares the machine's memory with vLLM and the trainers (icecuber's search
# crashed beside vLLM at 80 % of RAM): its workers together plan on at most this share, at WORKER_RSS_MB each
# (the largest peak measured: 158 MB at depth 3, benchmarks/README.md; RLIMIT_AS still caps each one)
SEARCH_RAM_SHARE = 0.1
WORKER_RSS_MB = 256


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


def spare_cores(gpus: list[str] | None) -> int:
    """CPU cores the GPU workers and the driver leave idle (0 on a CPU-only run: its engines take them all)."""
    if not gpus:
        return 0
    return (os.cpu_count() or 1) - SPARE_CORES - CORES_PER_GPU_WORKER * len(gpus)


def beside_workers(tasks: int, gpus: list[str] | None) -> int:
    """Search workers beside the GPU phases: the spare cores, no more than SEARCH_RAM_SHARE of the RAM allows."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        ram = 0
    by_ram = int(SEARCH_RAM_SHARE * ram / (WORKER_RSS_MB << 20)) if ram > 0 else 1
    return max(1, min(tasks, spare_cores(gpus), by_ram))


def search_mode(mode: str, gpus: list[str] | None) -> str:
    """'before' or 'beside': --program-search, with auto resolved for these GPUs on this machine."""
    return mode if mode != "auto" else ("beside" if spare_cores(gpus) >= 1 else "before")


def describe(tasks: int, depth: int, seconds: float, budget: float, mode: str = "before",
             gpus: list[str] | None = None) -> str:
    """The program phase in the plan: at most `seconds` per task on the search workers; before the models, cut at
    its budget share, or beside the GPU phases on the cores they leave."""
    where = search_mode(mode, gpus)
    workers = search_workers(tasks) if where == "before" else beside_workers(tasks, gpus)
    most = math.ceil(tasks / workers) * seconds
    head = (f"programs: DSL search to depth {depth}, {tasks} tasks x at most {seconds:g} s on {workers} CPU "
            f"worker(s): at most {most:.0f} s")
    if where == "beside":
        return f"{head} beside the GPU phases (--program-search {mode}): none of the GPUs' time"
    cap = f", cut at {PROGRAM_BUDGET_SHARE:.0%} of the budget ({PROGRAM_BUDGET_SHARE * budget:.0f} s)" if budget else ""
    return f"{head} before any model starts{cap}"


def record(run: Run, tid: str, outcome) -> None:
    """Store one task's search outcome (its verified programs weighed by the checks)."""
    run.state.add_programs(tid, weighed(run.tasks.tasks[tid], list(outcome.programs)), tried=outcome.tried,
                           seconds=round(outcome.seconds, 3), complete=outcome.complete)


def todo(run: Run) -> list[str]:
    return [] if run.cfg.program_policy == "off" else [t for t in run.ids if t not in run.state.searches]


def announce(run: Run, tasks: int, workers: int, where: str) -> None:
    cfg = run.cfg
    print(f"programs: DSL search (depth {cfg.dsl_depth}, {cfg.dsl_seconds:g} s per task) over {tasks} tasks "
          f"on {workers} CPU worker(s){where}")


def report(run: Run, tids: list[str], done: int, cut: str) -> None:
    found = sum(bool(run.state.programs.get(t)) for t in tids)
    run.log(f"programs: {done} of {len(tids)} tasks searched, {found} with a verified program"
            + ("" if done == len(tids) else f" ({cut}: a resumed run searches the rest)"))


def phase_programs(run: Run) -> int:
    """--program-search before: search every task not searched yet in this folder, now; returns how many were."""
    tids = todo(run)
    if not tids or search_mode(run.cfg.program_search, run.gpus) != "before" or time.monotonic() >= search_until(run):
        return 0
    from submission.programs.search import search_tasks

    cfg, workers = run.cfg, search_workers(len(tids))
    announce(run, len(tids), workers, "")
    done = 0
    for tid, outcome in search_tasks([run.tasks.tasks[t] for t in tids], depth=cfg.dsl_depth,
                                     time_s=cfg.dsl_seconds, memory_mb=SEARCH_MEMORY_MB, workers=workers,
                                     until=search_until(run)):
        record(run, tid, outcome)
        done += 1
    report(run, tids, done, "the phase's time ran out")
    run.refresh()
    return done


class Beside:
    """--program-search beside: the search in a thread of the driver, feeding CPU worker processes while the GPU
    phases run; every finished task is recorded durably at once, and submission.json is rewritten at most every
    BESIDE_REFRESH_S (a rewrite re-ranks every task under the state's lock) and when the search ends.
    `stop()` at the end of the run waits for it as long as the deadline allows, then starts no new task."""

    def __init__(self, run: Run, tids: list[str], workers: int):
        self.run, self.tids, self.workers = run, tids, workers
        self.done, self.error = 0, None
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="dsl-search", daemon=True)
        self._thread.start()

    def _until(self) -> float:
        return -math.inf if self._stop.is_set() else self.run.deadline - FINISH_MARGIN_S

    def _work(self) -> None:
        from submission.programs.search import search_tasks

        cfg, written = self.run.cfg, time.monotonic()
        try:
            for tid, outcome in search_tasks([self.run.tasks.tasks[t] for t in self.tids], depth=cfg.dsl_depth,
                                             time_s=cfg.dsl_seconds, memory_mb=SEARCH_MEMORY_MB,
                                             workers=self.workers, until=self._until):
                record(self.run, tid, outcome)
                self.done += 1
                if time.monotonic() - written >= BESIDE_REFRESH_S:
                    self.run.refresh()
                    written = time.monotonic()
        except Exception as e:  # a broken search costs its programs, never the run
            self.error = e
        finally:
            self.run.refresh()

    def stop(self, wait: bool = True) -> None:
        """Wait for the search while the deadline allows (all of it without a budget; not at all when not `wait`),
        then let the tasks in flight finish (at most a task's search time and a margin) and start none. Once."""
        if self._stop.is_set():
            return
        if wait:
            left = None if math.isinf(self.run.deadline) else max(0.0, self.run.left() - FINISH_MARGIN_S)
            self._thread.join(left)
        self._stop.set()
        self._thread.join(self.run.cfg.dsl_seconds + FINISH_MARGIN_S)
        self.run.times["programs_beside"] = round(time.monotonic() - self.started, 2)
        if self.error is not None:
            self.run.log(f"programs failed ({type(self.error).__name__}: {str(self.error)[:300]}); the run went on "
                         f"without the programs of the tasks it had not searched")
        report(self.run, self.tids, self.done, "the run ended first")


def start_beside(run: Run) -> Beside | None:
    """--program-search beside (or auto, on a machine with cores to spare): start the search thread."""
    tids = todo(run)
    if not tids or search_mode(run.cfg.program_search, run.gpus) != "beside":
        return None
    workers = beside_workers(len(tids), run.gpus)
    announce(run, len(tids), workers, ", beside the GPU phases")
    return Beside(run, tids, workers)


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
    return {"policy": cfg.program_policy, "search": search_mode(cfg.program_search, run.gpus),
            "searched": len(searches), "tried": sum(s.get("tried", 0) for s in searches),
            "complete": sum(bool(s.get("complete")) for s in searches),
            "search_s": round(sum(s.get("seconds", 0.0) for s in searches), 2),
            "verified": sum(verified.values()), "chosen": sum(chosen.values()),
            "per_origin": {o: {"verified": verified[o], "chosen": chosen[o]} for o in sorted(verified)},
            # the DSL runs this project's primitives in its workers; the sandbox runs model-written programs
            "sandbox": run.sandbox,
            "induction": {k: sum(i.get(k, 0) for i in state.induced.values())
                          for k in ("samples", "parsed", "distinct", "verified")} | {"tasks": len(state.induced)}}
