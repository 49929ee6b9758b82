"""The run's outputs besides submission.json: results.jsonl (per task), summary.json (the run) and
report.html, plus the lines printed at the end."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from submission.arc.data import load_solutions, solutions_for
from submission.arc.grid import grid_key
from submission.arc.score import score_submission
from submission.arc.submission_io import write_json_atomic
from submission.pipeline.context import Run, task_attempts
from submission.pipeline.programs import summary as program_summary
from submission.pipeline.state import RunState, program_json
from submission.programs.merge import chosen_program, program_grids

TOP_CANDIDATES = 10  # candidates listed per test input in results.jsonl


def winning_program(state: RunState, tid: str, i: int, attempted: list, ranked: list) -> dict | None:
    """The program the attempts took (chosen: true), else the task's best-weighted program for this test input."""
    programs = state.programs.get(tid, [])
    p = chosen_program(attempted, ranked, programs, i)
    best = p or next((q for _, _, q in program_grids(programs, i)), None)
    return None if best is None else {**program_json(best), "chosen": p is not None}


def write_results(path: Path, n_tests: dict[str, int], state: RunState, rule: str, plans: dict,
                  per_task: dict[str, float], policy: str = "off") -> None:
    """results.jsonl: per task, the ladder steps, the phase its answer came from, the ranked
    candidates with their votes, the attempts (with the programs merged under `policy`), the winning
    program, token counts and (when known) its score."""
    with open(path, "w", encoding="utf-8") as f:
        for tid, n in n_tests.items():
            phase, tests = state.best(tid, n)
            rec = {"task_id": tid, "answer_from": phase, "train": state.train.get(tid, []),
                   "outputs": state.outputs.get(tid, {}), "generate_s": state.gen_s.get(tid, {}),
                   "plan": vars(plans[tid]) if tid in plans else None, "programs": len(state.programs.get(tid, [])),
                   "tests": []}
            for i, (t, (attempted, ranked)) in enumerate(zip(tests, task_attempts(state, tid, n, rule, policy))):
                scores = state.task_scores(tid, i)
                rec["tests"].append({
                    "parsed": len(t), "attempts": [g.tolist() for g in attempted],
                    "program": winning_program(state, tid, i, attempted, ranked),
                    "candidates": [{"grid": c.grid.tolist(), "count": c.count, "transform_votes": c.transform_votes,
                                    "by_transform": c.by_transform, "logprobs": scores.get(grid_key(c.grid))}
                                   for c in ranked[:TOP_CANDIDATES]]})
            if tid in per_task:
                rec["score"] = per_task[tid]
            f.write(json.dumps(rec) + "\n")


def finish(run: Run) -> dict:
    """Score (when answers are known), write results.jsonl, summary.json and report.html, print the end."""
    cfg = run.cfg
    sol_source = cfg.solutions or solutions_for(cfg.challenges)
    per_task: dict[str, float] = {}
    if sol_source:
        solutions = load_solutions(sol_source)
        submission = json.loads(run.sub_path.read_text())
        _, per_task = score_submission(submission, {t: solutions[t] for t in run.ids if t in solutions})
    n_tests = {t: len(run.tasks.tasks[t].test) for t in run.ids}
    write_results(run.out / "results.jsonl", n_tests, run.state, cfg.select, run.plans, per_task, cfg.program_policy)
    failures = [r["step"] for recs in run.state.train.values() for r in recs if r.get("status") == "failed"]
    trained = [t for t in run.ids if run.state.trained(t)]
    summary = {
        "config": {"run": asdict(run.settings.run), "ttt": asdict(run.settings.ttt),
                   "train": asdict(run.settings.train), "gen": asdict(run.settings.gen),
                   "search": asdict(run.settings.search)},
        "model": cfg.model, "tasks": len(run.tasks.ids), "processed": len(run.ids),
        "invalid": len(run.tasks.invalid), "workers": run.workers, "adapters": len(trained),
        "adapter_answers_landed": sum(run.state.has(t, "main") for t in trained),
        "answered_by": {ph: sum(run.state.best(t, n_tests[t])[0] == ph for t in run.ids) for ph in ("main", "quick")},
        "ladder_failures": {s: failures.count(s) for s in dict.fromkeys(failures)},
        "adapter_disk": run.disk.summary() if run.disk else None, "programs": program_summary(run),
        "events": run.events, "times_s": {**run.times, "total": round(time.monotonic() - run.t0, 2)},
        "budget_s": run.budget, "log": str(run.log_path) if run.log_path else None,
        "measured": {**run.costs.measured, "profile": asdict(run.costs.profile)},
    }
    if per_task:
        summary["score"] = sum(per_task.values()) / len(per_task)
    write_json_atomic(run.out / "summary.json", summary)
    try:
        from submission.pipeline.report import write_report

        write_report(run.out, cfg.solutions)
    except Exception as e:  # the report is a convenience: never let it fail a run
        print(f"warning: report.html not written ({type(e).__name__}: {e})")
    print_end(run, summary, per_task)
    return summary


def print_end(run: Run, summary: dict, per_task: dict[str, float]) -> None:
    print("times: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["times_s"].items()))
    if summary["ladder_failures"]:
        print(f"fallback ladder: {summary['ladder_failures']}")
    print(f"adapters trained: {summary['adapters']}, with adapter answers: {summary['adapter_answers_landed']}")
    if (p := summary["programs"])["searched"]:
        print(f"programs ({p['policy']}): {p['searched']} tasks searched, {p['verified']} with a verified program, "
              f"{p['chosen']} test inputs took a program's answer")
    print(f"wrote {run.sub_path} ({len(run.tasks.ids)} tasks)")
    if per_task:
        print(f"score: {summary['score']:.4f}  ({sum(v == 1 for v in per_task.values())}/{len(per_task)} "
              f"processed tasks solved; unprocessed tasks are not counted)")
