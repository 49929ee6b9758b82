"""Prompt and answer tokens per preset on ARC-AGI-1 and ARC-AGI-2 evaluation (median / p90 / max),
and the --max-model-len each needs: the identity prompt of every test input with all its demos,
and its true answer, rendered in each preset's format. Tokens are estimated from the rendered
text (one per cell symbol, separator and special token: the formats are one-token-per-symbol by
construction, and the tokenizer check enforces it). Pure CPU, seconds.

    python benchmarks/bench_presets.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from submission.arc.data import load_challenges, load_solutions  # noqa: E402
from submission.arc.formats import estimate_tokens, make_format  # noqa: E402
from submission.pipeline.presets import PRESETS  # noqa: E402

LENGTHS = (4096, 8192, 12288, 16384, 24576, 32768)  # --max-model-len choices a user would try


def stats(xs: list[int]) -> str:
    a = np.array(xs)
    return f"{int(np.median(a))} / {int(np.percentile(a, 90))} / {a.max()}"


def main() -> None:
    print("| preset | set | prompt tokens (median / p90 / max) | answer tokens (median / p90 / max) | "
          "prompt + answer max | --max-model-len for 100% (for 90%) |")
    print("|---|---|---|---|---|---|")
    for name in PRESETS:
        fmt = make_format(PRESETS[name].format, eos="</s>")
        for bundled in ("arc1-eval", "arc2-eval"):
            tasks, sols = load_challenges(bundled), load_solutions(bundled)
            prompts, answers, totals = [], [], []
            for tid, task in tasks.tasks.items():
                for i, t in enumerate(task.test):
                    p = estimate_tokens(fmt.prompt([(d.input, d.output) for d in task.train], t.input))
                    a = estimate_tokens(fmt.target(np.asarray(sols[tid][i], dtype=np.int8))) - 1
                    prompts.append(p)
                    answers.append(a)
                    totals.append(p + a)
            need = next((n for n in LENGTHS if n >= max(totals)), max(totals))
            need90 = next(n for n in LENGTHS if n >= np.percentile(totals, 90))
            print(f"| {name} | {bundled} | {stats(prompts)} | {stats(answers)} | {max(totals)} | {need} ({need90}) |")


if __name__ == "__main__":
    main()
