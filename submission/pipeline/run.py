"""`python -m submission run`: the phased, deadline-aware run. Each phase leaves a valid
submission.json, updated atomically as work lands:

  0. [[0]] for every task, at once
  1. quick pass: the base model, a few transforms, all tasks (--quick-transforms, 0 = skip)
  2. TTT: per-task LoRA in worker processes, down a fallback ladder on failure; then inference
     with every adapter in batched multi-LoRA chunks
  3. PoE: the top candidates scored under augmentations with each task's adapter (--select poe)
  4. time left over: more augmentations for the least certain tasks (--extra-rounds)

Work is durable per item (state.py), so the same --out resumes after a crash.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from submission.data import DataError, TaskSet, load_challenges, load_solutions, solutions_for
from submission.engines.config import GenerateConfig, TrainConfig
from submission.engines.gen_hf import GenRequest, ScoreRequest, model_max_len
from submission.pipeline import kaggle
from submission.pipeline.budget import (PROFILES, CostModel, Profile, answer_limit, for_model, format_plan, model_params,
                                       plan_task)
from submission.pipeline.config import RunConfig
from submission.pipeline.state import RunState, write_results
from submission.pipeline.supervisor import Pool
from submission.pipeline.workers import LADDER, GenInit, GenItem, TrainInit, TrainItem, make_gen_handler, make_train_handler
from submission.prompts import Prompt, build_prompts, fit_demos, inference_transforms
from submission.score import score_submission
from submission.submission_io import build_submission, write_json_atomic
from submission.text import TextFormat, check_tokenizer, parse_grid
from submission.ttt_data import TTTDataConfig
from submission.vote import Prediction, flat_vote, hierarchical_vote, rank, top2

MAX_ANSWER_TOKENS = 30 * 31 + 1  # a 30x30 grid, a newline per row, end of sequence


def visible_gpus() -> list[str]:
    """The GPU ids this process may use, without importing torch: CUDA_VISIBLE_DEVICES when set
    (a worker must be pinned to one of *these*), else one per `nvidia-smi -L` line."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def profile_for(cfg: RunConfig, n_gpu: int, params: float = 0) -> Profile:
    """The named (or default) hardware profile, scaled to the model's size, with any measured
    throughputs the user gave."""
    profile = for_model(PROFILES[cfg.profile or ("h100" if n_gpu else "cpu")], params)
    given = {k: getattr(cfg, k) for k in ("ttt_tok_s", "prefill_tok_s", "decode_tok_s") if getattr(cfg, k)}
    return replace(profile, **given) if given else profile


def pick_tasks(tasks: TaskSet, cfg: RunConfig) -> list[str]:
    """The valid task ids to process, in file order (--tasks, then --limit)."""
    ids = [t for t in tasks.ids if t in tasks.tasks]
    if cfg.tasks:
        wanted = [t.strip() for t in cfg.tasks.split(",") if t.strip()]
        unknown = [t for t in wanted if t not in tasks.raw]
        if unknown:
            print(f"warning: --tasks ids not in {tasks.source}: {', '.join(map(repr, unknown))}")
        ids = [t for t in ids if t in set(wanted)]
    return ids[: cfg.limit] if cfg.limit else ids


