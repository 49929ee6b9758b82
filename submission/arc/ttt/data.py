"""Test-time training data (the paper's method): leave-one-out tasks built from a task's own
demonstrations — each demo in turn is the query, the others are the context — each augmented with
random invertible transforms and example orders, deduplicated and capped.

Two ablations of the paper: --ttt-data e2e (each demo alone, no context) and --extra-augment-share
(part of the set made with MARC's TTT-only augmenters, submission.arc.ttt.augment).

Every example carries the character spans of its output grids so a trainer can put the loss on
outputs only (mode 'all', 'all_but_first' or 'query').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from submission.arc.augment import random_transform, transform_pair
from submission.arc.data import Pair, Task
from submission.arc.formats import GridFormat
from submission.arc.text import TextFormat
from submission.arc.ttt.augment import augment_pairs, random_geometric
from submission.knobs import check_choices, knob

LOSS_MODES = ("all", "all_but_first", "query")
TTT_DATA = ("loo", "e2e")
EXTRA_TRIES = 4  # augmenter draws per wanted example: some overflow 30x30 or repeat a text


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
    ttt_data: str = knob("loo", "loo: each demo in turn is the query, the others its context (the paper's "
                                "method) | e2e: each demo alone as one input->output pair; the paper's ablation "
                                "found e2e scored 38% lower (relative)", TTT_DATA)
    extra_augment_share: float = knob(0.0, "share of the TTT set made by MARC's TTT-only augmenters (size scaling, "
                                           "reflect-concatenate, translate, repeat), on top of D8 x colour x order; "
                                           "0 = none")

    def problems(self) -> list[str]:
        out = check_choices(self)
        if not 0.0 <= self.extra_augment_share <= 1.0:
            out.append(f"--extra-augment-share {self.extra_augment_share}: must be between 0 and 1")
        return out


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


def end_to_end(task: Task) -> list[tuple[Pair, ...]]:
    """Each demo alone, with no context: the paper's end-to-end ablation."""
    return [(p,) for p in task.train]


def base_examples(task: Task, cfg: TTTDataConfig, fmt: GridFormat) -> list[tuple[Pair, ...]]:
    """The untransformed examples under cfg.ttt_data, each fitted to cfg.max_tokens (misfits dropped)."""
    bases = end_to_end(task) if cfg.ttt_data == "e2e" else leave_one_out(task)
    return [b for b in (fit_context(b, cfg.max_tokens, fmt) for b in bases) if b is not None]


def augmented_example(pairs: tuple[Pair, ...], rng: np.random.Generator, cfg: TTTDataConfig,
                      fmt: GridFormat) -> TTTExample:
    """One random invertible transform of an example, its context shuffled if cfg.permute_demos."""
    t = random_transform(rng, cfg.color_policy)
    context = pairs[:-1]
    if cfg.permute_demos and len(context) > 1:
        context = tuple(context[i] for i in rng.permutation(len(context)))
    return render_example(tuple(transform_pair(t, p) for p in (*context, pairs[-1])), fmt)


def build_ttt_dataset(task: Task, cfg: TTTDataConfig, fmt: GridFormat, seed: int = 0) -> list[TTTExample]:
    """Augmented, deduplicated, capped examples for one task (identity copies first), a share of them
    through MARC's TTT-only augmenters when cfg.extra_augment_share > 0 (those come last)."""
    rng = np.random.default_rng(seed)
    bases = base_examples(task, cfg, fmt)
    seen = {ex.text: ex for ex in (render_example(b, fmt) for b in bases)}  # identity copies first
    n_identity = len(seen)
    for base in bases:
        for _ in range(cfg.augmentations):
            seen.setdefault((ex := augmented_example(base, rng, cfg, fmt)).text, ex)
    n_extra = min(cfg.max_examples, max(0, round(cfg.extra_augment_share * cfg.max_examples)))
    examples = cap_examples(list(seen.values()), n_identity, cfg.max_examples - n_extra, rng)
    if n_extra:
        examples += extra_examples(bases, n_extra, set(seen), rng, cfg, fmt)
    while len(examples) > 1 and sum(len(e.text) for e in examples) > cfg.max_total_tokens:
        examples.remove(max(examples, key=lambda e: len(e.text)))  # drop the longest first
    return examples


def cap_examples(examples: list[TTTExample], n_id: int, cap: int, rng: np.random.Generator) -> list[TTTExample]:
    """At most `cap` examples: the first n_id (the identity copies: every query once), a random rest."""
    if len(examples) <= cap:
        return examples
    rest = examples[n_id:]
    picked = sorted(rng.choice(len(rest), max(0, cap - n_id), replace=False))
    return examples[:min(n_id, cap)] + [rest[i] for i in picked]


def extra_examples(bases: list[tuple[Pair, ...]], n: int, seen: set[str], rng: np.random.Generator,
                   cfg: TTTDataConfig, fmt: GridFormat) -> list[TTTExample]:
    """Up to n new examples, the bases in turn, each through one random TTT-only augmenter and a
    random transform; skips grids over 30 per side, examples over max_tokens and repeated texts."""
    out: list[TTTExample] = []
    for k in range(n * EXTRA_TRIES if bases else 0):
        if len(out) == n:
            break
        pairs = augment_pairs(random_geometric(rng), bases[k % len(bases)])
        pairs = pairs and fit_context(pairs, cfg.max_tokens, fmt)
        if pairs is None:
            continue
        ex = augmented_example(pairs, rng, cfg, fmt)
        if ex.text not in seen:
            seen.add(ex.text)
            out.append(ex)
    return out
