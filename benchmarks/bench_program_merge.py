"""What program candidates add to TTT, per merge policy, on the accuracy table's ARC tasks (benchmarks/README.md).

One real run of the CLI with the accuracy table's TTT command (the tiny model, PEFT TTT, vLLM, vote) and the program
phase on, over the arc1-eval tasks whose every demo and test input is <= 8 per side (bench_accuracy.arc_ids, chosen
by input sizes only). From that run's stored predictions and programs, each task is scored (the leaderboard metric)
under transduction alone (`--program-policy off`), the DSL programs alone (their top two outputs), and each merge
policy; each against transduction alone: tasks gained, tasks lost and a paired bootstrap 95 % CI over tasks.

    python benchmarks/bench_program_merge.py                 # the run, then the table
    python benchmarks/bench_program_merge.py --reuse         # the table from the run folder already there
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from bench_accuracy import INFER, TTT, VARYING, arc_ids  # noqa: E402
from stats import paired_bootstrap  # noqa: E402

from submission.arc.data import load_challenges, load_solutions, solutions_for  # noqa: E402
from submission.arc.grid import grids_equal, to_list  # noqa: E402
from submission.pipeline.context import task_attempts  # noqa: E402
from submission.pipeline.state import RunState  # noqa: E402
from submission.programs.merge import POLICIES, program_grids  # noqa: E402


def write_set(out: Path, ids: list[str]) -> Path:
    tasks = load_challenges("arc1-eval")
    raw = {t: tasks.raw[t] for t in ids}
    path = out / "arc_challenges.json"
    path.write_text(json.dumps(raw))
    truth = load_solutions(solutions_for("arc1-eval"))
    sols = {t: [to_list(np.asarray(a)) for a in truth[t]] for t in ids}
    (out / "arc_solutions.json").write_text(json.dumps(sols))
    return path


def per_task(run: Path, ids: list[str], truth: dict) -> dict[str, list[float]]:
    """{setting: score per task, in ids' order}."""
    state = RunState.load(run)
    rule = json.loads((run / "summary.json").read_text())["config"]["run"]["select"]
    out: dict[str, list[float]] = {}
    for policy in ("off", *(p for p in POLICIES if p != "off")):
        out[policy] = [score([a for a, _ in task_attempts(state, t, len(truth[t]), rule, policy)], truth[t])
                       for t in ids]
    out["programs alone"] = [score([[g for g, _, _ in program_grids(state.programs.get(t, []), i)][:2]
                                    for i in range(len(truth[t]))], truth[t]) for t in ids]
    return out


def score(attempts: list[list], answers: list) -> float:
    return sum(any(grids_equal(g, a) for g in att) for att, a in zip(attempts, answers)) / len(answers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench_program_merge")
    ap.add_argument("--engine", default="vllm", choices=("vllm", "hf"))
    ap.add_argument("--reuse", action="store_true", help="score the run folder already in --out; run nothing")
    ap.add_argument("--machine", default="CPU machine (2 cores AMD EPYC, 24 GB)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ids = arc_ids("arc1-eval", 8, 0)
    challenges = write_set(out, ids)
    run = out / "run"
    ttt = list(TTT)
    ttt[ttt.index("--epochs") + 1] = "2"  # as the accuracy table's TTT rows (--ttt-epochs 2)
    cmd = ["-m", "submission", "run", "--challenges", str(challenges), "--model", "models/arc-tiny", "--out", str(run),
           "--seed", "0", "--engine", args.engine, *INFER, "--trainer", "peft", *ttt, *VARYING,
           "--program-policy", "fill"]
    wall = None
    if not args.reuse:
        t0 = time.perf_counter()
        print("$ python", shlex.join(cmd), flush=True)
        r = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"run failed ({r.returncode}):\n{r.stderr[-3000:]}")
        wall = time.perf_counter() - t0
    truth = {t: [a for a in json.loads((out / "arc_solutions.json").read_text())[t]] for t in ids}
    scores = per_task(run, ids, truth)
    summary = json.loads((run / "summary.json").read_text())
    print(f"\n{time.strftime('%Y-%m-%d')}, {args.machine}; {len(ids)} arc1-eval tasks (every input <= 8 per side); "
          f"the tiny model, PEFT TTT, {args.engine}, rule {summary['config']['run']['select']}"
          + (f"; run wall {wall:.0f} s" if wall else ""))
    print(f"programs: {json.dumps(summary.get('programs', {}))[:400]}\n")
    print("| setting | exact % | tasks gained vs TTT alone | tasks lost | diff (points), 95 % CI (paired bootstrap) |")
    print("|---|---|---|---|---|")
    base = scores["off"]
    for name, s in scores.items():
        label = "TTT alone (`--program-policy off`)" if name == "off" else (
            name if name == "programs alone" else f"TTT + programs, `--program-policy {name}`")
        if name == "off":
            print(f"| {label} | {100 * sum(s) / len(s):.1f} | – | – | – |")
            continue
        gained = [t for t, a, b in zip(ids, s, base) if a > b]
        lost = [t for t, a, b in zip(ids, s, base) if a < b]
        diff, (lo, hi) = paired_bootstrap(s, base)
        print(f"| {label} | {100 * sum(s) / len(s):.1f} | {len(gained)} {' '.join(gained)} | {len(lost)} "
              f"{' '.join(lost)} | {100 * diff:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] |")


if __name__ == "__main__":
    main()
