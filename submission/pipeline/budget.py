"""Cost model and plan: predicted seconds per task from token counts and a hardware profile,
re-fitted from what a run measures. `python -m submission plan` prints it before anything heavy.

Profiles are throughputs for the model class they name. CPU and H100 TTT figures were measured
(benchmarks/README.md); the others are estimates to be overridden with --ttt-tok-s etc. once a
first run on that hardware has printed its measured figures (summary.json: "measured").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from submission.arc.data import Task
from submission.arc.grid import MAX_SIDE
from submission.arc.prompts import build_prompts
from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset


@dataclass(frozen=True)
class Profile:
    ttt_tok_s: float  # training tokens per second (forward + backward), LoRA
    prefill_tok_s: float  # prompt tokens per second in batched inference
    decode_tok_s: float  # generated tokens per second in batched inference
    engine_start_s: float  # loading an engine (trainer or vLLM) once per phase and worker
    note: str = ""
    ref_params: float = 8e9  # the model size the throughputs are for; bigger models are scaled down


PROFILES = {
    "cpu": Profile(15_000, 20_000, 2_000, 15, "random tiny model (0.3 M) on 2 CPU cores (measured)", 300_160),
    "t4x2": Profile(700, 4_000, 300, 240, "8B QLoRA on a 16 GB T4 (estimate)"),
    # per L4 GPU. TTT calibrated on NVARC's published figure: Qwen3-4B, 120 ARC-AGI-2 tasks, 8.3 GPU-h of
    # TTT on L4s; its recipe (--preset nvarc) plans 22.2 M training tokens for those tasks -> 743 tok/s at
    # 4.0 B parameters (an 8B model gets half via for_model). Inference: an estimate (NVARC's 7.4 GPU-h
    # were its own DFS over more augmentations, not comparable token for token).
    "l4x4": Profile(743, 8_000, 700, 180, "per L4; TTT calibrated on NVARC (Qwen3-4B, 8.3 GPU-h for 120 "
                                          "tasks), inference estimate", 4.0e9),
    "h100": Profile(5_000, 40_000, 3_000, 120, "8B bf16, TTT measured with grad ckpt; inference estimate"),
}


def for_model(profile: Profile, params: float) -> Profile:
    """Throughputs scaled down for a model larger than the profile's (compute ~ parameters);
    never scaled up: small models on big hardware are overhead-bound."""
    if params <= profile.ref_params:
        return profile
    k = profile.ref_params / params
    return replace(profile, ttt_tok_s=profile.ttt_tok_s * k, prefill_tok_s=profile.prefill_tok_s * k,
                   decode_tok_s=profile.decode_tok_s * k, ref_params=params,
                   note=f"{profile.note}, scaled to {params / 1e6:.1f} M parameters")


def grid_tokens(fmt, h: int, w: int) -> int:
    """Tokens of an h x w answer in `fmt` (its end token included), estimated from the rendered text."""
    from submission.arc.formats import estimate_tokens

    return estimate_tokens(fmt.target(np.zeros((h, w), dtype=np.int8))) - 1  # no BOS inside an answer


def max_answer_tokens(fmt) -> int:
    """The largest answer a format can give: a 30x30 grid."""
    return grid_tokens(fmt, MAX_SIDE, MAX_SIDE)


def answer_limit(task: Task, test_index: int, fmt) -> int:
    """Tokens an answer may take: twice the larger of the biggest demo output and the test input
    scaled by the task's largest output/input ratio (either orientation), at most a 30x30 grid. A
    model that never stops costs this, not a 30x30 grid's worth, per prompt."""
    def tokens(g) -> int:
        h, w = g.shape
        return max(grid_tokens(fmt, h, w), grid_tokens(fmt, w, h))

    ratio = max(tokens(p.output) / tokens(p.input) for p in task.train)
    guess = max(max(tokens(p.output) for p in task.train), ratio * tokens(task.test[test_index].input))
    return min(max_answer_tokens(fmt), int(2 * guess) + 8)


@dataclass
class TaskPlan:
    task_id: str
    demos: int
    ttt_examples: int
    ttt_tokens: int  # tokens trained on (all epochs)
    prompts: int
    prompt_tokens: int
    answer_tokens: int  # expected generated tokens (all prompts)
    paths: float = 1.0  # greedy paths per prompt (--search dfs: see expected_paths)

    def ttt_s(self, p: Profile) -> float:
        return self.ttt_tokens / p.ttt_tok_s

    def infer_s(self, p: Profile) -> float:
        branches = (self.paths - 1) * BRANCH_SHARE * self.answer_tokens  # re-run answer tokens, prefix + rest
        return (self.prompt_tokens + branches) / p.prefill_tok_s + (self.answer_tokens + branches) / p.decode_tok_s


def expected_answer_tokens(task: Task, fmt) -> int:
    """The largest demo output, as tokens: a fair guess of an answer's length."""
    return max(grid_tokens(fmt, *p.output.shape) for p in task.train)


