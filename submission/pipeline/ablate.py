"""`python -m submission ablate RUN_DIR`: recompute the score of a finished run under every
selection rule (identity, vote, flat, poe, combined, nvarc; the last three from the stored PoE
scores) from its stored predictions — no model — plus the oracle upper bound (a correct candidate
exists: with --search dfs, any answer any prompt's search found), with the stored programs merged as the run
merged them (--program-policy); then every --program-policy under the run's rule, with the tasks each gains
and loses against transduction alone (off), and each program source alone."""

from __future__ import annotations

import json
from pathlib import Path

from submission.arc.data import DataError, load_solutions, solutions_for
from submission.arc.grid import grids_equal
from submission.arc.vote import RULES
from submission.pipeline.context import task_attempts
from submission.pipeline.state import RunState
from submission.programs.merge import POLICIES, attempts, program_grids


def run_ids(run_dir: Path) -> tuple[list[str], dict]:
    """The processed task ids of a run (results.jsonl) and its summary."""
    summary_path, results = run_dir / "summary.json", run_dir / "results.jsonl"
    if not summary_path.is_file() or not results.is_file():
        raise DataError(f"{run_dir}: not a finished run folder (summary.json and results.jsonl are needed)")
    summary = json.loads(summary_path.read_text())
    return [json.loads(line)["task_id"] for line in results.read_text().splitlines() if line.strip()], summary


def ablate(run_dir: str | Path, solutions: str | None = None, only: set[str] | None = None,
           policy: str | None = None) -> dict[str, float]:
    """{rule: score} over the run's processed tasks (or those of them in `only`), the leaderboard
    metric, oracle included; the stored programs merged under `policy` (default: the run's
    --program-policy, so the run's rule gives the score the run printed; "off": transduction alone)."""
    run_dir = Path(run_dir)
    ids, summary = run_ids(run_dir)
    truth = truth_of(run_dir, summary, solutions)
    state = RunState.load(run_dir)
    policy = policy or summary["config"]["run"].get("program_policy", "off")
    ids = [t for t in ids if t in truth and (only is None or t in only)]
    scores = {}
    for name in (*RULES, "oracle"):
        total = 0.0
        for tid in ids:
            _, tests = state.best(tid, len(truth[tid]))
            if name != "oracle":
                chosen = [a for a, _ in task_attempts(state, tid, len(truth[tid]), name, policy)]
            hits = 0
            for i, answer in enumerate(truth[tid]):
                if name == "oracle":  # any answer found, the programs' outputs too unless they are off
                    pool = [p.grid for p in (tests[i] if i < len(tests) else [])]
                    pool += [g for g, _, _ in program_grids(state.programs.get(tid, []), i)] if policy != "off" else []
                else:
                    pool = chosen[i]
                hits += any(grids_equal(g, answer) for g in pool)
            total += hits / len(truth[tid])
        scores[name] = total / len(ids) if ids else 0.0
    return scores


def truth_of(run_dir: Path, summary: dict, solutions: str | None) -> dict:
    run_cfg = summary["config"]["run"]
    source = solutions or run_cfg.get("solutions") or solutions_for(run_cfg["challenges"])
    if not source:
        raise DataError(f"{run_dir}: no solutions known for this run; pass --solutions")
    return load_solutions(source)


def ablate_programs(run_dir: str | Path, solutions: str | None = None) -> dict[str, dict]:
    """{policy: {"score", "gained": [task ids], "lost": [task ids]}}: the run's selection rule with the stored
    programs merged under each --program-policy, and each source's programs alone ("dsl alone", "induction
    alone": no transduction), against transduction alone (off)."""
    run_dir = Path(run_dir)
    ids, summary = run_ids(run_dir)
    truth = truth_of(run_dir, summary, solutions)
    state, rule = RunState.load(run_dir), summary["config"]["run"]["select"]
    ids = [t for t in ids if t in truth]
    per: dict[str, dict[str, float]] = {}
    for policy in ("off", *(p for p in POLICIES if p != "off")):
        per[policy] = {}
        for tid in ids:
            tests = task_attempts(state, tid, len(truth[tid]), rule, policy)
            hits = sum(any(grids_equal(g, answer) for g in attempted)
                       for (attempted, _), answer in zip(tests, truth[tid]))
            per[policy][tid] = hits / len(truth[tid])
    for origin in sorted({p.origin for t in ids for p in state.programs.get(t, []) if p.verified}):
        per[f"{origin} alone"] = {}  # the programs of one source without transduction: their top 2 by weight
        for tid in ids:
            mine = [p for p in state.programs.get(tid, []) if p.origin == origin]
            hits = sum(any(grids_equal(g, answer) for g in attempts([], mine, i, "fill"))
                       for i, answer in enumerate(truth[tid]))
            per[f"{origin} alone"][tid] = hits / len(truth[tid])
    base = per["off"]
    return {policy: {"score": sum(s.values()) / len(s) if s else 0.0,
                     "gained": [t for t in ids if s[t] > base[t]], "lost": [t for t in ids if s[t] < base[t]]}
            for policy, s in per.items()}


def format_programs(results: dict[str, dict], run_policy: str, searched: int, run_score: float | None = None) -> str:
    lines = [f"programs ({searched} tasks searched), the run's rule with each --program-policy:",
             f"{'policy':>15}  score   gained / lost against off"]
    printed = f" (run printed {run_score:.4f})" if run_score is not None else ""
    for policy, r in results.items():
        mark = "  <- the run's policy" + printed if policy == run_policy else ""
        moved = "" if policy == "off" else (f"  +{len(r['gained'])} {' '.join(r['gained'])}  "
                                            f"-{len(r['lost'])} {' '.join(r['lost'])}")
        lines.append(f"{policy:>15}  {r['score']:.4f}{moved}{mark}")
    return "\n".join(lines)


def format_table(scores: dict[str, float], run_rule: str, run_score: float | None) -> str:
    lines = [f"{'rule':>8}  score"]
    for name, value in scores.items():
        printed = f" (run printed {run_score:.4f})" if run_score is not None else ""
        mark = "  <- the run's rule" + printed if name == run_rule else ""
        lines.append(f"{name:>8}  {value:.4f}{mark}")
    return "\n".join(lines)
