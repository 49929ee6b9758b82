"""Durable run state in the run folder, one JSON line per unit of finished work (flush + fsync):

    train.jsonl        one TTT attempt per line (a ladder step, its outcome)
    predictions.jsonl  one finished prompt per line: its key, answers mapped back to the original frame
    scores.jsonl       one task's PoE scores per line
    programs.jsonl     one task's program search per line: its verified programs (ProgramResult fields)

Running again with the same --out resumes: finished prompts are read back and never generated
again; a torn last line (kill -9 mid-write) is ignored and that prompt is simply redone.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from submission.arc.grid import grid_key, to_list
from submission.arc.vote import Prediction
from submission.programs.record import ProgramResult

PHASES = ("quick", "main", "extra")  # base-model pass, the TTT pass, extra augmentations


def ends_torn(path: Path) -> bool:
    """The file's last line has no newline: a write cut by a kill."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def append_jsonl(path: Path, recs: list[dict]) -> None:
    """Append records durably: one write, flushed and fsynced before returning. After a torn last line
    the records start on a line of their own (glued to the fragment, they would be lost with it)."""
    if not recs:
        return
    text = "".join(json.dumps(r) + "\n" for r in recs)
    with open(path, "a", encoding="utf-8") as f:
        f.write(("\n" if ends_torn(path) else "") + text)
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


@dataclass(frozen=True)
class Answer:
    """One finished prompt: its answers in the original frame (None: did not parse)."""

    task_id: str
    phase: str
    key: str  # the prompt's identity within its task and phase (see phases.prompt_key)
    test_index: int
    transform: str
    is_identity: bool
    grids: tuple  # per completion: a grid (list of rows) or None
    logprobs: tuple  # per completion: float or None
    tokens: int  # generated tokens, all completions
    gen_s: float  # this prompt's share of its engine call's time
    adapter: str | None = None  # the adapter folder that answered (None: the base model)

    def record(self) -> dict:
        return {"task_id": self.task_id, "phase": self.phase, "key": self.key, "test_index": self.test_index,
                "transform": self.transform, "is_identity": self.is_identity, "grids": list(self.grids),
                "logprobs": list(self.logprobs), "tokens": self.tokens, "gen_s": round(self.gen_s, 4),
                "adapter": self.adapter}


def canonical(p: Prediction) -> tuple:
    """A prediction's place in the canonical order: by transform, then grid, then log-probability."""
    return p.transform, grid_key(p.grid), -math.inf if p.logprob is None else p.logprob


def program_json(p: ProgramResult) -> dict:
    """A program as a JSON object: the ProgramResult fields, grids as lists of rows."""
    return {"origin": p.origin, "source": p.source, "demo_fits": list(p.demo_fits),
            "test_outputs": [None if g is None else to_list(g) for g in p.test_outputs], "weight": p.weight,
            "checks": list(p.checks)}


def program_from_json(rec: dict) -> ProgramResult:
    return ProgramResult(rec["origin"], rec["source"], tuple(rec["demo_fits"]),
                         tuple(None if g is None else np.asarray(g, dtype=np.int8) for g in rec["test_outputs"]),
                         rec["weight"], tuple(rec["checks"]))


