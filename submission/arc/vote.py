"""Self-consistency selection over predictions already mapped back to the original frame.

hierarchical_vote is the paper's rule: within each transform keep the top 3 answers by count,
then vote globally over those (one vote per transform that ranks an answer in its top 3) for
the top 2; ties prefer answers the identity transform produced. flat_vote counts everything.
Both return every candidate ranked, with its counts, so other rules can sit beside them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from submission.arc.grid import Grid, grid_key


@dataclass(frozen=True)
class Prediction:
    grid: Grid  # in the original frame
    transform: str  # name of the transform whose prompt produced it
    is_identity: bool = False
    logprob: float | None = None  # the answer's log-probability under its prompt, when the engine gave it


@dataclass
class Candidate:
    grid: Grid
    count: int = 0  # predictions equal to this grid
    transform_votes: int = 0  # transforms that rank it in their top 3 (hierarchical)
    from_identity: bool = False
    first_seen: int = 0
    by_transform: dict[str, int] = field(default_factory=dict)


def _candidates(preds: Iterable[Prediction]) -> dict[tuple, Candidate]:
    cands: dict[tuple, Candidate] = {}
    for i, p in enumerate(preds):
        c = cands.setdefault(grid_key(p.grid), Candidate(p.grid, first_seen=i))
        c.count += 1
        c.from_identity |= p.is_identity
        c.by_transform[p.transform] = c.by_transform.get(p.transform, 0) + 1
    return cands


def flat_vote(preds: Iterable[Prediction]) -> list[Candidate]:
    """All candidates, most frequent first; ties: identity-produced, then first seen."""
    return sorted(_candidates(preds).values(), key=lambda c: (-c.count, not c.from_identity, c.first_seen))


def hierarchical_vote(preds: Iterable[Prediction], top_k: int = 3) -> list[Candidate]:
    """All candidates ranked by the paper's two-level vote (transform top-k, then global)."""
    preds = list(preds)
    cands = _candidates(preds)
    per_t: dict[str, Counter] = defaultdict(Counter)
    first: dict[tuple, int] = {}
    for i, p in enumerate(preds):
        k = grid_key(p.grid)
        per_t[p.transform][k] += 1
        first.setdefault(k, i)
    identity_names = {p.transform for p in preds if p.is_identity}
    identity_top: set = set()
    for name, counts in per_t.items():
        top = sorted(counts, key=lambda k: (-counts[k], first[k]))[:top_k]
        for k in top:
            cands[k].transform_votes += 1
        if name in identity_names:
            identity_top.update(top)
    return sorted(cands.values(), key=lambda c: (-c.transform_votes, grid_key(c.grid) not in identity_top,
                                                 -c.count, c.first_seen))


def poe_rank(ranked: list[Candidate], scores: dict[tuple, list[float]]) -> list[Candidate]:
    """Product of experts (the ARChitects): candidates by the sum of their log-probabilities under
    the scoring augmentations, i.e. the product of the augmentations' probabilities. Unscored
    candidates keep their vote order after the scored ones."""
    scored = [c for c in ranked if grid_key(c.grid) in scores]
    scored.sort(key=lambda c: -sum(scores[grid_key(c.grid)]))
    return scored + [c for c in ranked if grid_key(c.grid) not in scores]


def combined_rank(ranked: list[Candidate], scores: dict[tuple, list[float]]) -> list[Candidate]:
    """Votes and likelihood together: log(vote count) + mean log-probability over augmentations."""
    import math

    scored = [c for c in ranked if grid_key(c.grid) in scores]
    scored.sort(key=lambda c: -(math.log(c.count) + sum(scores[grid_key(c.grid)]) / len(scores[grid_key(c.grid)])))
    return scored + [c for c in ranked if grid_key(c.grid) not in scores]


def nvarc_rank(ranked: list[Candidate], scores: dict[tuple, list[float]]) -> list[Candidate]:
    """NVARC's rule (ARC Prize 2025, `score_kgmon`): how often a candidate was found (over every
    augmented prompt and every threshold-search answer) plus its mean log-probability over the
    scoring augmentations, the same augmentations for every candidate. Unscored candidates keep
    their order after the scored ones."""
    scored = [c for c in ranked if grid_key(c.grid) in scores]
    scored.sort(key=lambda c: -(c.count + sum(scores[grid_key(c.grid)]) / len(scores[grid_key(c.grid)])))
    return scored + [c for c in ranked if grid_key(c.grid) not in scores]


def top2(ranked: list[Candidate]) -> list[Grid]:
    """The two attempts: the best two candidates (the best twice if there is only one)."""
    grids = [c.grid for c in ranked[:2]]
    return grids + grids[:1] if len(grids) == 1 else grids


RULES = ("identity", "vote", "flat", "poe", "combined", "nvarc")


def rank(preds: list[Prediction], rule: str, scores: dict[tuple, list[float]] | None = None) -> list[Candidate]:
    """Candidates ranked by a selection rule: the paper's hierarchical vote, a flat vote, product
    of experts, votes + likelihood, or NVARC's count + mean likelihood (the last three fall back to
    a vote without scores).
    'identity' is the no-augmentation baseline: only the untransformed prompts' answers count
    (with one demo order: the single plain prompt's answer)."""
    if rule == "identity":
        return flat_vote([p for p in preds if p.is_identity])
    if rule == "flat":
        return flat_vote(preds)
    if rule == "nvarc":  # counts, not the hierarchical vote, order NVARC's candidates
        return nvarc_rank(flat_vote(preds), scores or {})
    ranked = hierarchical_vote(preds)
    if rule == "poe":
        return poe_rank(ranked, scores or {})
    if rule == "combined":
        return combined_rank(ranked, scores or {})
    if rule != "vote":
        raise ValueError(f"selection rule must be one of {RULES}, got {rule!r}")
    return ranked
