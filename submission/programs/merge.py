"""The two attempts per test input from transduction's candidates (ranked by the run's rule) and verified
programs. Pure functions over grids; `ablate` measures each policy against transduction alone (`off`).

  fill             programs only fill what transduction leaves open: no attempts at all (both
                   from programs), or an attempt 2 that repeats attempt 1 (one distinct candidate); they never
                   displace transduction's attempt 1 nor a distinct attempt 2
  vote             (the default: on the accuracy table's ARC tasks it gained 13 tasks and lost none against
                   transduction alone, fill 4; benchmarks/bench_program_merge.py) each distinct program output
                   is a vote beside transduction's: VOTE_SHARE x weight x the
                   test input's transduction predictions (the unit: predictions; a weight-1 program counts as
                   half of them), so it moves its grid ahead of every candidate found fewer times than its own
                   count plus that vote; with no programs the rule's order stands unchanged
  induction-first  BARC's rule, for comparison: the top program's output is attempt 1, transduction fills the rest
  off              transduction alone

Programs that agree on a grid count once, at the largest weight among them: a search finds many equivalent
compositions, and their number measures the library, not the evidence.
"""

from __future__ import annotations

from typing import Sequence

from submission.arc.grid import Grid, grid_key
from submission.arc.vote import Candidate, top2
from submission.programs.record import ProgramResult

POLICIES = ("fill", "vote", "induction-first", "off")
VOTE_SHARE = 0.5  # vote: a weight-1 program's vote, as a share of the test input's transduction predictions


def program_grids(programs: Sequence[ProgramResult], test_index: int) -> list[tuple[Grid, float, ProgramResult]]:
    """Distinct outputs of the verified programs for one test input, best weight first (ties: the order given),
    each with its weight and the program that gave it that weight."""
    best: dict[tuple, tuple[Grid, float, ProgramResult]] = {}
    for p in programs:
        if not p.verified or test_index >= len(p.test_outputs) or p.test_outputs[test_index] is None:
            continue
        g = p.test_outputs[test_index]
        k = grid_key(g)
        if k not in best or p.weight > best[k][1]:
            best[k] = (g, p.weight, p)
    return sorted(best.values(), key=lambda x: -x[1])


def _distinct(grids: list[Grid]) -> list[Grid]:
    seen, out = set(), []
    for g in grids:
        if grid_key(g) not in seen:
            seen.add(grid_key(g))
            out.append(g)
    return out


def _two(grids: list[Grid]) -> list[Grid]:
    """At most two attempts; one grid is given twice (as top2 does), none stays empty."""
    grids = grids[:2]
    return grids + grids[:1] if len(grids) == 1 else grids


def fill(ranked: list[Candidate], found: list[Grid]) -> list[Grid]:
    """Transduction's top 2; programs take only an empty attempt or a repeated attempt 2."""
    attempts = top2(ranked)
    if not attempts:
        return _two(found)
    if grid_key(attempts[0]) == grid_key(attempts[1]):
        other = [g for g in found if grid_key(g) != grid_key(attempts[0])]
        return [attempts[0], other[0]] if other else attempts
    return attempts


def vote(ranked: list[Candidate], found: list[tuple[Grid, float]], predictions: int) -> list[Grid]:
    """Programs' votes beside the candidates' counts (see the module docstring), then the top 2."""
    extra: dict[tuple, tuple[Grid, float]] = {}
    for g, weight in found:
        extra[grid_key(g)] = (g, VOTE_SHARE * weight * max(1, predictions))
    counts = {grid_key(c.grid): c.count for c in ranked}
    order = [c.grid for c in ranked]
    boosted = sorted(((counts.get(k, 0) + v, g) for k, (g, v) in extra.items()), key=lambda x: -x[0])
    for score, g in boosted:  # ahead of the first candidate it out-votes, never behind where the rule put it
        k = grid_key(g)
        was = next((i for i, h in enumerate(order) if grid_key(h) == k), len(order))
        order = [h for h in order if grid_key(h) != k]
        at = next((i for i, h in enumerate(order) if counts.get(grid_key(h), 0) < score), len(order))
        order.insert(min(was, at), g)
        counts[k] = score
    return _two(order)


def induction_first(ranked: list[Candidate], found: list[Grid]) -> list[Grid]:
    """BARC: the top program's output first, then transduction's candidates, then the other programs'."""
    if not found:
        return top2(ranked)
    return _two(_distinct([found[0]] + [c.grid for c in ranked] + found[1:]))


def attempts(ranked: list[Candidate], programs: Sequence[ProgramResult], test_index: int, policy: str = "fill",
             predictions: int | None = None) -> list[Grid]:
    """The two attempts (or none, when there is nothing) for one test input. `ranked`: transduction's
    candidates by the run's rule; `predictions`: how many transduction predictions that vote counted (default:
    the candidates' counts summed)."""
    if policy not in POLICIES:
        raise ValueError(f"program policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    found = program_grids(programs, test_index) if policy != "off" else []
    if policy == "off" or not found:
        return top2(ranked)
    if policy == "fill":
        return fill(ranked, [g for g, _, _ in found])
    if policy == "vote":
        n = sum(c.count for c in ranked) if predictions is None else predictions
        return vote(ranked, [(g, w) for g, w, _ in found], n)
    return induction_first(ranked, [g for g, _, _ in found])


def chosen_program(attempted: list[Grid], ranked: list[Candidate], programs: Sequence[ProgramResult],
                   test_index: int) -> ProgramResult | None:
    """The program whose output is among the attempts where transduction's top 2 do not already hold it
    (the best-weighted one): what the report and the summary credit to programs; None when programs changed
    nothing."""
    own = {grid_key(g) for g in top2(ranked)}
    for g, _, p in program_grids(programs, test_index):
        if grid_key(g) not in own and any(grid_key(a) == grid_key(g) for a in attempted):
            return p
    return None