@dataclass
class RunState:
    out: Path
    train: dict[str, list[dict]] = field(default_factory=dict)  # task -> TTT records (ladder steps in order)
    done: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # task -> phase -> finished prompt keys
    preds: dict[str, dict[str, dict[int, list[Prediction]]]] = field(default_factory=dict)  # task->phase->test
    outputs: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> phase -> completions
    gen_s: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> phase -> generate seconds
    scores: dict[str, list[dict]] = field(default_factory=dict)  # task -> per test: {grid key: [logp]}
    programs: dict[str, list[ProgramResult]] = field(default_factory=dict)  # task -> its verified programs
    searches: dict[str, dict] = field(default_factory=dict)  # task -> its search: tried, seconds, complete
    induced: dict[str, dict] = field(default_factory=dict)  # task -> its induction: samples, parsed, ... verified
    # held by every write and by whoever reads the state whole (submission.json): a DSL search beside the
    # GPU phases records its programs from its own thread
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def load(cls, out: Path) -> "RunState":
        state = cls(out)
        for rec in read_jsonl(out / "train.jsonl"):
            state.train.setdefault(rec["task_id"], []).append(rec)
        for rec in read_jsonl(out / "predictions.jsonl"):
            state._add_answer(rec)
        for rec in read_jsonl(out / "scores.jsonl"):
            state._add_scores(rec)
        for rec in read_jsonl(out / "programs.jsonl"):
            state._add_programs(rec)
        return state

    # -- TTT -----------------------------------------------------------------------------------
    def add_train(self, rec: dict) -> None:
        with self.lock:
            append_jsonl(self.out / "train.jsonl", [rec])
            self.train.setdefault(rec["task_id"], []).append(rec)

    def adapter(self, tid: str) -> str | None:
        recs = [r for r in self.train.get(tid, []) if r.get("adapter")]
        ok = recs and Path(recs[-1]["adapter"], "adapter_model.safetensors").is_file()
        return recs[-1]["adapter"] if ok else None

    def trained(self, tid: str) -> bool:
        """An adapter was trained for the task (it may have been deleted since, once its answers landed)."""
        return any(r.get("adapter") for r in self.train.get(tid, []))

    def next_level(self, tid: str) -> int:
        """The ladder level to try next: 0 for a fresh task, one past the last own failure."""
        return max((r["level"] + 1 for r in self.train.get(tid, []) if r.get("status") == "failed"), default=0)

    # -- answers -------------------------------------------------------------------------------
    def add_answers(self, answers: list[Answer]) -> None:
        recs = [a.record() for a in answers]
        with self.lock:
            append_jsonl(self.out / "predictions.jsonl", recs)
            for rec in recs:
                self._add_answer(rec)

    def _add_answer(self, rec: dict) -> None:
        tid, phase = rec["task_id"], rec["phase"]
        self.done.setdefault(tid, {}).setdefault(phase, set()).add(rec["key"])
        tests = self.preds.setdefault(tid, {}).setdefault(phase, {})
        for g, lp in zip(rec["grids"], rec["logprobs"]):
            if g is not None:
                tests.setdefault(rec["test_index"], []).append(
                    Prediction(np.asarray(g, dtype=np.int8), rec["transform"], rec["is_identity"], lp))
        counts = self.outputs.setdefault(tid, {})
        counts[phase] = counts.get(phase, 0) + len(rec["grids"])
        secs = self.gen_s.setdefault(tid, {})
        secs[phase] = secs.get(phase, 0.0) + rec.get("gen_s", 0.0)

    def finished(self, tid: str, phase: str) -> set[str]:
        return self.done.get(tid, {}).get(phase, set())

    def has(self, tid: str, phase: str) -> bool:
        """Any prompt of this phase finished for the task."""
        return bool(self.finished(tid, phase))

    def best(self, tid: str, n_tests: int | None = None) -> tuple[str | None, list[list[Prediction]]]:
        """The predictions the answer comes from, per test input: the TTT pass (with its extras) once
        it has parsed any, else the quick pass. n_tests: the task's test inputs (default: those seen)."""
        phases = self.preds.get(tid, {})
        if n_tests is None:
            n_tests = 1 + max((i for ph in phases.values() for i in ph), default=-1)
        for name, parts in (("main", ("main", "extra")), ("quick", ("quick",))):
            # in a canonical order, not the order answers arrived in: the vote breaks ties by first seen, and
            # arrival depends on the worker count and chunking (two workers must give one worker's submission)
            tests = [sorted((p for ph in parts for p in phases.get(ph, {}).get(i, [])), key=canonical)
                     for i in range(n_tests)]
            if any(tests):
                return name, tests
        return None, [[] for _ in range(n_tests)]

    # -- PoE scores ----------------------------------------------------------------------------
    def add_scores(self, tid: str, per_test: list[list[tuple[list, list[float]]]]) -> None:
        """Log-probabilities of candidates under the scoring augmentations: per test [(grid, [logp])]."""
        rec = {"task_id": tid, "tests": [[[g, lps] for g, lps in t] for t in per_test]}
        with self.lock:
            append_jsonl(self.out / "scores.jsonl", [rec])
            self._add_scores(rec)

    def _add_scores(self, rec: dict) -> None:
        self.scores[rec["task_id"]] = [{grid_key(np.asarray(g, dtype=np.int8)): lps for g, lps in t}
                                       for t in rec["tests"]]

    def task_scores(self, tid: str, test_index: int) -> dict:
        tests = self.scores.get(tid, [])
        return tests[test_index] if test_index < len(tests) else {}

    # -- programs ------------------------------------------------------------------------------
    def add_programs(self, tid: str, programs: list[ProgramResult], origin: str = "dsl", **search) -> None:
        """One task's finished program search of one origin (`search`: its counts): once per run folder."""
        rec = {"task_id": tid, **({"origin": origin} if origin != "dsl" else {}), **search,
               "programs": [program_json(p) for p in programs]}
        with self.lock:
            append_jsonl(self.out / "programs.jsonl", [rec])
            self._add_programs(rec)

    def _add_programs(self, rec: dict) -> None:
        """A record replaces the task's programs of its own origin ("dsl" when it names none) and keeps the
        others': the DSL search and induction each write one record per task."""
        tid, origin = rec["task_id"], rec.get("origin", "dsl")
        kept = [p for p in self.programs.get(tid, []) if p.origin != origin]
        self.programs[tid] = kept + [program_from_json(p) for p in rec["programs"]]
        info = {k: v for k, v in rec.items() if k not in ("task_id", "programs", "origin")}
        if origin == "dsl":
            self.searches[tid] = info
        else:
            self.induced[tid] = info
