"""Tune the program checks' weights (submission/programs/checks.py) on a seeded split of ARC-AGI-1 *training*,
never on an evaluation set. The DSL search (depth 2, 2 s per task, one worker: the pipeline's defaults) runs on
every task of the split; each verified program is weighed by the pipeline's own path (`weighed`) and its test
outputs are scored against the known solutions. Then, per check:

    weight = P(right | fails the check) / P(right | fails no check)

Laplace-smoothed ((right + 1) / (n + 2)), clipped to [WEIGHT_MIN, 1], each program counted 1 / (verified programs
of its task) so a task with many programs counts once, with a percentile bootstrap interval over tasks.

    PYTHONPATH=. python benchmarks/tune_checks.py                       # 400 tasks, ~15 min of search, cached
    PYTHONPATH=. python benchmarks/tune_checks.py --tasks 50            # the first 50 of the seeded split
    PYTHONPATH=. python benchmarks/tune_checks.py --cache /tmp/x.jsonl  # re-fit from an earlier search

The cache (JSON lines, one per searched task, under /tmp: not committed) holds every verified program's checks,
test outputs and rightness: a re-fit reads it instead of searching again. Delete it after changing checks.py's
logic or the DSL (a constant's value does not matter: the records hold the checks' names, not weights).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from submission.arc.data import Task, load_challenges, load_solutions
from submission.arc.grid import grids_equal, to_list
from submission.programs.checks import WEIGHTS
from submission.programs.merge import program_grids
from submission.programs.record import ProgramResult

SET = "arc1-train"  # the tuning set: test outputs known, and never the set a result is reported on
SEED = 20261207     # the split's shuffle: fixed so a re-run (and --tasks N) takes the same tasks
WEIGHT_MIN = 0.05   # a fitted weight never mutes a program outright: a check flags evidence, not proof
N_BOOT = 10_000
MIN_FAILING = 5     # programs failing a check below which its interval says nothing: the constant is kept
DEFAULT_CACHE = Path("/tmp/tune_checks_arc1-train.jsonl")


# -- the split and the search ----------------------------------------------------------------------

def split(ids: list[str], n: int | None = None, seed: int = SEED) -> list[str]:
    """The first n task ids of a seeded shuffle of the sorted ids (all of them when n is None)."""
    order = np.random.default_rng(seed).permutation(len(ids))
    ids = sorted(ids)
    return [ids[i] for i in order][:n]


def task_record(task: Task, programs: list[ProgramResult], truth: list, depth: int, seconds: float,
                search_s: float, complete: bool) -> dict:
    """One cache line: the task's verified programs as the pipeline weighs them, each test output scored."""
    from submission.pipeline.programs import weighed

    rows = []
    for p in weighed(task, [p for p in programs if p.verified]):
        right = [o is not None and grids_equal(o, np.asarray(t)) for o, t in zip(p.test_outputs, truth, strict=True)]
        rows.append({"source": p.source, "checks": list(p.checks), "right": right,
                     "outputs": [None if o is None else to_list(o) for o in p.test_outputs]})
    return {"task": task.id, "depth": depth, "seconds": seconds, "tests": len(task.test),
            "search_s": round(search_s, 3), "complete": complete, "programs": rows}


def read_cache(path: Path, depth: int, seconds: float) -> dict[str, dict]:
    """The cached task records searched with this depth and time cap (other lines are ignored)."""
    if not path.exists():
        return {}
    found = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a killed run: that task is searched again
            print(f"{path}:{n}: unreadable line skipped", file=sys.stderr)
            continue
        if rec.get("depth") == depth and rec.get("seconds") == seconds:
            found[rec["task"]] = rec
    return found


def search_split(ids: list[str], depth: int, seconds: float, cache: Path) -> dict[str, dict]:
    """Task records for every id, searching (one worker) only those the cache lacks, appending each as it ends."""
    from submission.programs.search import search_tasks

    ts, truth = load_challenges(SET), load_solutions(SET)
    done = read_cache(cache, depth, seconds)
    todo = [ts.tasks[t] for t in ids if t not in done]
    if todo:
        print(f"searching {len(todo)} tasks (depth {depth}, {seconds:g} s, 1 worker); {len(ids) - len(todo)} cached",
              flush=True)
    t0 = time.monotonic()
    with cache.open("a") as f:
        for i, (tid, o) in enumerate(search_tasks(todo, depth=depth, time_s=seconds, workers=1), 1):
            rec = task_record(ts.tasks[tid], o.programs, truth[tid], depth, seconds, o.seconds, o.complete)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            done[tid] = rec
            if i % 25 == 0:
                print(f"  {i}/{len(todo)} searched, {time.monotonic() - t0:.0f} s", flush=True)
    return {t: done[t] for t in ids}


# -- the fit (pure functions over records) ---------------------------------------------------------

@dataclass(frozen=True)
class Fit:
    """One check's fit; precision, weight, lo and hi are NaN where no program fails it."""

    check: str
    programs: int        # programs failing the check (raw count)
    right: int           # of them right on every test input
    tasks: int           # tasks with a program failing it
    precision: float     # P(right | fails it), smoothed, per-task weighted
    weight: float        # precision / P(right | fails nothing), clipped
    lo: float            # bootstrap interval of the weight over tasks
    hi: float


