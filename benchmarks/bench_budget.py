"""Deadline keeping on CPU: for each budget, run the first N ARC-AGI-1 eval tasks on a model
(default: the trained tiny ARC model, models/arc-tiny, which `run` also defaults to) and print the
wall time (from process start), the share of the budget used, the overrun (must never be positive),
how many tasks got a TTT adapter and for how many of those the adapter's answers landed in
predictions.jsonl (the target: all of them). `--busy` runs a second process that keeps one core
busy for the whole measurement (a noisy machine). The model is printed first: figures depend on it.

    python benchmarks/bench_budget.py [--model models/arc-tiny] [--budgets 120,240,360] [--tasks 10] [--busy]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="120,240,360")
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--busy", action="store_true", help="keep one core busy with a second process meanwhile")
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--model", default=str(ROOT / "models" / "arc-tiny"), help="HF model folder")
    args = ap.parse_args()
    cfg = Path(args.model) / "config.json"
    about = json.loads(cfg.read_text()) if cfg.is_file() else {}
    print(f"model {args.model}: {about.get('model_type', '?')}, {about.get('num_hidden_layers', '?')} layers, "
          f"width {about.get('hidden_size', '?')}, vocabulary {about.get('vocab_size', '?')}; engine {args.engine}")
    print(f"{'budget s':>8} {'wall s':>7} {'used':>6} {'overrun s':>9} {'trained':>7} {'landed':>6} "
          f"{'busy core':>9}")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        for budget in map(int, args.budgets.split(",")):
            measure(args, budget)
    finally:
        if hog:
            hog.kill()


def measure(args: argparse.Namespace, budget: int) -> None:
    """One run under `budget`; one table row."""
    out = Path(tempfile.mkdtemp()) / "run"
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "submission", "run", "--limit", str(args.tasks), "--out", str(out),
                        "--budget", str(budget), "--engine", args.engine, "--model", args.model],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.monotonic() - t
    if r.returncode != 0:
        print(r.stderr[-2000:])
        return
    s = json.loads((out / "summary.json").read_text())
    print(f"{budget:>8} {wall:>7.1f} {wall / budget:>6.0%} {wall - budget:>9.1f} {s['adapters']:>7} "
          f"{s['adapter_answers_landed']:>6} {'yes' if args.busy else 'no':>9}", flush=True)


if __name__ == "__main__":
    main()
