"""The induction phase (--induction-model): a model that writes programs (BARC's induction model, or its stand-in
`tiny-model --preset induction`) is prompted in BARC's format (programs/barc.py), `--induction-samples` programs
per task are sampled by the engine layer (vLLM or HF, free text: no answer-vocabulary constraint), and each
distinct program (deduplicated by syntax tree) runs in the sandbox (programs/sandbox.py) on the demos and test
inputs while the engine goes on generating. Programs that reproduce every demo are weighed by the checks and kept
as candidates of origin "induction" in OUT/programs.jsonl, beside the DSL search's; the merge policy uses both.

It runs after the DSL search and before TTT, ends at --induction-share of a --budget (what it found by then is
kept; a resumed run samples the tasks it did not reach), and never stops the run: a task whose prompt is too long
is skipped, named."""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace
from pathlib import Path

from submission.arc.data import Task
from submission.engines.api import Decoding, GenRequest
from submission.pipeline.budget import Profile
from submission.pipeline.context import Run
from submission.pipeline.pool.supervisor import Pool, Status
from submission.pipeline.pool.workers import GenInit, GenItem, make_gen_handler
from submission.pipeline.programs import spare_cores
from submission.programs.barc import (
    SYSTEM_PROMPT,
    dedupe,
    extract_programs,
    induction_prompt,
    induction_question,
    runnable,
)
from submission.programs.checks import checks, weigh

PROMPT_MAX_TOKENS = 8000  # BARC's inference skips longer prompts
TASKS_PER_CALL = 16  # prompts per engine call: batched, and a cut call loses little
KEEP_PROGRAMS = 8  # verified programs kept per task
PROGRAM_TIMEOUT_S = 2.0  # BARC's timeout per program
# the plan's estimates (benchmarks/README.md): a sample is BARC's reasoning comment and a program, ~400-800 tokens
# for the tasks it solves; the sandbox ran 137.8 program x input runs per second per core on a loaded 2-core box
SAMPLE_TOKENS = 600
SANDBOX_RUNS_PER_CORE_S = 100.0
CHAT_TOKENS = 30  # the chat template's headers around the system prompt and the question


def prompt_tokens(task: Task) -> int:
    """BARC's prompt for a task, estimated without a tokenizer: one token per word, punctuation mark and newline
    (its colour words are one Llama-3 token each), plus the chat template's headers."""
    return CHAT_TOKENS + len(re.findall(r"\w+|[^\w\s]|\n", SYSTEM_PROMPT + induction_question(task)))


def sandbox_workers(gpus: list[str] | None) -> int:
    """Children the sandbox runs at once: the cores the GPU workers leave (one on a CPU-only machine, where the
    engine takes the rest)."""
    return max(1, spare_cores(gpus))


def plan_induction(tasks: list[Task], samples: int, profile: Profile, workers: int, cores: int) -> dict:
    """Predicted seconds of the phase: generation on `workers` engines (each prompt prefilled once, its samples
    share it), and the sandbox running every sample on every demo and test input on `cores` beside it."""
    prefill = sum(min(prompt_tokens(t), PROMPT_MAX_TOKENS) for t in tasks)
    decode = len(tasks) * samples * SAMPLE_TOKENS
    gen_s = (prefill / profile.prefill_tok_s + decode / profile.decode_tok_s) / max(1, workers)
    runs = samples * sum(len(t.train) + len(t.test) for t in tasks)
    sandbox_s = runs / (SANDBOX_RUNS_PER_CORE_S * max(1, cores))
    return {"prefill_tokens": prefill, "decode_tokens": decode, "gen_s": gen_s, "sandbox_s": sandbox_s,
            "total_s": profile.engine_start_s + max(gen_s, sandbox_s)}


def describe(cfg, tasks: list[Task], profile: Profile, gpus: list[str] | None, budget: float,
             ttt_s: float = 0.0) -> str:
    """The induction phase in the plan: what it costs, what its budget share cuts, and beside TTT's plan."""
    workers = max(1, len(gpus or []))
    cores = sandbox_workers(gpus)
    p = plan_induction(tasks, cfg.induction_samples, profile, workers, cores)
    text = (f"induction: {len(tasks)} tasks x {cfg.induction_samples} samples from {cfg.induction_model}: "
            f"~{p['gen_s'] / 60:.1f} min generating on {workers} engine(s) ({p['prefill_tokens'] / 1e6:.2f} M prompt "
            f"tokens, {p['decode_tokens'] / 1e6:.2f} M sampled at ~{SAMPLE_TOKENS} per program, at the profile), "
            f"~{p['sandbox_s'] / 60:.1f} min of sandbox runs on {cores} core(s) beside it, "
            f"{p['total_s'] / 60:.1f} min in all")
    if budget:
        cap = cfg.induction_share * budget
        share = min(1.0, cap / p["total_s"]) if p["total_s"] else 1.0
        text += (f"; cut at {cfg.induction_share:.0%} of the budget ({cap / 60:.1f} min): "
                 + ("it fits" if share >= 1 else f"about {share:.0%} of the tasks get their samples"))
    if ttt_s:
        text += f"; TTT is planned at {ttt_s / 60:.1f} min (induction costs {p['total_s'] / ttt_s:.2f}x TTT)"
    return text


