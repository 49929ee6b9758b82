"""Self-consistency selection over predictions already mapped back to the original frame.

hierarchical_vote is the paper's rule: within each transform keep the top 3 answers by count,
then vote globally over those (one vote per transform that ranks an answer in its top 3) for
the top 2; ties prefer answers the identity transform produced. flat_vote counts everything.
Both return every candidate ranked, with its counts, so other rules can sit beside them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

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


# MARC's vote (the seed paper's code, ekinakyurek/marc arclib/voting.py `vote`): groups by the inverse of the
# prompt's transform; besides the pooled group it votes in the groups it names Transpose(), Flip(0), Flip(1),
# Rotate(180) and Rotate(270): the inverses of our transpose, flip_ud, flip_lr, rot180 and rot270 (np.rot90(g, 1),
# MARC's Rotate(90)). Answers of other transforms (rot90, antitranspose, colour maps) count in the pool only.
MARC_GROUPS = ("identity", "transpose", "flip_ud", "flip_lr", "rot180", "rot270")
Lines = tuple  # a grid as a tuple of row tuples (hashable)


def _most_common(items: list) -> Any:
    """The most frequent item; ties go to the first seen (MARC leaves them to set order)."""
    return Counter(items).most_common(1)[0][0]


def line_majority(outputs: list[Lines], transpose: bool = False) -> Lines:
    """MARC's row-majority grid: of the most common shape, row by row the most common row among the answers
    whose row there has that width (column-majority: the same on the transposed answers). It can be a grid no
    single answer is."""
    if transpose:
        outputs = [tuple(zip(*o)) for o in outputs]
    h, w = _most_common([(len(o), len(o[0])) for o in outputs])
    rows = tuple(_most_common([o[r] for o in outputs if len(o) > r and len(o[r]) == w]) for r in range(h))
    return tuple(zip(*rows)) if transpose else rows


def marc_top3(outputs: list[Lines]) -> list[Lines]:
    """MARC's three per group (`get_all_type_of_votingsv2`): the three most common answers; with fewer than
    three distinct, the second and third slots take the row-majority grid, else the column-majority one."""
    if not outputs:
        return []
    ranked = [g for g, _ in Counter(outputs).most_common()]  # by count, ties first seen
    c1 = ranked[0]
    c2 = ranked[1] if len(ranked) > 1 else c1
    c3 = ranked[2] if len(ranked) > 2 else c1
    row, col = line_majority(outputs), line_majority(outputs, transpose=True)
    if c2 == c1:
        c2 = row if row != c1 else col
    if c3 in (c1, c2):
        c3 = row if row not in (c1, c2) else col
    return [c1, c2, c3]


def marc_vote(preds: Iterable[Prediction]) -> list[Grid]:
    """The two attempts by MARC's vote: three per group (the pool, then MARC_GROUPS in its order), then the
    same three-way vote over those candidates; when the second and third are found equally often, the one the
    identity prompts produced more often takes the second place (on a tie there, the third)."""
    preds = list(preds)
    lines = [tuple(map(tuple, p.grid.tolist())) for p in preds]
    groups = {name: [g for g, p in zip(lines, preds) if p.transform == name] for name in MARC_GROUPS}
    candidates = marc_top3(lines) + [c for name in MARC_GROUPS for c in marc_top3(groups[name])]
    if not candidates:
        return []
    c1, c2, c3 = marc_top3(candidates)
    if candidates.count(c2) == candidates.count(c3) and groups["identity"]:
        identity = groups["identity"]
        c2 = c2 if identity.count(c2) > identity.count(c3) else c3
    return [np.array(c, dtype=np.int8) for c in (c1, c2)]


def top2(ranked: list[Candidate]) -> list[Grid]:
    """The two attempts: the best two candidates (the best twice if there is only one)."""
    grids = [c.grid for c in ranked[:2]]
    return grids + grids[:1] if len(grids) == 1 else grids


RULES = ("identity", "vote", "flat", "poe", "combined", "nvarc", "marc")


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
    if rule == "marc":  # MARC's two attempts first (possibly grids no answer is), then the rest by count
        found = _candidates(preds)
        picked = [found.get(grid_key(g)) or Candidate(g) for g in marc_vote(preds)]
        keys = {grid_key(c.grid) for c in picked}
        return picked + [c for c in flat_vote(preds) if grid_key(c.grid) not in keys]
    ranked = hierarchical_vote(preds)
    if rule == "poe":
        return poe_rank(ranked, scores or {})
    if rule == "combined":
        return combined_rank(ranked, scores or {})
    if rule != "vote":
        raise ValueError(f"selection rule must be one of {RULES}, got {rule!r}")
    return ranked