def flat(records: dict[str, dict] | list[dict]) -> list[dict]:
    """One row per verified program: {"task", "checks", "right" (every test output right)}."""
    recs = records.values() if isinstance(records, dict) else records
    return [{"task": r["task"], "checks": tuple(p["checks"]), "right": all(p["right"])}
            for r in recs for p in r["programs"]]


def _group_sums(rows: list[dict], groups: list[str], per_task: bool) -> tuple[list[str], np.ndarray]:
    """Per task and group ("none" or a check): [sum of right x w, sum of w, raw count, raw right], w = 1/#programs
    of the task (per_task) or 1. Array of shape (tasks, groups, 4)."""
    tasks = sorted({r["task"] for r in rows})
    index = {t: i for i, t in enumerate(tasks)}
    size = {t: sum(r["task"] == t for r in rows) for t in tasks}
    sums = np.zeros((len(tasks), len(groups), 4))
    for r in rows:
        w = 1 / size[r["task"]] if per_task else 1.0
        for g, name in enumerate(groups):
            if (name == "none" and not r["checks"]) or name in r["checks"]:
                sums[index[r["task"]], g] += (w * r["right"], w, 1, r["right"])
    return tasks, sums


def _weights(totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed precision per group, and each group's clipped ratio to group 0 ("none"). totals: (..., groups, 2+)."""
    precision = (totals[..., 0] + 1) / (totals[..., 1] + 2)
    return np.clip(precision / precision[..., :1], WEIGHT_MIN, 1.0), precision


def fit_weights(rows: list[dict], checks: list[str] | None = None, per_task: bool = True, n_boot: int = N_BOOT,
                seed: int = 0, level: float = 0.95) -> list[Fit]:
    """Each check's fitted weight, counts and bootstrap interval (tasks resampled) from program rows
    ({"task", "checks", "right"}, as `flat` gives)."""
    checks = list(WEIGHTS) if checks is None else list(checks)
    if not rows:
        raise ValueError("no verified programs to fit on: search more tasks")
    groups = ["none", *checks]
    tasks, sums = _group_sums(rows, groups, per_task)
    weights, precision = _weights(sums.sum(axis=0))
    idx = np.random.default_rng(seed).integers(0, len(tasks), (n_boot, len(tasks)))
    boot, _ = _weights(sums[idx].sum(axis=1))
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=0)
    fits = []
    for g, c in enumerate(groups[1:], 1):
        n = int(sums[:, g, 2].sum())
        fitted = [float(x[g]) if n else math.nan for x in (precision, weights, lo, hi)]  # no program: no weight
        fits.append(Fit(c, n, int(sums[:, g, 3].sum()), int((sums[:, g, 2] > 0).sum()), *fitted))
    return fits


