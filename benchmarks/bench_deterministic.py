"""What --deterministic costs: the same inference-only run (the trained tiny model, no TTT, main phase
only) with and without it, side by side in one process; prints the main phase's seconds and the ratio.

    python benchmarks/bench_deterministic.py [--tasks 8] [--engine vllm]

One engine call per task instead of calls sized in predicted seconds across tasks: fewer prompts in
flight per call. No TTT here: with adapters the calls are per task either way (one LoRA each)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main_seconds(tasks: int, engine: str, deterministic: bool, out: Path) -> float:
    cmd = [sys.executable, "-m", "submission", "run", "--challenges", "arc1-eval", "--limit", str(tasks),
           "--model", str(ROOT / "models" / "arc-tiny"), "--out", str(out), "--engine", engine, "--trainer", "none",
           "--quick-transforms", "0", "--score-augmentations", "0", "--extra-rounds", "0"]
    cmd += ["--deterministic"] if deterministic else []
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return json.loads((out / "summary.json").read_text())["times_s"]["main"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--engine", default="vllm", choices=("vllm", "hf"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = main_seconds(args.tasks, args.engine, False, Path(tmp) / "plain")
        fixed = main_seconds(args.tasks, args.engine, True, Path(tmp) / "det")
    print(f"{args.tasks} arc1-eval tasks, {args.engine}, main phase: default {plain:.1f} s, --deterministic "
          f"{fixed:.1f} s, ratio {fixed / plain:.2f}")


if __name__ == "__main__":
    main()