def plan_task(task: Task, ttt: TTTDataConfig, epochs: int, transforms: int, orders: int, fmt,
              seed: int = 0, paths: float = 1.0) -> TaskPlan:
    """Token counts for one task (estimated from the rendered texts: one token per character and per
    special token, as for one-token-per-cell formats); `paths`: greedy paths per prompt (expected_paths)."""
    from submission.arc.formats import estimate_tokens

    examples = build_ttt_dataset(task, ttt, fmt, seed)
    prompts = build_prompts(task, transforms, orders, fmt, seed)
    return TaskPlan(task.id, len(task.train), len(examples), epochs * sum(estimate_tokens(e.text) for e in examples),
                    len(prompts), sum(estimate_tokens(p.text) for p in prompts),
                    len(prompts) * expected_answer_tokens(task, fmt), paths)


# --search dfs: a prompt costs its greedy path plus branch paths. Each branch prefills its prefix
# (the prompt comes from the prefix cache) and decodes the rest: about one answer's tokens, split.
BRANCH_SHARE = 0.5  # of an answer's tokens prefilled and again decoded per branch path
DFS_EXTRA_PATHS_AT_P10 = 1.0  # measured branch paths per prompt at --min-prob 0.1 (benchmarks/README.md,
# bench_search.py: the trained tiny model with TTT); the cost fit corrects it within a run


def expected_paths(search: str, min_prob: float) -> float:
    """Greedy paths per prompt to plan for: 1, or under dfs 1 + the measured branches, scaled by
    0.1/P (fewer answers clear a higher bar) and never above the 1/P that can exist."""
    if search != "dfs":
        return 1.0
    return min(1.0 / min_prob, 1.0 + DFS_EXTRA_PATHS_AT_P10 * 0.1 / min_prob)


def worst_paths(request) -> int:
    """Greedy paths a request may run at most: 1, or 1/P for a threshold search (engines/search.py)."""
    min_prob = getattr(request, "min_prob", None)
    return max(1, int(1.0 / min_prob)) if min_prob else 1


RECENT = 5  # the pessimistic speed is the slowest of this many recent measurements
MIN_MEASURE_S = 0.5  # shorter measurements are mostly overhead and noise: not fitted
UNMEASURED_START_FACTOR = 2  # an engine kind not started yet may take twice the slowest start seen


@dataclass
class CostModel:
    """A profile re-fitted from what the run measures. `profile` is the fit over everything so
    far (the plan's best guess); `pessimistic` uses the slowest evidence, so decisions that lose
    work when wrong (starting one more TTT task, the size of an engine call) hold on a noisy or
    slow machine: the slowest recent engine call, a TTT slowdown (before any engine call is
    measured, or when TTT has slowed since), and the slowest engine start seen."""

    base: Profile
    infer: list = field(default_factory=list)  # (predicted s at the base profile, measured s) per engine call
    ttt: list = field(default_factory=list)  # (tokens, seconds) per trained task
    starts: dict = field(default_factory=dict)  # kind ("train", "gen") -> seconds per engine start (warm-up included)

    def observe_ttt(self, tokens: int, seconds: float) -> None:
        if seconds >= MIN_MEASURE_S:
            self.ttt.append((tokens, seconds))

    def observe_infer(self, predicted_base_s: float, seconds: float) -> None:
        """One engine call: what the base profile predicted for it, and what it took."""
        if seconds >= MIN_MEASURE_S and predicted_base_s > 0:
            self.infer.append((predicted_base_s, seconds))

    def observe_start(self, kind: str, seconds: float) -> None:
        """One engine start, from spawning its worker to its first item (a start cut short: a lower bound)."""
        self.starts.setdefault(kind, []).append(seconds)

    def start_s(self, kind: str) -> float:
        """Seconds to plan for one start of this kind of engine: the slowest seen, or before any, the slowest
        start of any kind (or the profile's) UNMEASURED_START_FACTOR times: a vLLM start is not a trainer's."""
        if self.starts.get(kind):
            return max(self.starts[kind])
        return UNMEASURED_START_FACTOR * max([self.base.engine_start_s, *(x for v in self.starts.values() for x in v)])

    def _fit(self, infer_k: float, ttt_tok_s: float | None) -> Profile:
        p = self.base
        return replace(p, prefill_tok_s=p.prefill_tok_s * infer_k, decode_tok_s=p.decode_tok_s * infer_k,
                       ttt_tok_s=ttt_tok_s or p.ttt_tok_s)

    def _ttt_guess(self, k: float) -> float:
        """TTT speed before any task is measured: a machine that infers k times the profile's speed
        (k < 1: busy, slower hardware) is taken to train that much slower too, never faster."""
        return self.base.ttt_tok_s * min(1.0, k)

    def _ttt_slowdown(self) -> float:
        """How much slower TTT runs lately (<= 1): the recent speed against the run's own mean, or before
        any engine call is measured, the run's TTT speed against the profile's."""
        if not self.ttt:
            return 1.0
        recent = sum(a for a, _ in self.ttt[-RECENT:]) / sum(b for _, b in self.ttt[-RECENT:])
        ref = sum(a for a, _ in self.ttt) / sum(b for _, b in self.ttt) if self.infer else self.base.ttt_tok_s
        return min(1.0, recent / ref)

    @property
    def profile(self) -> Profile:
        k = sum(a for a, _ in self.infer) / sum(b for _, b in self.infer) if self.infer else 1.0
        tok_s = sum(a for a, _ in self.ttt) / sum(b for _, b in self.ttt) if self.ttt else self._ttt_guess(k)
        return self._fit(k, tok_s)

    @property
    def pessimistic(self) -> Profile:
        fitted = self.profile
        k = min((a / b for a, b in self.infer[-RECENT:]), default=1.0)
        k = min(k, fitted.prefill_tok_s / self.base.prefill_tok_s) * self._ttt_slowdown()
        recent = [a / b for a, b in self.ttt[-RECENT:]] or [self._ttt_guess(k)]
        start = max([self.base.engine_start_s, *(x for v in self.starts.values() for x in v)])
        return replace(self._fit(k, min(recent + [fitted.ttt_tok_s])), engine_start_s=start)

    @property
    def measured(self) -> dict:
        return {"ttt_tokens": sum(a for a, _ in self.ttt), "ttt_s": round(sum(b for _, b in self.ttt), 2),
                "infer_predicted_s": round(sum(a for a, _ in self.infer), 2),
                "infer_s": round(sum(b for _, b in self.infer), 2), "engine_calls": len(self.infer),
                "engine_starts_s": {k: [round(x, 1) for x in v] for k, v in self.starts.items()}}