def precision_overall(rows: list[dict], n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Right verified programs: per program, and per task (each task's share of right programs, averaged), with
    a bootstrap interval over tasks for the latter."""
    tasks = sorted({r["task"] for r in rows})
    share = np.array([np.mean([r["right"] for r in rows if r["task"] == t]) for t in tasks])
    idx = np.random.default_rng(seed).integers(0, len(tasks), (n_boot, len(tasks)))
    lo, hi = np.quantile(share[idx].mean(axis=1), [0.025, 0.975])
    return {"programs": len(rows), "right": sum(r["right"] for r in rows), "tasks": len(tasks),
            "per_task": float(share.mean()), "lo": float(lo), "hi": float(hi)}


def by_task_precision(rows: list[dict], among: list[dict]) -> float:
    """P(right) of `rows`, Laplace-smoothed, each counted 1/#programs of its task in `among` (as fit_weights)."""
    size = {t: sum(r["task"] == t for r in among) for t in {r["task"] for r in rows}}
    return (sum(r["right"] / size[r["task"]] for r in rows) + 1) / (sum(1 / size[r["task"]] for r in rows) + 2)


def verdict(fit: Fit, current: float) -> str:
    """What the fit says about the constant: change it, or keep it and why."""
    if fit.programs < MIN_FAILING:
        return f"keep: {fit.programs} program(s) fail it, too few to say"
    if fit.lo <= current <= fit.hi:
        return "keep: the constant is inside the interval"
    return f"change to {fit.weight:.2f}"


# -- pass@k of the DSL's own attempts ----------------------------------------------------------------

def scores(records: dict[str, dict], weights: dict[str, float] | None, truth: dict[str, list]) -> np.ndarray:
    """Per task: [pass@1, pass@2] of the programs' distinct outputs ranked by weight (product of `weights` over
    the failed checks; None: the search's own order), as merge.program_grids orders them, averaged over the
    task's test inputs."""
    out = np.zeros((len(records), 2))
    for n, (tid, rec) in enumerate(records.items()):
        programs = [ProgramResult("dsl", p["source"], (True,), tuple(None if o is None else np.asarray(o, np.int8)
                                                                    for o in p["outputs"]),
                                  weight=math.prod(weights[c] for c in p["checks"]) if weights else 1.0)
                    for p in rec["programs"]]
        for i in range(rec["tests"]):
            grids = [g for g, _, _ in program_grids(programs, i)]
            hits = [grids_equal(g, np.asarray(truth[tid][i])) for g in grids[:2]]
            out[n] += (any(hits[:1]), any(hits))
        out[n] /= rec["tests"]
    return out


# -- the report ------------------------------------------------------------------------------------

def print_fits(fits: list[Fit], rows: list[dict]) -> None:
    none = [r for r in rows if not r["checks"]]
    base = by_task_precision(none, rows)
    print(f"\nprograms failing no check: {len(none)} ({sum(r['right'] for r in none)} right), "
          f"{len({r['task'] for r in none})} tasks; P(right), smoothed, per-task counted: {base:.3f}")
    print("| check | current | programs failing it (right) | tasks | P(right), smoothed | fitted weight "
          "| 95 % CI (bootstrap over tasks) | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for f in fits:
        fitted = f"{f.precision:.3f} | {f.weight:.2f} | [{f.lo:.2f}, {f.hi:.2f}]" if f.programs else "– | – | –"
        print(f"| `{f.check}` | {WEIGHTS[f.check]:g} | {f.programs} ({f.right}) | {f.tasks} | {fitted} "
              f"| {verdict(f, WEIGHTS[f.check])} |")


def print_ranking(records: dict[str, dict], fitted: dict[str, float]) -> None:
    from stats import paired_bootstrap

    truth = load_solutions(SET)
    runs = {"search order (no weights)": None, "current constants": dict(WEIGHTS), "fitted weights": fitted}
    got = {k: scores(records, w, truth) for k, w in runs.items()}
    found = np.array([bool(r["programs"]) for r in records.values()])
    answers = [distinct_answers(r, i) for r in records.values() for i in range(r["tests"])]
    print(f"\nDSL alone over the split's {len(records)} tasks ({found.sum()} with a verified program); "
          "tasks score the share of their test inputs right; test inputs with 2 distinct program answers: "
          f"{answers.count(2)}, with 3 or more: {sum(a > 2 for a in answers)} (only these can change pass@2)")
    print("| ranking | pass@1 (tasks) | pass@2 (tasks) | pass@2 - current, 95 % CI (paired bootstrap) |")
    print("|---|---|---|---|")
    for k, s in got.items():
        diff, (lo, hi) = paired_bootstrap(s[:, 1], got["current constants"][:, 1])
        print(f"| {k} | {s[:, 0].sum():g} | {s[:, 1].sum():g} | {diff * len(s):+.1f} [{lo * len(s):+.1f}, "
              f"{hi * len(s):+.1f}] tasks |")


def distinct_answers(record: dict, test_index: int) -> int:
    """How many distinct outputs the task's programs give for one test input."""
    return len({json.dumps(p["outputs"][test_index]) for p in record["programs"]
                if p["outputs"][test_index] is not None})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=None, help="the first N tasks of the seeded split (default: all)")
    ap.add_argument("--seed", type=int, default=SEED, help="the split's shuffle")
    ap.add_argument("--depth", type=int, default=2, help="DSL depth (the pipeline's default)")
    ap.add_argument("--seconds", type=float, default=2.0, help="search seconds per task (the pipeline's default)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="JSON lines of searched tasks, read and extended")
    ap.add_argument("--per-program", action="store_true",
                    help="count every program once instead of 1/#programs of its task")
    ap.add_argument("--json", type=Path, help="also write the fit here")
    args = ap.parse_args()
    ids = split(list(load_challenges(SET).tasks), args.tasks, args.seed)
    print(f"tuning split: {SET}, seed {args.seed}, {len(ids)} tasks; depth {args.depth}, {args.seconds:g} s per task; "
          f"cache {args.cache}", flush=True)
    t0 = time.monotonic()
    records = search_split(ids, args.depth, args.seconds, args.cache)
    rows = flat(records)
    print(f"search + checks: {time.monotonic() - t0:.0f} s (0 when cached); "
          f"{sum(r['search_s'] for r in records.values()):.0f} s of search in the records")
    p = precision_overall(rows)
    print(f"verified programs: {p['programs']} in {p['tasks']} tasks, {p['right']} right on every test input "
          f"({p['right'] / p['programs']:.1%} per program; per task {p['per_task']:.1%} "
          f"[{p['lo']:.1%}, {p['hi']:.1%}])")
    counting = "each program once" if args.per_program else "each program 1/#verified programs of its task"
    print(f"counting: {counting}; Laplace (right + 1) / (n + 2); weights clipped to [{WEIGHT_MIN}, 1]; "
          f"{N_BOOT} bootstrap resamples of the tasks with a program")
    fits = fit_weights(rows, per_task=not args.per_program)
    print_fits(fits, rows)
    print_ranking(records, {f.check: round(f.weight, 2) for f in fits})
    if args.json:
        args.json.write_text(json.dumps({"set": SET, "seed": args.seed, "tasks": len(ids), "precision": p,
                                         "fits": [f.__dict__ for f in fits]}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))  # stats.py beside this script
    main()
