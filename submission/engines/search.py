"""Threshold search: every completion whose probability is at least P, found from greedy paths.

An engine runs *paths*: greedy decoding from the prompt plus a branch prefix, reporting at every
step the raw log-probability of every token of the answer vocabulary. `Search` turns finished paths
into candidates and new branches; the engine runs the branches in its next batched round (vLLM:
prompt + prefix as a new request, whose shared prompt the prefix cache serves; HF: one padded
greedy batch). Pure: no torch, so it is tested without a model.

Branches. Walking a path from its prefix (log-probability L so far), every step offers each
other token a of the answer vocabulary: if L + logp(a) >= log P, the prefix + a is a branch (a stop
token ends the answer at once: a candidate, nothing to run). The walk stops where L drops below
log P, since probabilities only shrink along a sequence, and so may the engine: `limit` tells it
how far a branch's path may fall before it can force the stop token (pruning, as the ARChitects'
DFS does; without it every branch would decode a whole answer).

Greedy included. The first path (no prefix) is never pruned and its answer is always a candidate,
at its own probability even below P: --search dfs is greedy decoding plus every other answer >= P,
so its candidate pool never loses what greedy found (a model too unsure for P still answers).

Exactness. Take any completion c with p(c) >= P, and among the paths run take one sharing the
longest prefix with c, and of those the one with the shortest forced prefix. It cannot diverge
from c inside its forced prefix (its parent path would then share as much with a shorter forced
prefix), so it diverges in its greedy part, at a step where c's prefix plus c's token has
probability >= p(c) >= P: that was queued as a branch, which shares a longer prefix with c, a
contradiction unless the path is c itself. So every completion >= P is found, with the
log-probability the model gives it (the stop token's included). A pruned path is walked only up to
where it fell below the bound, so its forced stop is never read as an answer.

Work. Every path ends at its own leaf of the tree of prefixes with probability >= P (the greedy
child is the most probable, so where it falls below P every child does); leaves are not prefixes
of one another, so their probabilities sum to <= 1: at most 1/P paths per request, whatever the
model does.

The cap. Past `max_candidates` candidates the bound rises to the weakest of the best
`max_candidates` found so far; a prefix below it cannot hold a better answer, so the result is
exactly the `max_candidates` most probable completions >= P (with the greedy answer, which may be
one of them or the weakest), and a flat distribution ends early.

Raw log-probabilities. Engines report the model's unconstrained softmax (vLLM
logprobs_mode="raw_logprobs", HF log_softmax of the logits), the same quantity PoE scoring sums. The
constrained decode picks the same argmax, but a raw probability is <= the one renormalised over the
answer vocabulary, so P on raw probabilities is the stricter threshold (a subset of the renormalised
candidates). A model trained on the format puts nearly all its mass on the answer vocabulary and the
two coincide; with a reduced vocabulary (the ARChitects, NVARC) they are the same by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from submission.engines.api import Completion


@dataclass(frozen=True)
class Branch:
    prefix: tuple[int, ...]  # answer tokens forced before greedy decoding takes over
    logprob: float  # the prefix's raw log-probability


@dataclass
class Search:
    """One request's search: candidates found, branches queued, paths still running."""

    min_prob: float
    max_candidates: int
    max_tokens: int  # answer tokens, the stop token included
    stop_ids: frozenset[int]
    candidates: dict[tuple[int, ...], float] = field(default_factory=dict)  # answer ids -> log-probability
    queued: list[Branch] = field(default_factory=lambda: [Branch((), 0.0)])  # the greedy path first
    seen: set[tuple[int, ...]] = field(default_factory=lambda: {()})  # prefixes ever queued (no repeats)
    running: int = 0
    paths: int = 0  # paths finished (the cost: each one is an engine sequence)

    def bound(self) -> float:
        """The log-probability an answer must reach to be kept: log P, raised to the weakest of the
        best max_candidates once that many are found."""
        floor = math.log(self.min_prob)
        if len(self.candidates) < self.max_candidates:
            return floor
        return max(floor, sorted(self.candidates.values(), reverse=True)[self.max_candidates - 1])

    def take(self) -> list[Branch]:
        """The queued branches still worth running, most probable first; they count as running."""
        bound = self.bound()
        out = sorted((b for b in self.queued if b.logprob >= bound), key=lambda b: -b.logprob)
        self.queued = []
        self.running += len(out)
        return out

    def limit(self, branch: Branch) -> float | None:
        """How far (log-probability) a branch's path may fall below its start before the engine may
        force a stop; None for the greedy path, which runs to its end."""
        return self.bound() - branch.logprob if branch.prefix else None

    def add_path(self, branch: Branch, tokens: Sequence[int], steps: Sequence[Mapping[int, float]]) -> None:
        """A path from `branch` finished: its greedy tokens (ending with a stop token if it stopped,
        or was stopped past its limit) and, per step, {token: raw log-probability} over the answer
        vocabulary."""
        self.running -= 1
        self.paths += 1
        lp, prefix, greedy = branch.logprob, list(branch.prefix), not branch.prefix
        for tok, step in zip(tokens, steps):
            bound = self.bound()
            for alt, alt_lp in step.items():
                if alt != tok and lp + alt_lp >= bound:
                    self._branch(prefix, alt, lp + alt_lp)
            lp += step[tok]
            prefix.append(tok)
            if tok in self.stop_ids:
                self._found(tuple(prefix[:-1]), lp, always=greedy)
                return
            if lp < bound and not greedy:  # every continuation is at most this probable
                return

    @property
    def done(self) -> bool:
        return not self.running and not self.queued

    def result(self) -> list[Completion]:
        """The candidates, most probable first, at most max_candidates."""
        best = sorted(self.candidates.items(), key=lambda kv: -kv[1])[:self.max_candidates]
        return [Completion(ids, lp) for ids, lp in best]

    def _branch(self, prefix: list[int], tok: int, lp: float) -> None:
        if tok in self.stop_ids:  # the answer ends here: nothing left to generate
            self._found(tuple(prefix), lp)
            return
        key = (*prefix, tok)
        if len(key) < self.max_tokens and key not in self.seen:  # room left for at least a stop token
            self.seen.add(key)
            self.queued.append(Branch(key, lp))

    def _found(self, ids: tuple[int, ...], lp: float, always: bool = False) -> None:
        if always or lp >= self.bound():
            self.candidates[ids] = max(lp, self.candidates.get(ids, -math.inf))


def new_search(request, stop_ids: Sequence[int]) -> Search:
    """The search state of a SearchRequest."""
    return Search(request.min_prob, request.max_candidates, request.max_tokens, frozenset(stop_ids))
