"""Core speed on all 400 ARC-AGI-1 eval tasks: TTT datasets (64 augmented examples per task),
inference prompt sets (16 per test input), and votes over synthetic candidates.

    python benchmarks/bench_core.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

from submission.arc.data import load_challenges  # noqa: E402
from submission.arc.prompts import build_prompts  # noqa: E402
from submission.arc.text import TextFormat, parse_grid  # noqa: E402
from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset  # noqa: E402
from submission.arc.vote import Prediction, hierarchical_vote, top2  # noqa: E402


def main() -> None:
    fmt = TextFormat()
    t = time.perf_counter()
    ts = load_challenges("arc1-eval")
    tasks = list(ts.tasks.values())
    times = {"load + validate": time.perf_counter() - t}

    t = time.perf_counter()
    cfg = TTTDataConfig(augmentations=64, max_examples=64)
    n_ex = sum(len(build_ttt_dataset(task, cfg, fmt, seed=i)) for i, task in enumerate(tasks))
    times["TTT datasets"] = time.perf_counter() - t

    t = time.perf_counter()
    prompts = [p for i, task in enumerate(tasks) for p in build_prompts(task, 8, 2, fmt, seed=i)]
    times["prompt sets"] = time.perf_counter() - t

    # synthetic model answers: the prompt's own query grid, i.e. what an "identity" model would say
    rng = np.random.default_rng(0)
    answers = [fmt.target(parse_grid(p.text.rsplit(fmt.input_marker + "\n", 1)[1][: -len(fmt.output_marker) - 1]))
               if rng.random() < 0.7 else "12\n3\n" for p in prompts]
    t = time.perf_counter()
    by_test: dict = {}
    for p, a in zip(prompts, answers):
        g = parse_grid(a, fmt.end_marker)
        if g is not None:
            by_test.setdefault((p.task_id, p.test_index), []).append(
                Prediction(p.transform.invert(g), p.transform.name, p.transform.is_identity))
    picks = {k: top2(hierarchical_vote(v)) for k, v in by_test.items()}
    times["parse + invert + vote"] = time.perf_counter() - t

    total = sum(times.values())
    print(f"{len(tasks)} tasks, {n_ex} TTT examples, {len(prompts)} prompts, {len(picks)} test inputs voted")
    for k, v in times.items():
        print(f"{k:>24}: {v:6.2f} s")
    print(f"{'total':>24}: {total:6.2f} s  ({len(tasks) / total:.0f} tasks/s)")


if __name__ == "__main__":
    main()
