"""Durable run state in the run folder: every finished TTT item and every chunk of predictions is
appended as one JSON line (flush + fsync). Running again with the same --out resumes: finished
work is read back, never recomputed; a torn last line (kill -9 mid-write) is ignored."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from submission.grid import grid_key
from submission.vote import Prediction

PHASES = ("quick", "main", "extra")  # base-model pass, the TTT pass, extra augmentations


def append_jsonl(path: Path, rec: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a kill: that work is simply redone
            pass
    return out


@dataclass
class RunState:
    out: Path
    train: dict[str, list[dict]] = field(default_factory=dict)  # task -> TTT records (ladder steps in order)
    preds: dict[str, dict[str, list[list[Prediction]]]] = field(default_factory=dict)  # task -> phase -> per test
    outputs: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> phase -> outputs generated
    gen_s: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> phase -> its share of generate time
    scores: dict[str, list[dict]] = field(default_factory=dict)  # task -> per test: {grid key: [logp per augmentation]}

    @classmethod
    def load(cls, out: Path) -> "RunState":
        state = cls(out)
        for rec in read_jsonl(out / "train.jsonl"):
            state.train.setdefault(rec["task_id"], []).append(rec)
        for rec in read_jsonl(out / "predictions.jsonl"):
            state._add_preds(rec)
        for rec in read_jsonl(out / "scores.jsonl"):
            state._add_scores(rec)
        return state

    def add_scores(self, tid: str, per_test: list[list[tuple[list, list[float]]]]) -> None:
        """Log-probabilities of candidates under the scoring augmentations: per test [(grid, [logp])]."""
        rec = {"task_id": tid, "tests": [[[g, lps] for g, lps in t] for t in per_test]}
        append_jsonl(self.out / "scores.jsonl", rec)
        self._add_scores(rec)

    def _add_scores(self, rec: dict) -> None:
        self.scores[rec["task_id"]] = [{grid_key(np.asarray(g, dtype=np.int8)): lps for g, lps in t}
                                       for t in rec["tests"]]

    def task_scores(self, tid: str, test_index: int) -> dict:
        tests = self.scores.get(tid, [])
        return tests[test_index] if test_index < len(tests) else {}

    def adapter(self, tid: str) -> str | None:
        recs = [r for r in self.train.get(tid, []) if "adapter" in r]
        return recs[-1]["adapter"] if recs and Path(recs[-1]["adapter"], "adapter_model.safetensors").is_file() else None

    def next_level(self, tid: str) -> int:
        """The ladder level to try next: 0 for a fresh task, one past the last failure."""
        return max((r["level"] + 1 for r in self.train.get(tid, [])
                    if "error" in r and not (r.get("not_run") or r.get("interrupted"))), default=0)

    def add_train(self, rec: dict) -> None:
        append_jsonl(self.out / "train.jsonl", rec)
        self.train.setdefault(rec["task_id"], []).append(rec)

    def add_preds(self, tid: str, phase: str, tests: list[list[Prediction]], outputs: int, gen_s: float = 0.0) -> None:
        rec = {"task_id": tid, "phase": phase, "outputs": outputs, "gen_s": round(gen_s, 3),
               "tests": [[[p.grid.tolist(), p.transform, p.is_identity] for p in t] for t in tests]}
        append_jsonl(self.out / "predictions.jsonl", rec)
        self._add_preds(rec)

    def _add_preds(self, rec: dict) -> None:
        phases = self.preds.setdefault(rec["task_id"], {})
        per_test = phases.setdefault(rec["phase"], [[] for _ in rec["tests"]])
        for i, t in enumerate(rec["tests"]):
            per_test[i] += [Prediction(np.asarray(g, dtype=np.int8), name, ident) for g, name, ident in t]
        counts = self.outputs.setdefault(rec["task_id"], {})
        counts[rec["phase"]] = counts.get(rec["phase"], 0) + rec["outputs"]
        secs = self.gen_s.setdefault(rec["task_id"], {})
        secs[rec["phase"]] = secs.get(rec["phase"], 0.0) + rec.get("gen_s", 0.0)

    def has(self, tid: str, phase: str) -> bool:
        return phase in self.preds.get(tid, {})

    def best(self, tid: str) -> tuple[str | None, list[list[Prediction]]]:
        """The predictions the answer comes from: the TTT pass (with its extras) once it has
        parsed any, else the quick pass. A later phase replaces an earlier one only with support."""
        phases = self.preds.get(tid, {})
        main = phases.get("main")
        if main and any(main):
            extra = phases.get("extra", [[] for _ in main])
            return "main", [m + e for m, e in zip(main, extra)]
        if phases.get("quick") and any(phases["quick"]):
            return "quick", phases["quick"]
        return None, []


def write_results(path: Path, n_tests: dict[str, int], state: RunState, rule: str, plans: dict,
                  per_task: dict[str, float]) -> None:
    """results.jsonl: per task, the ladder steps, the phase its answer came from, the ranked
    candidates with their votes, the attempts, token counts and (when known) its score."""
    from submission.vote import rank, top2

    with open(path, "w", encoding="utf-8") as f:
        for tid, n in n_tests.items():
            phase, tests = state.best(tid)
            tests = tests or [[] for _ in range(n)]
            rec = {"task_id": tid, "answer_from": phase, "train": state.train.get(tid, []),
                   "outputs": state.outputs.get(tid, {}), "generate_s": state.gen_s.get(tid, {}), "plan": vars(plans[tid]) if tid in plans else None,
                   "tests": []}
            for i, t in enumerate(tests):
                scores = state.task_scores(tid, i)
                ranked = rank(t, rule, scores) if t else []
                rec["tests"].append({
                    "parsed": len(t), "attempts": [g.tolist() for g in top2(ranked)],
                    "candidates": [{"grid": c.grid.tolist(), "count": c.count, "transform_votes": c.transform_votes,
                                    "by_transform": c.by_transform, "logprobs": scores.get(grid_key(c.grid))}
                                   for c in ranked[:10]]})
            if tid in per_task:
                rec["score"] = per_task[tid]
            f.write(json.dumps(rec) + "\n")