def request_seconds(prompt_tokens: int, answer_tokens: int, p: Profile, paths: float = 1.0) -> float:
    """Predicted seconds of one generation request under a profile (`paths`: see expected_paths)."""
    branches = (paths - 1) * BRANCH_SHARE * answer_tokens
    return (prompt_tokens + branches) / p.prefill_tok_s + (answer_tokens + branches) / p.decode_tok_s


def format_plan(plans: list[TaskPlan], profile: Profile, budget: float, quick: bool = True,
                extra_starts_s: float = 0.0) -> str:
    """The per-task table and totals a user reads before a run."""
    lines = [f"profile: ttt {profile.ttt_tok_s:.0f} tok/s, prefill {profile.prefill_tok_s:.0f} tok/s, "
             f"decode {profile.decode_tok_s:.0f} tok/s, engine start {profile.engine_start_s:.0f} s  ({profile.note})",
             f"{'task':>12} {'demos':>5} {'ttt ex':>6} {'ttt tok':>9} {'prompts':>7} {'prompt tok':>10} "
             f"{'ttt s':>7} {'infer s':>7}"]
    for p in plans:
        lines.append(f"{p.task_id[:12]:>12} {p.demos:>5} {p.ttt_examples:>6} {p.ttt_tokens:>9} {p.prompts:>7} "
                     f"{p.prompt_tokens:>10} {p.ttt_s(profile):>7.1f} {p.infer_s(profile):>7.1f}")
    ttt = sum(p.ttt_s(profile) for p in plans)
    infer = sum(p.infer_s(profile) for p in plans)
    starts = profile.engine_start_s * (3 if quick else 2) + extra_starts_s  # extra: adapter-disk waves
    total = ttt + infer * (1.25 if quick else 1) + starts
    lines.append(f"predicted: TTT {ttt / 60:.1f} min, inference {infer / 60:.1f} min, "
                 f"engine starts {starts / 60:.1f} min, total {total / 60:.1f} min for {len(plans)} tasks")
    if budget and total <= budget:
        lines.append(f"budget {budget / 60:.1f} min: fits")
    elif budget:
        keep = max(0.0, (budget - total + ttt) / ttt) if ttt else 0.0  # the share of TTT tokens that fits
        lines.append(f"budget {budget / 60:.1f} min: does NOT fit: about {keep:.0%} of the TTT work will run; the "
                     "first (largest) tasks train on fewer examples, down to a quarter, and the deadline drops the "
                     "last tasks' TTT (the base model answers them)")
        lines.append(f"to fit: scale the TTT tokens by ~{keep:.2f} (--max-examples, --augmentations or --epochs), "
                     "or cut --transforms/--permutations")
    return "\n".join(lines)


def makespan(costs: list[float], workers: int) -> float:
    """Seconds until the last of these tasks ends when `workers` take them from one shared queue in this
    order, each starting the next task as soon as it is free (list scheduling)."""
    free = [0.0] * max(1, workers)
    for c in costs:
        k = free.index(min(free))
        free[k] += c
    return max(free)


def format_makespans(plans: list[TaskPlan], p: Profile, workers: int, budget: float = 0.0) -> str:
    """The run's wall time on `workers` GPUs for the tasks in the given order and largest first (each task's
    TTT and inference at the profile, one engine start per worker and phase)."""
    costs = [x.ttt_s(p) + x.infer_s(p) for x in plans]
    given, largest = (makespan(c, workers) + 2 * p.engine_start_s for c in (costs, sorted(costs, reverse=True)))
    line = (f"makespan on {workers} workers, one shared queue: {given / 3600:.2f} h in the given order, "
            f"{largest / 3600:.2f} h largest first (--order largest, the default)")
    return line + (f"; budget {budget / 3600:.2f} h" if budget else "")
