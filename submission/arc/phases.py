"""Which prompts each phase of a run asks, in which order, and what PoE scores (pure ARC logic;
the pipeline turns these texts into engine requests).

Phases: quick (the base model, a few transforms), main (every transform x order, with the task's
adapter), extra (new colour-mapped transforms for the least certain tasks, when time is left).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from submission.arc.data import Task
from submission.arc.formats import GridFormat
from submission.arc.prompts import Prompt, build_prompts, fit_demos, inference_transforms
from submission.arc.vote import Prediction, flat_vote, hierarchical_vote

EXTRA_SEED_OFFSET = 104729  # a prime: the extra phase draws colour maps from a stream the main phase never used
EXTRA_TRANSFORMS = 8  # the extra phase asks this many transforms beyond the main ones


def prompt_key(p: Prompt) -> str:
    """A prompt's identity within its task and phase: what resume checks before generating again."""
    return f"{p.test_index}|{p.transform.name}|{','.join(map(str, p.order))}"


def phase_prompts(task: Task, phase: str, transforms: int, orders: int, quick_transforms: int, fmt: GridFormat,
                  seed: int, max_tokens: int, colors: str = "after_d8") -> list[Prompt]:
    """The prompts a phase asks for one task (colors: see prompts.inference_transforms)."""
    if phase == "quick":
        return build_prompts(task, quick_transforms, 1, fmt, seed, max_tokens=max_tokens, colors=colors)
    main = build_prompts(task, transforms, orders, fmt, seed, max_tokens=max_tokens, colors=colors)
    if phase == "main":
        return main
    seen = {p.text for p in main}
    more = build_prompts(task, transforms + EXTRA_TRANSFORMS, orders, fmt, seed + EXTRA_SEED_OFFSET,
                         max_tokens=max_tokens, colors=colors)
    return [p for p in more if p.text not in seen]


def breadth_first(per_task: dict[str, list[Prompt]]) -> list[Prompt]:
    """All prompts, round by round: every task's first prompt of each test input (the identity
    transform) before any task's second, and so on. A deadline then cuts the widening, not the
    tasks: each task with an adapter has some adapter answers before any has all of them."""
    ranked = []
    for t, (tid, prompts) in enumerate(per_task.items()):
        seen: dict[int, int] = {}
        for p in prompts:
            r = seen.get(p.test_index, 0)
            seen[p.test_index] = r + 1
            ranked.append(((r, t, p.test_index), p))
    return [p for _, p in sorted(ranked, key=lambda x: x[0])]


def poe_texts(task: Task, tests: Sequence[Sequence[Prediction]], n_candidates: int, n_augmentations: int,
              fmt: GridFormat, seed: int, max_tokens: int,
              colors: str = "after_d8") -> list[tuple[int, list, str, str]]:
    """Product-of-experts requests for a task: each top candidate (by vote) under several
    augmentations, the same transform on demos, query and candidate, demos in their original
    order. Returns (test index, candidate grid as lists, prompt text, target text)."""
    transforms = inference_transforms(n_augmentations, np.random.default_rng(seed), colors=colors)
    out = []
    for ti, preds in enumerate(tests):
        order = fit_demos(task, tuple(range(len(task.train))), ti, max_tokens, fmt)
        for c in hierarchical_vote(preds)[:n_candidates]:
            for t in transforms:
                prompt = fmt.prompt([(t(task.train[i].input), t(task.train[i].output)) for i in order],
                                    t(task.test[ti].input))
                out.append((ti, c.grid.tolist(), prompt, fmt.target(t(c.grid))))
    return out


def certainty(tests: Sequence[Sequence[Prediction]]) -> float:
    """Share of parsed answers that agree with the top candidate, worst test input (0: no answers)."""
    shares = [flat_vote(t)[0].count / len(t) if t else 0.0 for t in tests]
    return min(shares) if shares else 0.0
