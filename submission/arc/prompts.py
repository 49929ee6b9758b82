"""Inference prompt sets: for each test input, prompts under T transforms x P example orders,
each carrying the transform that maps its answer back to the original frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from submission.arc.augment import D8, Transform, color_permutation
from submission.arc.data import Task
from submission.arc.formats import GridFormat
from submission.arc.text import TextFormat


@dataclass(frozen=True)
class Prompt:
    task_id: str
    test_index: int
    transform: Transform  # applied to the task; its inverse maps the answer back
    order: tuple[int, ...]  # demo order used in the prompt
    text: str


TRANSFORM_COLORS = ("after_d8", "with_d8")


def inference_transforms(n: int, rng: np.random.Generator, color_policy: str = "keep0",
                         colors: str = "after_d8") -> list[Transform]:
    """Identity first. after_d8: the other 7 D8 symmetries, then D8 with random colour maps (the first
    8 do not depend on the seed). with_d8: every later one is D8 (in turn) with a random colour map,
    so two seeds ask different prompts. Fewer than n if the colour policy cannot make n distinct."""
    if colors not in TRANSFORM_COLORS:
        raise ValueError(f"transform colours must be one of {TRANSFORM_COLORS}, got {colors!r}")
    plain = len(D8) if colors == "after_d8" else 1
    out = [Transform(d) for d in range(min(n, plain))]
    seen = set(out)
    for _ in range(50 * n):
        if len(out) >= n:
            break
        t = Transform(len(out) % len(D8), color_permutation(rng, color_policy))
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def demo_orders(n_demos: int, n: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """The original order first, then distinct random orders (fewer if n_demos! < n)."""
    orders = [tuple(range(n_demos))]
    seen = set(orders)
    for _ in range(20 * n):
        if len(orders) >= n:
            break
        o = tuple(int(i) for i in rng.permutation(n_demos))
        if o not in seen:
            seen.add(o)
            orders.append(o)
    return orders


def fit_demos(task: Task, order: tuple[int, ...], test_index: int, max_tokens: int,
              fmt: GridFormat | None = None) -> tuple[int, ...]:
    """Drop the largest demos from an order until the prompt plus room for the largest possible
    answer fits `max_tokens` by the format's estimate (compact's if None); keeps at least one."""
    def size(i: int) -> int:
        p = task.train[i]
        return p.input.size + p.input.shape[0] + p.output.size + p.output.shape[0]

    fmt = fmt or TextFormat()
    q = task.test[test_index].input
    order = list(order)
    while len(order) > 1 and fmt.cost([(task.train[i].input, task.train[i].output) for i in order], q) > max_tokens:
        order.remove(max(order, key=size))
    return tuple(order)


def build_prompts(task: Task, n_transforms: int, n_orders: int, fmt: GridFormat, seed: int = 0,
                  color_policy: str = "keep0", max_tokens: int = 1 << 30, colors: str = "after_d8") -> list[Prompt]:
    """All prompts for every test input of a task, deduplicated by text."""
    rng = np.random.default_rng(seed)
    transforms = inference_transforms(n_transforms, rng, color_policy, colors)
    orders = demo_orders(len(task.train), n_orders, rng)
    prompts, seen = [], set()
    for ti, test in enumerate(task.test):
        for t in transforms:
            for order in orders:
                order = fit_demos(task, order, ti, max_tokens, fmt)
                demos = [(t(task.train[i].input), t(task.train[i].output)) for i in order]
                text = fmt.prompt(demos, t(test.input))
                if (ti, text) not in seen:
                    seen.add((ti, text))
                    prompts.append(Prompt(task.id, ti, t, order, text))
    return prompts
