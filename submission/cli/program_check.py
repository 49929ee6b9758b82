"""`python -m submission program-check`: run a program file in the sandbox on one task's demos and test inputs
and say, per grid, whether it fits (or how it is wrong, or which failure ended it), with the sandbox's layers."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from submission.arc.data import DataError, load_challenges, load_solutions, solutions_for


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("program-check", help="run a program file (main(input_grid) or transform(grid)) in the "
                                             "sandbox on a task's demos and test inputs")
    p.add_argument("--program", required=True, type=Path, help="a Python file defining main or transform")
    p.add_argument("--challenges", default="arc1-eval", help="a *_challenges.json path or a bundled set")
    p.add_argument("--task", required=True, help="task id")
    p.add_argument("--library", type=Path, default=None, help="the file `from common import *` loads (BARC's)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per grid before the program is killed")
    p.set_defaults(func=program_check)


def program_check(args: argparse.Namespace) -> int:
    from submission.programs.sandbox import Limits, Sandbox, describe

    if not args.program.is_file():
        raise DataError(f"--program {args.program}: no such file")
    if args.library is not None and not args.library.is_file():
        raise DataError(f"--library {args.library}: no such file")
    tasks = load_challenges(args.challenges)
    if args.task not in tasks.tasks:
        why = tasks.invalid.get(args.task, "no such task id")
        raise DataError(f"--task {args.task!r} in {tasks.source}: {why}")
    task = tasks.tasks[args.task]
    known = load_solutions(sol).get(args.task, []) if (sol := solutions_for(args.challenges)) else []
    source = args.program.read_text(encoding="utf-8", errors="replace")
    with Sandbox(Limits(timeout_s=args.timeout), library=args.library) as box:
        print("layers: " + ", ".join(f"{k}: {v}" for k, v in box.layers().items()))
        verdicts = box.run(source, [p.input for p in task.train] + [p.input for p in task.test])
    demos = [describe(v, p.output) for v, p in zip(verdicts, task.train)]
    for k, line in enumerate(demos):
        print(f"demo {k}: {line}")
    for k, v in enumerate(verdicts[len(task.train):]):
        line = describe(v, None)
        if v.status == "ok" and k < len(known):
            same = np.asarray(known[k]).shape == v.grid.shape and (np.asarray(known[k]) == v.grid).all()
            line += ", matches the known output" if same else ", differs from the known output"
        print(f"test {k}: {line}")
    verified = all(line == "fits" for line in demos)
    print(f"verified: {'yes' if verified else 'no'} ({sum(line == 'fits' for line in demos)}/{len(demos)} demos fit)")
    return 0 if verified else 1
