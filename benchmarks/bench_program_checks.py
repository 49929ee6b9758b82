"""Do the program checks rank right programs above wrong ones? The DSL search over a bundled set (no model),
each verified program weighed by programs/checks.py, then per task: is the first program right by the search's
own order and by weight, how many tasks have a verified program that is wrong on the test (what `fill` could
put into attempt 2 and `induction-first` into attempt 1), and how often each check flags right and wrong programs.

    python benchmarks/bench_program_checks.py --set arc1-train --limit 200 --seconds 2
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from submission.arc.data import load_challenges, load_solutions, solutions_for
from submission.arc.grid import grids_equal
from submission.pipeline.programs import search_workers, weighed
from submission.programs.merge import program_grids
from submission.programs.search import search_tasks


def right(outputs, truth) -> bool:
    return all(o is not None and grids_equal(o, t) for o, t in zip(outputs, truth, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="arc1-train")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--depth", type=int, default=2)
    args = ap.parse_args()
    ts = load_challenges(args.set)
    truth = load_solutions(solutions_for(args.set))
    tasks = [ts.tasks[t] for t in ts.ids if t in ts.tasks][: args.limit]
    t0 = time.monotonic()
    counts, flagged = Counter(), {True: Counter(), False: Counter()}
    workers = search_workers(len(tasks))
    for tid, outcome in search_tasks(tasks, args.depth, args.seconds, workers=workers):
        task = ts.tasks[tid]
        plain = [p for p in outcome.programs if p.verified]
        if not plain:
            continue
        counts["verified"] += 1
        programs = weighed(task, plain)
        ok = [right(p.test_outputs, truth[tid]) for p in programs]
        for p, good in zip(programs, ok):
            counts["right programs" if good else "wrong programs"] += 1
            flagged[good].update(p.checks or ("(none)",))
        counts["some program right"] += any(ok)
        counts["every program wrong"] += not any(ok)
        counts["2+ distinct answers"] += len(programs) > 1
        counts["first by search order right"] += ok[0]
        by_weight = max(range(len(programs)), key=lambda i: (programs[i].weight, -i))
        counts["first by weight right"] += ok[by_weight]
        for i in range(len(task.test)):  # pass@2 of programs alone, per test input, as merge orders them
            grids = [g for g, _, _ in program_grids(programs, i)][:2]
            counts["test inputs"] += 1
            counts["program pass@2 (test inputs)"] += any(grids_equal(g, truth[tid][i]) for g in grids)
    print(f"{args.set}: {len(tasks)} tasks, depth {args.depth}, {args.seconds:g} s per task, {workers} worker(s), "
          f"{time.monotonic() - t0:.0f} s")
    for k, v in counts.items():
        print(f"  {k:32} {v}")
    checks = sorted(set(flagged[True]) | set(flagged[False]))
    print(f"  {'check':32} {'right programs':>15} {'wrong programs':>15}")
    for c in checks:
        print(f"  {c:32} {flagged[True][c]:>15} {flagged[False][c]:>15}")


if __name__ == "__main__":
    main()
