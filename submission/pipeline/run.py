"""`python -m submission run`: tasks -> TTT adapters -> one batched multi-LoRA generate -> vote ->
submission.json. A valid submission is written first ([[0]] everywhere) and replaced at the end."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import numpy as np

from submission.data import TaskSet, load_challenges, load_solutions, solutions_for
from submission.engines.config import GenerateConfig, TrainConfig
from submission.engines.gen_hf import GenRequest
from submission.pipeline.config import RunConfig
from submission.pipeline.stages import TrainJob, make_generator, run_training
from submission.prompts import Prompt, build_prompts
from submission.score import score_submission
from submission.submission_io import build_submission, write_json_atomic
from submission.text import TextFormat, check_tokenizer, parse_grid
from submission.ttt_data import TTTDataConfig
from submission.vote import Prediction, flat_vote, hierarchical_vote, top2

MAX_ANSWER_TOKENS = 30 * 31 + 1  # a 30x30 grid, a newline per row, end of sequence


def out_dir(cfg: RunConfig) -> Path:
    out = Path(cfg.out) if cfg.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    return out


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


def load_format(model: str) -> TextFormat:
    """The grid format for this model's tokenizer (its eos text ends every output), checked."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model, local_files_only=True, trust_remote_code=False)
    if tok.eos_token is None:
        raise ValueError(f"{model}: the tokenizer has no eos token")
    fmt = TextFormat(end_marker=tok.eos_token)
    check_tokenizer(tok, fmt)
    return fmt


def select(prompts: list[Prompt], texts: list[list[str]], fmt: TextFormat, rule: str) -> dict:
    """Parse, invert and vote: {task_id: {test_index: (ranked candidates, parsed, total)}}."""
    preds: dict[tuple[str, int], list[Prediction]] = {}
    total: dict[tuple[str, int], int] = {}
    for p, outs in zip(prompts, texts):
        key = (p.task_id, p.test_index)
        bucket = preds.setdefault(key, [])
        for text in outs:
            total[key] = total.get(key, 0) + 1
            g = parse_grid(text, fmt.end_marker)
            if g is not None:
                bucket.append(Prediction(p.transform.invert(g), p.transform.name, p.transform.is_identity))
    vote = hierarchical_vote if rule == "vote" else flat_vote
    out: dict[str, dict] = {}
    for (tid, ti), bucket in preds.items():
        out.setdefault(tid, {})[ti] = (vote(bucket), len(bucket), total[(tid, ti)])
    return out


def task_record(tid: str, n_tests: int, chosen: dict, train_rec: dict | None, n_prompts: int, tokens: int) -> dict:
    tests = []
    for ti in range(n_tests):
        ranked, parsed, total = chosen.get(ti, ([], 0, 0))
        tests.append({"parsed": parsed, "outputs": total, "attempts": [g.tolist() for g in top2(ranked)],
                      "candidates": [{"grid": c.grid.tolist(), "count": c.count, "transform_votes": c.transform_votes,
                                      "by_transform": c.by_transform} for c in ranked[:10]]})
    return {"task_id": tid, "prompts": n_prompts, "prompt_tokens": tokens, "train": train_rec, "tests": tests}


