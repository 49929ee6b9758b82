"""The CPU DSL search (submission/programs/search.py) on the bundled ARC sets: pass@2, tasks with a verified
program, seconds per task, a worker's peak memory. Prints one markdown table.

    python benchmarks/bench_dsl.py                     # the recorded runs (~30 min on 2 cores, one worker)
    python benchmarks/bench_dsl.py --runs arc1-eval:2:2:20   # set:depth:cap_s[:first_n], repeatable

pass@2: per test input, the first two distinct outputs (in the search's order, best program first) against
the known solution; a task scores the fraction of its test inputs right; the set's figure is the mean.
arc1-train is the set the DSL was designed on: its figure is for reference, not a held-out result.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from submission.arc.data import load_challenges, load_solutions
from submission.programs.search import SearchOutcome, search_tasks

RUNS = ("arc1-eval:2:2", "arc2-eval:2:2", "arc1-eval:3:10:30", "arc2-eval:3:10:30", "arc1-train:2:2")


def task_score(outcome: SearchOutcome, solutions: list) -> float:
    """Fraction of test inputs whose first two distinct program outputs include the solution."""
    right = 0
    for i, truth in enumerate(solutions):
        distinct: list[np.ndarray] = []
        for p in outcome.programs:
            g = p.test_outputs[i] if i < len(p.test_outputs) else None
            if g is not None and not any(np.array_equal(g, d) for d in distinct):
                distinct.append(g)
        right += any(np.array_equal(g, np.asarray(truth)) for g in distinct[:2])
    return right / len(solutions)


def run(spec: str, workers: int) -> dict:
    name, depth, cap, *first = spec.split(":")
    ts, sol = load_challenges(name), load_solutions(name)
    ids = [i for i in ts.ids if i in ts.tasks][:int(first[0]) if first else None]
    t0 = time.monotonic()
    scores, found, secs, complete, peak = [], 0, [], 0, 0.0
    for task_id, o in search_tasks((ts.tasks[i] for i in ids), depth=int(depth), time_s=float(cap), workers=workers):
        scores.append(task_score(o, sol[task_id]))
        found += bool(o.programs)
        secs.append(o.seconds)
        complete += o.complete
        peak = max(peak, o.peak_rss_mb)
    return {"set": name + (" (design set)" if name == "arc1-train" else ""), "tasks": len(ids),
            "depth": int(depth), "cap_s": float(cap), "pass@2": 100 * float(np.mean(scores)),
            "solved": sum(scores), "found": found, "complete": complete,
            "median_s": float(np.median(secs)), "p90_s": float(np.percentile(secs, 90)), "peak_mb": peak,
            "wall_s": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=list(RUNS), help="set:depth:cap_s[:first_n] each")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (1: the others share the cores)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    rows = []
    print("| set | tasks | depth | cap | pass@2 | tasks solved | any verified program | search complete "
          "| s/task median | s/task p90 | worker peak RSS | wall |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for spec in args.runs:
        r = run(spec, args.workers)
        rows.append(r)
        print(f"| {r['set']} | {r['tasks']} | {r['depth']} | {r['cap_s']:g} s | {r['pass@2']:.1f}% | {r['solved']:g} "
              f"| {r['found']} | {r['complete']} | {r['median_s']:.2f} | {r['p90_s']:.2f} | {r['peak_mb']:.0f} MB "
              f"| {r['wall_s']:.0f} s |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
