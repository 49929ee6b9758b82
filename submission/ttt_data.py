"""Test-time training data (the paper's method): leave-one-out tasks built from a task's own
demonstrations — each demo in turn is the query, the others are the context — each augmented with
random invertible transforms and example orders, deduplicated and capped.

Every example carries the character spans of its output grids so a trainer can put the loss on
outputs only (mode 'all', 'all_but_first' or 'query').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from submission.augment import IDENTITY, random_transform, transform_pair
from submission.data import Pair, Task
from submission.formats import GridFormat
from submission.knobs import knob
from submission.text import TextFormat

LOSS_MODES = ("all", "all_but_first", "query")


@dataclass(frozen=True)
class TTTDataConfig:
    augmentations: int = knob(16, "random transforms per leave-one-out task; the paper's TTT set is ~250/task")
    max_examples: int = knob(64, "TTT examples per task; more costs TTT time roughly linearly")
    max_tokens: int = knob(8192, "per example (~tokens); larger context demos are dropped to fit")
    max_total_tokens: int = knob(400_000, "per task; bounds TTT time; the longest examples go first")
    color_policy: str = knob("keep0", "keep0 | all | none; keep0 keeps the background colour fixed",
                             ("keep0", "all", "none"))
    permute_demos: bool = knob(True, "shuffle the context order per example")
    loss_mode: str = knob("all_but_first", "all | all_but_first | query: the first output has no context to "
                                           "infer from", LOSS_MODES)


@dataclass(frozen=True)
class TTTExample:
    text: str
    output_spans: tuple[tuple[int, int], ...]  # [start, end) of every output (incl. end marker), query last

    def loss_spans(self, mode: str) -> tuple[tuple[int, int], ...]:
        """The spans that carry loss under `mode`."""
        if mode == "all":
            return self.output_spans
        if mode == "all_but_first":
            return self.output_spans[1:] or self.output_spans
        if mode == "query":
            return self.output_spans[-1:]
        raise ValueError(f"loss mode must be one of {LOSS_MODES}, got {mode!r}")


def render_example(pairs: tuple[Pair, ...], fmt: GridFormat) -> TTTExample:
    """Text of a sequence of solved pairs (the last one is the query) with its output spans, as the
    format renders a training text."""
    return TTTExample(*fmt.render([(p.input, p.output) for p in pairs]))


def leave_one_out(task: Task) -> list[tuple[Pair, ...]]:
    """Each demo in turn as the query, the others before it as context (one demo: itself alone)."""
    demos = task.train
    return [demos[:i] + demos[i + 1:] + (demos[i],) for i in range(len(demos))]


def pair_chars(p: Pair) -> int:
    """Characters (≈ tokens) of one rendered pair, markers aside."""
    return sum(g.shape[0] * (g.shape[1] + 1) for g in (p.input, p.output) if g is not None)


def fit_context(pairs: tuple[Pair, ...], max_tokens: int, fmt: GridFormat | None = None) -> tuple[Pair, ...] | None:
    """Drop the largest context pairs until the example fits `max_tokens` by the format's estimate
    (compact's if None); None if the query alone does not."""
    fmt = fmt or TextFormat()
    pairs = list(pairs)
    while fmt.cost([(p.input, p.output) for p in pairs[:-1]], pairs[-1].input, pairs[-1].output) > max_tokens:
        if len(pairs) == 1:
            return None
        pairs.pop(max(range(len(pairs) - 1), key=lambda i: pair_chars(pairs[i])))
    return tuple(pairs)


def build_ttt_dataset(task: Task, cfg: TTTDataConfig, fmt: GridFormat, seed: int = 0) -> list[TTTExample]:
    """Augmented, deduplicated, capped leave-one-out examples for one task (identity copies first)."""
    rng = np.random.default_rng(seed)
    seen: dict[str, TTTExample] = {}
    for base in leave_one_out(task):
        base = fit_context(base, cfg.max_tokens, fmt)
        if base is None:
            continue
        for k in range(cfg.augmentations + 1):
            t = IDENTITY if k == 0 else random_transform(rng, cfg.color_policy)
            context = base[:-1]
            if cfg.permute_demos and k > 0 and len(context) > 1:
                context = tuple(context[i] for i in rng.permutation(len(context)))
            ex = render_example(tuple(transform_pair(t, p) for p in (*context, base[-1])), fmt)
            seen.setdefault(ex.text, ex)
    examples = list(seen.values())
    n_id = min(len(task.train), len(examples))  # identity copies come first: keep every query once
    if len(examples) > cfg.max_examples:
        rest = examples[n_id:]
        k = max(0, cfg.max_examples - n_id)
        picked = sorted(rng.choice(len(rest), k, replace=False))
        examples = examples[:min(n_id, cfg.max_examples)] + [rest[i] for i in picked]
    while len(examples) > 1 and sum(len(e.text) for e in examples) > cfg.max_total_tokens:
        examples.remove(max(examples, key=lambda e: len(e.text)))  # drop the longest first
    return examples
