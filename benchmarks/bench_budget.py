"""Deadline keeping on CPU: for each budget, run 20 ARC-AGI-1 eval tasks on a model (default: the
trained tiny ARC model, models/arc-tiny, which `run` also defaults to) and print the wall time
(from process start), the fraction of the budget used, the overrun (must never be positive) and how
many tasks got a TTT adapter. The model is printed first: figures depend on it.

    python benchmarks/bench_budget.py [--model models/arc-tiny] [--budgets 60,120,300] [--tasks 20]
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
    ap.add_argument("--budgets", default="60,120,300")
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--model", default=str(ROOT / "models" / "arc-tiny"), help="HF model folder")
    args = ap.parse_args()
    cfg = Path(args.model) / "config.json"
    about = json.loads(cfg.read_text()) if cfg.is_file() else {}
    print(f"model {args.model}: {about.get('model_type', '?')}, {about.get('num_hidden_layers', '?')} layers, "
          f"width {about.get('hidden_size', '?')}, vocabulary {about.get('vocab_size', '?')}; engine {args.engine}")
    print(f"{'budget s':>8} {'wall s':>7} {'used':>6} {'overrun s':>9} {'TTT tasks':>9} {'answered':>8}")
    for budget in map(int, args.budgets.split(",")):
        out = Path(tempfile.mkdtemp()) / "run"
        t = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "submission", "run", "--limit", str(args.tasks), "--out", str(out),
                            "--budget", str(budget), "--engine", args.engine, "--model", args.model],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.monotonic() - t
        if r.returncode != 0:
            print(r.stderr[-2000:])
            continue
        s = json.loads((out / "summary.json").read_text())
        answered = sum(s["answered_by"].values())
        print(f"{budget:>8} {wall:>7.1f} {wall / budget:>6.0%} {wall - budget:>9.1f} {s['adapters']:>9} "
              f"{answered:>8}")


if __name__ == "__main__":
    main()
