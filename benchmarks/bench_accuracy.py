"""The paper's ablation in miniature, on CPU: accuracy (the leaderboard metric) of the tiny ARC
model with and without test-time training, selected by identity only, the hierarchical vote and
product of experts, on held-out generated tasks (rules never drawn in training) and on the small
ARC-AGI-1 evaluation tasks, over several seeds.

Per seed it runs the real pipeline twice on one challenges file (held-out generated + ARC subset):
`run --trainer none` (no TTT) and `run --trainer peft` (TTT), each with the augmented inference and
PoE scoring on, then re-scores the stored predictions of each run under every selection rule
(`ablate`): identity = the answers of the untransformed prompts only.

    python benchmarks/bench_accuracy.py [--model models/arc-tiny] [--seeds 0 1 2] [--gen-tasks 24]

Seconds per task are measured per run phase: the vote and PoE rows pay TTT + all prompts (+ the
scoring), the identity rows are charged TTT + the untransformed prompts' share of the inference.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from submission.data import load_challenges, load_solutions  # noqa: E402
from submission.generate import generate_tasks, tasks_to_json  # noqa: E402
from submission.pipeline.ablate import ablate  # noqa: E402

INFER = ["--transforms", "8", "--permutations", "1", "--quick-transforms", "0", "--extra-rounds", "0",
         "--score-augmentations", "8", "--score-candidates", "4", "--max-model-len", "4096"]
# TTT settings: the model's own arc_ttt.json recommendations, spelled out so the table states them
TTT = ["--augmentations", "8", "--max-examples", "32", "--epochs", "3", "--lora-rank", "32", "--lora-alpha", "32",
       "--learning-rate", "1e-3", "--batch-size", "2", "--max-tokens", "2048"]
ROWS = [("no TTT", "identity", "none"), ("no TTT", "vote", "none"), ("no TTT", "poe", "none"),
        ("TTT", "identity", "peft"), ("TTT", "vote", "peft"), ("TTT", "poe", "peft"), ("TTT", "oracle", "peft")]


def small_arc_ids(max_side: int) -> list[str]:
    """ARC-AGI-1 evaluation tasks whose every grid (test outputs included) is at most max_side."""
    ts, sol = load_challenges("arc1-eval"), load_solutions("arc1-eval")
    return [t for t, task in ts.tasks.items()
            if all(max(g.shape) <= max_side for p in task.train for g in (p.input, p.output))
            and all(max(p.input.shape) <= max_side for p in task.test)
            and all(max(len(g), len(g[0])) <= max_side for g in sol[t])]


def write_sets(out: Path, seed: int, n_gen: int, arc_ids: list[str], max_side: int) -> tuple[Path, dict[str, set[str]]]:
    """One challenges + solutions file: n_gen held-out generated tasks (new ones per seed) + the ARC subset."""
    ch, sol = tasks_to_json(generate_tasks(n_gen, seed=1000 + seed, split="heldout", max_side=max_side))
    raw = json.loads(json.dumps(load_challenges("arc1-eval").raw))
    arc_sol = load_solutions("arc1-eval")
    ch.update({t: raw[t] for t in arc_ids})
    sol.update({t: arc_sol[t] for t in arc_ids})
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_challenges.json").write_text(json.dumps(ch))
    (out / "bench_solutions.json").write_text(json.dumps(sol))
    return out / "bench_challenges.json", {"generated (held-out rules)": set(ch) - set(arc_ids),
                                           "ARC-AGI-1 eval, small": set(arc_ids)}


def one_run(challenges: Path, out: Path, model: str, trainer: str, seed: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "submission", "run", "--challenges", str(challenges), "--model", model,
           "--out", str(out), "--trainer", trainer, "--seed", str(seed), "--engine", "hf", *INFER,
           *(TTT if trainer != "none" else []), *extra]
    print("$", shlex.join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        raise SystemExit(f"run failed ({r.returncode}):\n{r.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    summary["wall_s"] = time.perf_counter() - t0
    return summary


def cell_accuracy(run_dir: Path, solutions: dict, ids: set[str], rule: str) -> float:
    """Mean share of correct cells in attempt 1 (0 for a wrong shape or no answer): a finer signal
    than exact match for a model too small to get whole grids right."""
    import numpy as np

    from submission.pipeline.state import RunState
    from submission.vote import rank, top2

    state, total, n = RunState.load(run_dir), 0.0, 0
    for tid in ids:
        _, tests = state.best(tid)
        for i, truth in enumerate(solutions[tid]):
            truth, n = np.array(truth), n + 1
            preds = tests[i] if i < len(tests) else []
            pool = top2(rank(preds, "vote" if rule == "oracle" else rule, state.task_scores(tid, i))) if preds else []
            if pool and pool[0].shape == truth.shape:
                total += float((pool[0] == truth).mean())
    return total / max(n, 1)


def identity_share(run_dir: Path) -> float:
    """Fraction of the run's main-phase answers that came from untransformed prompts."""
    total = ident = 0
    for line in (run_dir / "predictions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["phase"] != "main":
            continue
        for test in rec["tests"]:
            total += len(test)
            ident += sum(1 for p in test if p[2])
    return ident / total if total else 0.0


def seconds_per_task(summary: dict, rule: str, share: float, n: int) -> float:
    t = summary["times_s"]
    ttt, main, score = t.get("ttt", 0.0), t.get("main", 0.0), t.get("score", 0.0)
    if rule == "identity":
        return (ttt + share * main) / n
    return (ttt + main + (score if rule == "poe" else 0.0)) / n


def fmt(values: list[float]) -> str:
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:5.1f} ± {100 * sd:4.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "arc-tiny"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--gen-tasks", type=int, default=24)
    ap.add_argument("--arc-max-side", type=int, default=8)
    ap.add_argument("--gen-max-side", type=int, default=6, help="input sides of the generated tasks: 3..this")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_accuracy"))
    ap.add_argument("--extra", default="", help="more `run` arguments for both runs, e.g. '--epochs 3'")
    args = ap.parse_args()
    arc_ids = small_arc_ids(args.arc_max_side)
    extra = shlex.split(args.extra)
    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    secs: dict[tuple[str, str], list[float]] = {}
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    sets: dict[str, set[str]] = {}
    for seed in args.seeds:
        base = Path(args.out) / f"seed{seed}"
        challenges, sets = write_sets(base, seed, args.gen_tasks, arc_ids, args.gen_max_side)
        truth = json.loads((base / "bench_solutions.json").read_text())
        n = sum(len(v) for v in sets.values())
        for trainer in ("none", "peft"):
            run_dir = base / trainer
            summary = one_run(challenges, run_dir, args.model, trainer, seed, extra)
            share = identity_share(run_dir)
            per_set = {name: ablate(run_dir, str(base / "bench_solutions.json"), only=ids) for name, ids in sets.items()}
            for label, rule, tr in ROWS:
                if tr != trainer:
                    continue
                for name, scores in per_set.items():
                    results.setdefault((label, rule), {}).setdefault(name, []).append(scores[rule])
                    cells.setdefault((label, rule), {}).setdefault(name, []).append(
                        cell_accuracy(run_dir, truth, sets[name], rule))
                secs.setdefault((label, rule), []).append(seconds_per_task(summary, rule, share, n))
            print(f"seed {seed} {trainer}: " + "; ".join(
                f"{name}: " + " ".join(f"{r} {s:.3f}" for r, s in sc.items()) for name, sc in per_set.items()), flush=True)
    names = list(sets)
    print(f"\nmodel {args.model}; seeds {args.seeds}; {args.gen_tasks} held-out generated tasks per seed (new each "
          f"seed, inputs 3..{args.gen_max_side}), {len(arc_ids)} ARC-AGI-1 eval tasks with every grid <= {args.arc_max_side}; accuracy % mean ± sd "
          f"over seeds; 'cells' = cell accuracy of attempt 1 (oracle row: of the vote's attempt 1)")
    print(f"TTT args: {shlex.join(TTT)}; inference: {shlex.join(INFER)} {shlex.join(extra)}\n")
    header = (f"| {'setting':<22} | " + " | ".join(f"{n:<26}" for n in names) + " | "
              + " | ".join(f"{'cells, ' + n[:12]:<20}" for n in names) + " | s/task |")
    print(header)
    print("|" + "|".join("-" * (len(c) + 0) for c in header.split("|")[1:-1]) + "|")
    for label, rule, _ in ROWS:
        key = (label, rule)
        name = f"{label} + {'oracle (any candidate)' if rule == 'oracle' else rule}"
        exact = " | ".join(f"{fmt(results[key][n]):<26}" for n in names)
        cell = " | ".join(f"{fmt(cells[key][n]):<20}" for n in names)
        print(f"| {name:<22} | {exact} | {cell} | {statistics.mean(secs[key]):6.1f} |")
    print("\nper seed (no TTT vote -> TTT vote): " + "; ".join(
        f"{n}: " + ", ".join(f"{a:.3f}->{b:.3f}" for a, b in zip(results[("no TTT", "vote")][n], results[("TTT", "vote")][n]))
        for n in names))

if __name__ == "__main__":
    main()