def load_tokenizer_format(model: str):
    """The model's tokenizer and the grid format for it (its eos text ends every output), checked."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model, local_files_only=True, trust_remote_code=False)
    if tok.eos_token is None:
        raise ValueError(f"{model}: the tokenizer has no eos token")
    fmt = TextFormat(end_marker=tok.eos_token)
    check_tokenizer(tok, fmt)
    return tok, fmt


class Run:
    """One run's data, state and engines; phases are methods."""

    def __init__(self, cfg: RunConfig, ttt: TTTDataConfig, train: TrainConfig, gen: GenerateConfig):
        self.cfg, self.ttt, self.train_cfg, self.gen = cfg, ttt, train, gen
        self.t0 = time.monotonic()
        budget = cfg.budget or (kaggle.KAGGLE_LIMIT_S - kaggle.BUDGET_MARGIN_S if kaggle.on_kaggle() else 0)
        self.budget = float(budget)
        # held back from the budget for killing workers and writing the outputs after the deadline
        self.deadline = self.t0 + (budget - min(20.0, 0.1 * budget) if budget else math.inf)
        self.tasks = load_challenges(cfg.challenges)
        self.out = Path(cfg.out) if cfg.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out.mkdir(parents=True, exist_ok=True)
        self.state = RunState.load(self.out)
        self.sub_path = Path(cfg.submission) if cfg.submission else self.out / "submission.json"
        self.ids = pick_tasks(self.tasks, cfg)
        self.refresh()  # valid from the first second ([[0]], or what a previous attempt had)
        for tid, problem in self.tasks.invalid.items():
            print(f"quarantined task {tid!r} in {self.tasks.source}: {problem}")
        write_json_atomic(self.out / "invalid_tasks.json", self.tasks.invalid)
        self.seed = {tid: cfg.seed + i for i, tid in enumerate(self.ids)}  # per task, whatever the worker
        self.model = cfg.model or str(_default_model())
        if not (Path(self.model) / "config.json").is_file():
            raise DataError(f"--model {self.model}: not a local HF model folder (no config.json); "
                            f"the submission so far is at {self.sub_path}")
        self.tokenizer, self.fmt = load_tokenizer_format(self.model)
        self.max_len = min(gen.max_model_len, model_max_len(self.model))
        gpus = visible_gpus()
        self.workers = cfg.workers or max(1, len(gpus))
        self.gpus = [gpus[i % len(gpus)] for i in range(self.workers)] if gpus else None
        self.costs = CostModel(profile_for(cfg, len(gpus), model_params(self.model)))
        self.plans = {tid: plan_task(self.tasks.tasks[tid], ttt, train.epochs, cfg.transforms, cfg.permutations,
                                     self.fmt, self.seed[tid]) for tid in self.ids}
        self.events: list[str] = []
        self.times: dict[str, float] = {}
        done = sum(self.state.has(t, "main") for t in self.ids)
        print(f"{len(self.tasks.ids)} tasks in {self.tasks.source}: {len(self.tasks.invalid)} invalid, processing "
              f"{len(self.ids)} ({done} done before) with {self.workers} worker(s) -> {self.out}"
              + (f"; budget {self.budget:.0f} s" if self.budget else ""))

    # -- helpers -------------------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, msg: str) -> None:
        self.events.append(msg)
        print(msg)

    def refresh(self) -> None:
        """Rewrite submission.json from the best predictions so far (atomic)."""
        attempts = {}
        for tid in self.ids:
            _, tests = self.state.best(tid)
            if tests:
                attempts[tid] = [top2(rank(t, self.cfg.select, self.state.task_scores(tid, i))) if t else []
                                 for i, t in enumerate(tests)]
        write_json_atomic(self.sub_path, build_submission(self.tasks, attempts))

    def prompts_for(self, tid: str, phase: str) -> list[Prompt]:
        task, s = self.tasks.tasks[tid], self.seed[tid]
        cap = self.max_len - 1
        if phase == "quick":
            return build_prompts(task, self.cfg.quick_transforms, 1, self.fmt, s, max_tokens=cap)
        main = build_prompts(task, self.cfg.transforms, self.cfg.permutations, self.fmt, s, max_tokens=cap)
        if phase == "main":
            return main
        seen = {p.text for p in main}  # extra: new colour-mapped transforms and orders only
        more = build_prompts(task, self.cfg.transforms + 8, self.cfg.permutations, self.fmt, s + 104729, max_tokens=cap)
        return [p for p in more if p.text not in seen]

    # -- inference -----------------------------------------------------------------------------
    def gen_pool(self) -> Pool:
        init = GenInit(self.model, self.cfg.engine, self.gen, self.train_cfg.lora_rank)
        return Pool(make_gen_handler, init, self.workers, self.gpus)

    def infer(self, pool: Pool, tids: list[str], phase: str, adapters: dict[str, str]) -> None:
        """Generate for tasks in chunks (one batched multi-LoRA call each); merge and refresh per chunk."""
        prompts = {tid: self.prompts_for(tid, phase) for tid in tids}
        # a chunk is all-or-nothing at the deadline: under a budget, keep each to ~5% of it
        max_s = 0.05 * self.budget if self.budget else math.inf
        chunks, cur, size, secs = [], [], 0, 0.0
        for tid in tids:
            task_s = self.plans[tid].infer_s(self.costs.profile)
            if cur and (size + len(prompts[tid]) > self.cfg.chunk_prompts or secs + task_s > max_s):
                chunks.append(cur)
                cur, size, secs = [], 0, 0.0
            cur.append(tid)
            size += len(prompts[tid])
            secs += task_s
        chunks += [cur] if cur else []
        items, plans = [], {}
        for k, chunk in enumerate(chunks):
            ps = [p for tid in chunk for p in prompts[tid]]
            if not ps:
                continue
            lengths = [len(x) for x in self.tokenizer([p.text for p in ps])["input_ids"]]
            fits = [n + 16 <= self.max_len for n in lengths]  # room for at least a small answer
            if not all(fits):
                self.log(f"{fits.count(False)} prompts of {len(ps)} exceed --max-model-len {self.max_len} even with "
                         f"one demo; they are skipped")
                ps = [p for p, ok in zip(ps, fits) if ok]
                lengths = [n for n, ok in zip(lengths, fits) if ok]
                if not ps:
                    continue
            reqs = [GenRequest(p.text, adapters.get(p.task_id), min(self.answer_tokens(p), self.max_len - n))
                    for p, n in zip(ps, lengths)]
            items.append(GenItem(f"{phase}{k}", tuple(chunk), reqs))
            plans[items[-1].key] = (ps, [self.plans[t] for t in chunk])
        def cap(item: GenItem) -> float:
            return self.cfg.task_timeout or self.chunk_cap(item)

        bar = tqdm(total=len(tids), desc=f"{phase} inference", unit="task")
        for item, res in pool.run(items, cap, self.deadline):
            ps, task_plans = plans[item.key]
            bar.update(len(item.task_ids))
            if "error" in res:
                self.log(f"inference chunk {item.key} ({len(item.task_ids)} tasks: {', '.join(map(repr, item.task_ids[:4]))}"
                         f"{'…' if len(item.task_ids) > 4 else ''}) failed: {res['error']}; they keep earlier answers")
                continue
            ran = {t: sum(p.task_id == t for p in ps) for t in item.task_ids}
            self.costs.observe_infer(task_plans, res["gen_s"], [ran[p.task_id] / max(1, p.prompts) for p in task_plans])
            self.merge(phase, ps, res["texts"], res["gen_s"])
            self.refresh()
        bar.close()

    def answer_tokens(self, p: Prompt) -> int:
        """--max-new-tokens, or the task's own answer limit (see budget.answer_limit)."""
        return self.gen.max_new_tokens or answer_limit(self.tasks.tasks[p.task_id], p.test_index, MAX_ANSWER_TOKENS)

    def chunk_cap(self, item: GenItem) -> float:
        """A hang detector, not a budget: 4x the worst case (every answer runs to max_tokens, as an
        untrained model's do) plus an engine start, and never under 5 minutes."""
        p = self.costs.profile
        prompt_tokens = sum(len(r.prompt) for r in item.requests)
        decode_tokens = sum(getattr(r, "max_tokens", 0) or len(getattr(r, "completion", "")) for r in item.requests)
        return max(300.0, 4 * (prompt_tokens / p.prefill_tok_s + decode_tokens / p.decode_tok_s) + p.engine_start_s)

    def merge(self, phase: str, prompts: list[Prompt], texts: list[list[str]], gen_s: float = 0.0) -> None:
        """Parse answers, map them back to the original frame, store per task and test input."""
        per: dict[str, list[list[Prediction]]] = {}
        outputs: dict[str, int] = {}
        for p, outs in zip(prompts, texts):
            tests = per.setdefault(p.task_id, [[] for _ in self.tasks.tasks[p.task_id].test])
            outputs[p.task_id] = outputs.get(p.task_id, 0) + len(outs)
            for text in outs:
                g = parse_grid(text, self.fmt.end_marker)
                if g is not None:
                    tests[p.test_index].append(Prediction(p.transform.invert(g), p.transform.name, p.transform.is_identity))
        total = sum(outputs.values()) or 1
        for tid, tests in per.items():  # the chunk's generate time, shared by outputs
            self.state.add_preds(tid, phase, tests, outputs[tid], gen_s * outputs[tid] / total)

    # -- phases --------------------------------------------------------------------------------
    def phase_quick(self) -> None:
        todo = [t for t in self.ids if not self.state.has(t, "quick") and not self.state.has(t, "main")]
        if not self.cfg.quick_transforms or not todo or self.left() <= 0:
            return
        t = time.monotonic()
        pool = self.gen_pool()
        try:
            self.infer(pool, todo, "quick", {})
        finally:
            pool.close()
        self.times["quick"] = time.monotonic() - t

    def ttt_deadline(self) -> float:
        """Stop starting TTT when only the (predicted) inference for the rest still fits."""
        if math.isinf(self.deadline):
            return self.deadline
        p = self.costs.profile
        infer = sum(self.plans[t].infer_s(p) for t in self.ids if not self.state.has(t, "main"))
        return self.deadline - (1.2 * infer + p.engine_start_s + 0.05 * self.budget)

    def phase_ttt(self) -> None:
        todo = [t for t in self.ids if not self.state.has(t, "main") and not self.state.adapter(t)
                and self.state.next_level(t) < LADDER.index("no_ttt")]
        if self.cfg.trainer == "none" or not todo:
            return
        t0 = time.monotonic()
        deadline = self.ttt_deadline  # re-evaluated as the cost model re-fits
        init = TrainInit(self.model, self.cfg.trainer, self.ttt, self.train_cfg, self.fmt, str(self.out), self.gen.dtype)
        pool = Pool(make_train_handler, init, self.workers, self.gpus)

        def cap(item: TrainItem) -> float:
            return self.cfg.task_timeout or max(120.0, 4 * self.plans[item.task.id].ttt_s(self.costs.profile)
                                                + self.costs.profile.engine_start_s)

        bar = tqdm(total=len(todo), desc="TTT", unit="task")
        try:
            while todo and time.monotonic() < deadline():
                items = [TrainItem(self.tasks.tasks[t], self.seed[t], self.state.next_level(t)) for t in todo]
                retry = []
                for item, res in pool.run(items, cap, deadline):
                    rec = {"task_id": item.task.id, "level": item.level, "step": LADDER[item.level], **res}
                    self.state.add_train(rec)
                    if "error" not in rec:
                        self.costs.observe_ttt(rec["tokens"], rec["train_s"])
                        bar.update()
                    elif not (rec.get("not_run") or rec.get("interrupted")):  # the task's own failure
                        nxt = LADDER[item.level + 1]
                        self.log(f"ladder: task {item.task.id!r}: {LADDER[item.level]} failed ({rec['error'][:200]}) -> {nxt}")
                        if nxt != "no_ttt":
                            retry.append(item.task.id)
                        else:
                            bar.update()
                todo = retry
        finally:
            pool.close()
            bar.close()
        self.times["ttt"] = time.monotonic() - t0

    def phase_main(self) -> None:
        todo = [t for t in self.ids if not self.state.has(t, "main")]
        if not todo or self.left() <= 0:
            return
        t = time.monotonic()
        adapters = {tid: a for tid in todo if (a := self.state.adapter(tid))}
        print(f"inference for {len(todo)} tasks ({len(adapters)} with adapters)")
        self.pool = self.gen_pool()  # kept for the extra phase
        self.infer(self.pool, todo, "main", adapters)
        self.times["main"] = time.monotonic() - t

    def score_requests(self, tid: str) -> tuple[list[ScoreRequest], list[tuple[int, list]]]:
        """PoE requests for a task: its top candidates under the scoring augmentations (the same
        transform on demos, query and candidate; demos in their original order)."""
        task, fmt = self.tasks.tasks[tid], self.fmt
        _, tests = self.state.best(tid)
        transforms = inference_transforms(self.cfg.score_augmentations, np.random.default_rng(self.seed[tid]))
        adapter = self.state.adapter(tid)
        reqs, index = [], []
        for ti, preds in enumerate(tests):
            for c in hierarchical_vote(preds)[: self.cfg.score_candidates]:
                for t in transforms:
                    order = fit_demos(task, tuple(range(len(task.train))), ti, self.max_len - 1)
                    prompt = fmt.prompt([(t(task.train[i].input), t(task.train[i].output)) for i in order],
                                        t(task.test[ti].input))
                    reqs.append(ScoreRequest(prompt, fmt.target(t(c.grid)), adapter))
                    index.append((ti, c.grid.tolist()))
        return reqs, index

    def phase_score(self) -> None:
        """Product of experts: score the top candidates under several augmentations (budget-aware)."""
        todo = [t for t in self.ids if self.state.best(t)[0] == "main" and t not in self.state.scores]
        if not self.cfg.score_augmentations or not todo:
            return
        t0 = time.monotonic()
        items, index = [], {}
        for tid in todo:
            reqs, idx = self.score_requests(tid)
            if reqs:
                items.append(GenItem(f"score-{tid}", (tid,), reqs, kind="score"))
                index[items[-1].key] = idx
        if self.left() < sum(self.plans[t].infer_s(self.costs.profile) for t in todo) * 0.5 + 30:
            self.log("PoE scoring skipped: not enough time left")
            return
        pool = self.pool = getattr(self, "pool", None) or self.gen_pool()  # closed after the extra phase

        def cap(item: GenItem) -> float:
            return self.cfg.task_timeout or self.chunk_cap(item)

        for item, res in tqdm(pool.run(items, cap, self.deadline), total=len(items), desc="PoE scoring", unit="task"):
            if "error" in res:
                self.log(f"PoE scoring failed for task {item.task_ids[0]!r}: {res['error']}")
                continue
            per_test: dict[int, dict] = {}
            for (ti, g), lp in zip(index[item.key], res["scores"]):
                per_test.setdefault(ti, {}).setdefault(json.dumps(g), []).append(lp)
            n = len(self.tasks.tasks[item.task_ids[0]].test)
            self.state.add_scores(item.task_ids[0], [[(json.loads(k), v) for k, v in per_test.get(i, {}).items()]
                                                     for i in range(n)])
            self.refresh()
        self.times["score"] = time.monotonic() - t0

    def certainty(self, tid: str) -> float:
        """Share of parsed answers that agree with the top candidate (lowest = least certain)."""
        _, tests = self.state.best(tid)
        shares = [flat_vote(t)[0].count / len(t) if t else 0.0 for t in tests]
        return min(shares) if shares else 0.0

    def phase_extra(self) -> None:
        pool = getattr(self, "pool", None)
        t = time.monotonic()
        try:
            for _ in range(self.cfg.extra_rounds):
                unsure = sorted((t for t in self.ids if self.state.has(t, "main") and self.certainty(t) < 1.0),
                                key=self.certainty)[: max(1, len(self.ids) // 4)]
                predicted = sum(self.plans[t].infer_s(self.costs.profile) for t in unsure)
                if not unsure or self.left() < 2 * predicted + 30:
                    break
                pool = pool or self.gen_pool()
                adapters = {tid: a for tid in unsure if (a := self.state.adapter(tid))}
                self.infer(pool, unsure, "extra", adapters)
        finally:
            if pool is not None:
                pool.close()
        self.times["extra"] = time.monotonic() - t

    def finish(self) -> dict:
        sol_source = self.cfg.solutions or solutions_for(self.cfg.challenges)
        per_task: dict[str, float] = {}
        submission = json.loads(self.sub_path.read_text())
        if sol_source:
            solutions = load_solutions(sol_source)
            _, per_task = score_submission(submission, {t: solutions[t] for t in self.ids if t in solutions})
        write_results(self.out / "results.jsonl", {t: len(self.tasks.tasks[t].test) for t in self.ids}, self.state,
                      self.cfg.select, self.plans, per_task)
        steps = [r["step"] for recs in self.state.train.values() for r in recs
                 if "error" in r and not (r.get("not_run") or r.get("interrupted"))]
        summary = {
            "config": {"run": asdict(self.cfg), "ttt": asdict(self.ttt), "train": asdict(self.train_cfg),
                       "gen": asdict(self.gen)},
            "model": self.model, "tasks": len(self.tasks.ids), "processed": len(self.ids),
            "invalid": len(self.tasks.invalid), "workers": self.workers,
            "adapters": sum(bool(self.state.adapter(t)) for t in self.ids),
            "answered_by": {ph: sum(self.state.best(t)[0] == ph for t in self.ids) for ph in ("main", "quick")},
            "ladder_failures": {s: steps.count(s) for s in LADDER if steps.count(s)},
            "events": self.events, "times_s": {**self.times, "total": time.monotonic() - self.t0},
            "budget_s": self.budget, "measured": {**self.costs.measured, "profile": asdict(self.costs.profile)},
        }
        if per_task:
            summary["score"] = sum(per_task.values()) / len(per_task)
        write_json_atomic(self.out / "summary.json", summary)
        try:
            from submission.pipeline.report import write_report

            write_report(self.out, self.cfg.solutions)
        except Exception as e:  # the report is a convenience: never let it fail a run
            print(f"warning: report.html not written ({type(e).__name__}: {e})")
        print("times: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["times_s"].items()))
        if summary["ladder_failures"]:
            print(f"fallback ladder: {summary['ladder_failures']}")
        print(f"wrote {self.sub_path} ({len(self.tasks.ids)} tasks)")
        if per_task:
            print(f"score: {summary['score']:.4f}  ({sum(v == 1 for v in per_task.values())}/{len(per_task)} "
                  f"processed tasks solved; unprocessed tasks are not counted)")
        return summary


def run(cfg: RunConfig, ttt: TTTDataConfig, train: TrainConfig, gen: GenerateConfig) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    r = Run(cfg, ttt, train, gen)
    try:
        r.phase_quick()
        r.phase_ttt()
        r.phase_main()
        r.phase_score()
        r.phase_extra()
    finally:
        r.refresh()
    r.finish()
    return 0


def plan(cfg: RunConfig, ttt: TTTDataConfig, train: TrainConfig, gen: GenerateConfig) -> int:
    """Print the per-task plan and predicted wall time; loads no model."""
    tasks = load_challenges(cfg.challenges)
    ids = pick_tasks(tasks, cfg)
    profile = profile_for(cfg, len(visible_gpus()), model_params(cfg.model or str(_default_model())))
    fmt = TextFormat()
    plans = [plan_task(tasks.tasks[t], ttt, train.epochs, cfg.transforms, cfg.permutations, fmt, cfg.seed + i)
             for i, t in enumerate(ids)]
    workers = cfg.workers or max(1, len(visible_gpus()))
    print(format_plan(plans, profile, cfg.budget * workers if cfg.budget else 0, quick=bool(cfg.quick_transforms)))
    if workers > 1:
        print(f"({workers} workers: the budget above is multiplied by {workers} GPU-seconds per second)")
    return 0


def _default_model() -> Path:
    from submission.engines.tiny_model import default_model

    return default_model()