def induction_profile(cfg, gpus: bool) -> Profile:
    """The run's hardware profile (--profile, else h100 with GPUs, cpu without) at the induction model's size, not
    the TTT model's."""
    from submission.engines.model_folder import model_params
    from submission.pipeline.budget import PROFILES, for_model

    return for_model(PROFILES[cfg.profile or ("h100" if gpus else "cpu")], model_params(cfg.induction_model))


def induction_until(run: Run) -> float:
    """When the phase stops (time.monotonic()): --induction-share into a budget, never past the deadline."""
    return min(run.deadline, run.t0 + run.cfg.induction_share * run.budget) if run.budget else math.inf


def free_text(tokenizer) -> Decoding:
    """Any token may be written; the tokenizer's end of sequence (and Llama-3's end of turn) stops a sample."""
    vocab = tokenizer.get_vocab()
    stops = {tokenizer.eos_token_id, vocab.get("<|eot_id|>"), vocab.get("<|end_of_text|>")}
    return Decoding(allowed_ids=tuple(range(len(tokenizer))), stop_ids=tuple(sorted(i for i in stops if i is not None)))


def prompts(run: Run, tokenizer, todo: list[str]) -> dict[str, tuple[int, ...]]:
    """{task: prompt ids} in BARC's format; tasks over PROMPT_MAX_TOKENS are logged and left out."""
    out, long = {}, []
    for tid in todo:
        text = induction_prompt(run.tasks.tasks[tid], tokenizer.apply_chat_template)
        ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
        (long.append(tid) if len(ids) > PROMPT_MAX_TOKENS else out.__setitem__(tid, ids))
    if long:
        run.log(f"induction: {len(long)} task(s) with prompts over {PROMPT_MAX_TOKENS} tokens not sampled: "
                + ", ".join(long[:8]))
    return out


def judge(box, task, texts: list[str], workers: int = 1) -> tuple[list, dict]:
    """Every distinct program in these samples, run in the sandbox (`workers` children at once): the verified ones
    weighed by the checks (at most KEEP_PROGRAMS), and the counts summary.json reports."""
    from submission.programs.sandbox import verify_many

    found = [p for text in texts for p in extract_programs(text)]
    distinct = dedupe(found)
    verified = [r for r in verify_many(box, [runnable(s) for s in distinct], task, "induction", workers)
                if r.verified]
    kept = []
    for r in verified[:KEEP_PROGRAMS]:
        def run_it(grids, source=r.source):
            return [v.grid if v.status == "ok" else None for v in box.run(source, grids)]
        kept.append(weigh(r, checks(run_it, task, r.source)))
    return kept, {"samples": len(texts), "parsed": len(found), "distinct": len(distinct), "verified": len(verified)}


def phase_induction(run: Run) -> int:
    """Sample, run and keep programs for every task not induced yet in this folder; returns how many were."""
    cfg = run.cfg
    todo = [t for t in run.ids if t not in run.state.induced]
    until = induction_until(run)
    if not cfg.induction_model or cfg.program_policy == "off" or not todo or time.monotonic() >= until:
        return 0
    from transformers import AutoTokenizer

    from submission.programs.sandbox import Limits, Sandbox

    tokenizer = AutoTokenizer.from_pretrained(cfg.induction_model, local_files_only=True, trust_remote_code=False)
    asked = prompts(run, tokenizer, todo)
    gen = replace(run.gen, temperature=cfg.induction_temperature, n=cfg.induction_samples, max_new_tokens=0,
                  max_model_len=PROMPT_MAX_TOKENS + cfg.induction_max_tokens)
    init = GenInit(cfg.induction_model, cfg.engine, gen, free_text(tokenizer), 8)
    tids = list(asked)
    items = [GenItem(f"induction{k}", tuple(tids[k:k + TASKS_PER_CALL]),
                     tuple(GenRequest(asked[t], None, cfg.induction_max_tokens) for t in tids[k:k + TASKS_PER_CALL]))
             for k in range(0, len(tids), TASKS_PER_CALL)]
    print(describe(cfg, [run.tasks.tasks[t] for t in tids], induction_profile(cfg, bool(run.gpus)), run.gpus,
                   run.budget))
    cores = sandbox_workers(run.gpus)
    print(f"induction: {cfg.induction_samples} program(s) per task from {cfg.induction_model} for {len(tids)} tasks "
          f"on {run.workers} engine(s), run in the sandbox ({cores} at once) as they arrive")
    done = 0
    library = Path(cfg.induction_library) if cfg.induction_library else None
    log = str(run.log_path) if run.log_path else None
    with Sandbox(Limits(timeout_s=PROGRAM_TIMEOUT_S), library=library) as box, \
            Pool(make_gen_handler, init, run.workers, run.gpus, log) as pool:
        run.sandbox = box.layers()
        for item, res in pool.run(items, lambda i: max(1.0, until - time.monotonic()), until):
            if res.status is not Status.PART:
                if res.status is not Status.OK and res.status is not Status.NOT_RUN:
                    run.log(f"induction engine call {item.key} {res.status.value}: {res.error}")
                continue
            for i, completions in res.value:
                tid = item.task_ids[i]
                texts = [tokenizer.decode(c.token_ids, skip_special_tokens=True) for c in completions]
                kept, counts = judge(box, run.tasks.tasks[tid], texts, cores)
                run.state.add_programs(tid, kept, origin="induction", **counts)
                done += 1
    run.log(f"induction: {done} of {len(todo)} tasks sampled, "
            f"{sum(bool(run.state.induced.get(t, {}).get('verified')) for t in todo)} with a verified program")
    run.refresh()
    return done
