"""Program x demo runs per second, one core: the sandbox's fork server (one fresh child per program), with every
layer and without the two language-level ones (the `ast` syntax check and the `audit` hook), against a fresh
interpreter per program (`python -c` importing numpy, no isolation at all), side by side; and the syntax check's
own cost on a real 150-line numpy module (submission/programs/objects.py), in process.

    python benchmarks/bench_sandbox.py [--programs 40] [--fresh 10]

The programs are the arc1-train tasks' demos under a BARC-style flip (the work inside is negligible: this
measures the cost of starting and confining a child, and of moving grids in and out).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from submission.arc.data import load_challenges  # noqa: E402
from submission.arc.grid import to_list  # noqa: E402
from submission.programs import sandbox_ast  # noqa: E402
from submission.programs.sandbox import Limits, Sandbox  # noqa: E402

PROGRAM = "import numpy as np\n\ndef main(input_grid):\n    return np.flipud(input_grid)\n"
FRESH = ("import json, sys\nimport numpy as np\nns = {}\nexec(sys.argv[1], ns)\n"
         "print(json.dumps([np.asarray(ns['main'](np.array(g))).tolist() for g in json.load(sys.stdin)]))\n")


def demos_of(n: int) -> list[list]:
    """The demo inputs of the first n arc1-train tasks (one list per program)."""
    tasks = list(load_challenges("arc1-train").tasks.values())[:n]
    return [[to_list(p.input) for p in t.train] for t in tasks]


def fork_server(work: list[list], skip: tuple[str, ...] = ()) -> tuple[int, float, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sandbox layer ast is missing: skipped on request"
        box = Sandbox(Limits(timeout_s=5.0), skip_layers=skip)
        box.start()
    with box:
        box.run(PROGRAM, work[0])  # warm
        start = time.perf_counter()
        runs = 0
        for inputs in work:
            verdicts = box.run(PROGRAM, inputs)
            assert all(v.status == "ok" for v in verdicts), verdicts
            runs += len(verdicts)
        return runs, time.perf_counter() - start, box.layers()


def fresh_interpreter(work: list[list]) -> tuple[int, float]:
    start = time.perf_counter()
    runs = 0
    for inputs in work:
        out = subprocess.run([sys.executable, "-c", FRESH, PROGRAM], input=json.dumps(inputs), capture_output=True,
                             text=True, check=True)
        runs += len(json.loads(out.stdout))
    return runs, time.perf_counter() - start


def ast_check_ms(reps: int = 200) -> tuple[int, float]:
    """Lines of objects.py, and ms per parse + check of it."""
    source = (Path(__file__).parents[1] / "submission" / "programs" / "objects.py").read_text()
    start = time.perf_counter()
    for _ in range(reps):
        sandbox_ast.problems(ast.parse(source))
    return source.count("\n"), 1000 * (time.perf_counter() - start) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=40, help="programs through the fork server")
    ap.add_argument("--fresh", type=int, default=10, help="programs through fresh interpreters (slow)")
    args = ap.parse_args()
    work = demos_of(max(args.programs, args.fresh))
    runs_f, t_f, layers = fork_server(work[:args.programs])
    runs_o, t_o, _ = fork_server(work[:args.programs], skip=("ast", "audit"))
    runs_p, t_p = fresh_interpreter(work[:args.fresh])
    print("layers: " + ", ".join(f"{k}={v}" for k, v in layers.items()))
    print(f"{'executor':<44}{'programs':>9}{'runs':>7}{'seconds':>9}{'runs/s/core':>13}{'ms/program':>12}")
    for name, n, runs, t in (("fork server, every layer (workers=1)", args.programs, runs_f, t_f),
                             ("fork server, without ast and audit", args.programs, runs_o, t_o),
                             ("fresh `python -c` + numpy, no isolation", args.fresh, runs_p, t_p)):
        print(f"{name:<44}{n:>9}{runs:>7}{t:>9.2f}{runs / t:>13.1f}{1000 * t / n:>12.1f}")
    print(f"speed-up: {(runs_f / t_f) / (runs_p / t_p):.1f}x")
    lines, ms = ast_check_ms()
    print(f"ast check (parse + check) of a {lines}-line numpy module: {ms:.2f} ms")


if __name__ == "__main__":
    main()