def run(cfg: RunConfig, ttt: TTTDataConfig, train: TrainConfig, gen: GenerateConfig) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    tasks = load_challenges(cfg.challenges)
    out = out_dir(cfg)
    sub_path = out / "submission.json"
    write_json_atomic(sub_path, build_submission(tasks, {}))  # valid from the first second
    for tid, problem in tasks.invalid.items():
        print(f"quarantined task {tid!r} in {tasks.source}: {problem}")
    write_json_atomic(out / "invalid_tasks.json", tasks.invalid)
    ids = pick_tasks(tasks, cfg)
    print(f"{len(tasks.ids)} tasks in {tasks.source}: {len(tasks.invalid)} invalid, processing {len(ids)} -> {out}")
    model = cfg.model or str(_default_model())
    fmt = load_format(model)
    times["load"] = time.perf_counter() - t0

    train_recs: dict[str, dict] = {}
    if cfg.trainer != "none" and ids:
        t = time.perf_counter()
        train_recs = run_training(TrainJob(model, cfg.trainer, [tasks.tasks[i] for i in ids], ttt, train, fmt,
                                           str(out), cfg.seed, gen.dtype))
        times["ttt"] = time.perf_counter() - t
        failed = {k: v["error"] for k, v in train_recs.items() if "error" in v}
        for tid, err in failed.items():
            print(f"warning: TTT failed for task {tid!r} ({err}); it uses the base model")
    adapters = {k: v["adapter"] for k, v in train_recs.items() if "adapter" in v}

    t = time.perf_counter()
    generator = make_generator(cfg.engine, model, gen, train.lora_rank)
    max_len = min(gen.max_model_len, getattr(generator, "max_len", gen.max_model_len))
    prompts = [p for i, tid in enumerate(ids) for p in build_prompts(
        tasks.tasks[tid], cfg.transforms, cfg.permutations, fmt, seed=cfg.seed + i, max_tokens=max_len - 1)]
    lengths = [len(x) for x in generator.tokenizer([p.text for p in prompts])["input_ids"]] if prompts else []
    answer = gen.max_new_tokens or MAX_ANSWER_TOKENS
    requests = [GenRequest(p.text, adapters.get(p.task_id), max(1, min(answer, max_len - n)))
                for p, n in zip(prompts, lengths)]
    times["engine_start"] = time.perf_counter() - t
    t = time.perf_counter()
    print(f"generating {len(requests)} prompts for {len(ids)} tasks ({len(adapters)} adapters) with {generator.name}")
    texts = generator.generate(requests) if requests else []
    times["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    chosen = select(prompts, texts, fmt, cfg.select)
    attempts = {tid: [top2(chosen.get(tid, {}).get(ti, ([], 0, 0))[0]) for ti in range(len(tasks.tasks[tid].test))]
                for tid in ids}
    submission = build_submission(tasks, attempts)
    write_json_atomic(sub_path, submission)
    times["select"] = time.perf_counter() - t

    n_prompts = {tid: 0 for tid in ids}
    n_tokens = {tid: 0 for tid in ids}
    for p, n in zip(prompts, lengths):
        n_prompts[p.task_id] += 1
        n_tokens[p.task_id] += n
    summary = {"config": {"run": asdict(cfg), "ttt": asdict(ttt), "train": asdict(train), "gen": asdict(gen)},
               "model": model, "tasks": len(tasks.ids), "processed": len(ids), "invalid": len(tasks.invalid),
               "adapters": len(adapters), "prompts": len(prompts), "times_s": times}
    sol_source = cfg.solutions or solutions_for(cfg.challenges)
    per_task = {}
    if sol_source:
        solutions = load_solutions(sol_source)
        overall, per_task = score_submission(submission, {t: solutions[t] for t in ids if t in solutions})
        summary["score"] = overall
    with open(out / "results.jsonl", "w", encoding="utf-8") as f:
        for tid in ids:
            rec = task_record(tid, len(tasks.tasks[tid].test), chosen.get(tid, {}), train_recs.get(tid),
                              n_prompts[tid], n_tokens[tid])
            if tid in per_task:
                rec["score"] = per_task[tid]
            f.write(json.dumps(rec) + "\n")
    write_json_atomic(out / "summary.json", summary)
    print("times: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items()))
    print(f"wrote {sub_path} ({len(tasks.ids)} tasks)")
    if "score" in summary:
        print(f"score: {summary['score']:.4f}  ({sum(v == 1 for v in per_task.values())}/{len(per_task)} "
              f"processed tasks solved; unprocessed tasks are not counted)")
    return 0


def _default_model() -> Path:
    from submission.engines.tiny_model import default_model

    return default_model()
