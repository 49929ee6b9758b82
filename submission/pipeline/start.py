"""Everything a run does before its first phase, and `python -m submission plan`, which stops there: the
GPUs this process may use, the hardware profile, the tasks, the model's tokenizer and the preset's format,
the per-task plans (tokens and predicted seconds), the disk and GPU-memory sizing, and the Run every
phase reads (run.py runs the phases; doctor.py measures a machine with the same pieces)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from submission.arc.data import DataError, TaskSet, load_challenges
from submission.arc.formats import GridFormat
from submission.arc.submission_io import write_json_atomic
from submission.engines.api import Decoding
from submission.engines.model_folder import model_max_len, model_params, model_shape
from submission.pipeline import determinism, kaggle
from submission.pipeline.adapter_disk import FREE_SHARE, GB, estimate_bytes, free_bytes
from submission.pipeline.budget import (
    PROFILES,
    CostModel,
    Profile,
    TaskPlan,
    expected_paths,
    for_model,
    format_makespans,
    format_plan,
    plan_task,
)
from submission.pipeline.config import Settings
from submission.pipeline.context import Run, write_submission
from submission.pipeline.determinism import task_seeds
from submission.pipeline.fingerprint import claim
from submission.pipeline.gpu_memory import CARD_BYTES, fit_gpu_memory, gpu_plan, vllm_note
from submission.pipeline.state import RunState
from submission.pipeline.waves import size_disk

OUTPUT_RESERVE_S = 20.0  # held back from a budget to kill workers and write the outputs...
OUTPUT_RESERVE_SHARE = 0.1  # ...or 10% of a small budget


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
    return [str(i) for i, line in enumerate(x for x in out.splitlines() if x.startswith("GPU "))]


CARD_COUNT = {"l4x4": 4, "t4x2": 2, "h100": 1}  # GPUs a profile's machine has


def profile_for(cfg, n_gpu: int, params: float = 0) -> Profile:
    """The named (or default) hardware profile, scaled to the model's size, with any measured
    throughputs the user gave."""
    profile = for_model(PROFILES[cfg.profile or ("h100" if n_gpu else "cpu")], params)
    given = {k: getattr(cfg, k) for k in ("ttt_tok_s", "prefill_tok_s", "decode_tok_s") if getattr(cfg, k)}
    return replace(profile, **given) if given else profile


def pick_tasks(tasks: TaskSet, cfg) -> list[str]:
    """The valid task ids to process, in file order (--tasks, then --limit)."""
    ids = [t for t in tasks.ids if t in tasks.tasks]
    if cfg.tasks:
        wanted = [t.strip() for t in cfg.tasks.split(",") if t.strip()]
        unknown = [t for t in wanted if t not in tasks.raw]
        if unknown:
            print(f"warning: --tasks ids not in {tasks.source}: {', '.join(map(repr, unknown))}")
        ids = [t for t in ids if t in set(wanted)]
    return ids[: cfg.limit] if cfg.limit else ids


def plan_tasks(settings: Settings, tasks: TaskSet, ids: list[str], fmt: GridFormat,
               seeds: dict[str, int]) -> dict[str, TaskPlan]:
    """Every task's plan: TTT tokens, prompts, answer tokens and, under --search dfs, the greedy paths each
    prompt is expected to run (so TTT's cut-off leaves room for what the search will cost)."""
    paths = expected_paths(settings.search.search, settings.search.min_prob)
    return {tid: plan_task(tasks.tasks[tid], settings.ttt, settings.train.epochs, settings.run.transforms,
                           settings.run.permutations, fmt, seeds[tid], paths) for tid in ids}


def load_tokenizer_format(model: str, preset: str = "compact"):
    """The model's tokenizer, the preset's grid format for it, and constrained decoding, checked
    (TokenizerError says what fails and which preset fits instead)."""
    from transformers import AutoTokenizer

    from submission.arc.formats import check_format_tokenizer
    from submission.pipeline.presets import preset_format

    tok = AutoTokenizer.from_pretrained(model, local_files_only=True, trust_remote_code=False)
    fmt = preset_format(preset, tok.eos_token)
    if not fmt.end:
        raise DataError(f"--model {model}: the tokenizer has no eos token to end answers with")
    found = check_format_tokenizer(tok, fmt)
    return tok, fmt, Decoding(found.allowed_ids, found.stop_ids)


def open_run(settings: Settings) -> Run:
    """Everything before the first phase: outputs valid at once, then the model's tokenizer and the plan."""
    cfg = settings.run
    t0 = time.monotonic()
    budget = float(cfg.budget or (kaggle.KAGGLE_LIMIT_S - kaggle.BUDGET_MARGIN_S if kaggle.on_kaggle() else 0))
    deadline = t0 + budget - min(OUTPUT_RESERVE_S, OUTPUT_RESERVE_SHARE * budget) if budget else math.inf
    tasks = load_challenges(cfg.challenges)
    out = Path(cfg.out) if cfg.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    sub_path = Path(cfg.submission) if cfg.submission else out / "submission.json"
    if note := claim(out, settings, cfg.fresh):  # a folder holds one configuration's answers, never two
        print(note)
    ids, state = pick_tasks(tasks, cfg), RunState.load(out)
    # valid from the first second ([[0]], or before's)
    write_submission(sub_path, tasks, ids, state, cfg.select, cfg.program_policy)
    for tid, problem in tasks.invalid.items():
        print(f"quarantined task {tid!r} in {tasks.source}: {problem}")
    write_json_atomic(out / "invalid_tasks.json", tasks.invalid)
    if not (Path(cfg.model) / "config.json").is_file():
        raise DataError(f"--model {cfg.model}: not a local HF model folder (no config.json); "
                        f"the submission so far is at {sub_path}")
    seed = task_seeds(ids, cfg.seed, cfg.deterministic)  # per task, whatever worker runs it
    tokenizer, fmt, decoding = load_tokenizer_format(cfg.model, cfg.preset)
    gpus = visible_gpus()
    if cfg.deterministic:
        print(determinism.enter(bool(gpus), budget))
    workers = cfg.workers or max(1, len(gpus))
    run = Run(settings, tasks, ids, out, sub_path, state, t0, budget, deadline,
              log_path=None if cfg.verbose else out / "engines.log", seed=seed, tokenizer=tokenizer, fmt=fmt,
              decoding=decoding, max_len=min(settings.gen.max_model_len, model_max_len(cfg.model)),
              workers=workers, gpus=[gpus[i % len(gpus)] for i in range(workers)] if gpus else None,
              costs=CostModel(profile_for(cfg, len(gpus), model_params(cfg.model))),
              plans=plan_tasks(settings, tasks, ids, fmt, seed))
    run.disk = size_disk(run)
    fit_gpu_memory(run, gpus)
    if note := vllm_note(cfg.engine):
        print(note)
    done = sum(run.state.has(t, "main") for t in run.ids)
    print(f"{len(tasks.ids)} tasks in {tasks.source}: {len(tasks.invalid)} invalid, processing {len(run.ids)} "
          f"({done} with answers from before) with {run.workers} worker(s) -> {out}"
          + (f"; budget {budget:.0f} s" if budget else "")
          + (f"; engine output -> {run.log_path}" if run.log_path else ""))
    print(run.disk.describe("--adapter-disk-gb" if cfg.adapter_disk_gb else "free space", cfg.keep_adapters))
    return run


def planned_set(settings: Settings, tasks, ids: list[str], fmt) -> list:
    """Each selected task's plan; with --plan-tasks N, N plans, the selected ones repeated in turn (only the set's
    size matters: the hidden set planned from a public one)."""
    cfg = settings.run
    plans = list(plan_tasks(settings, tasks, ids, fmt, task_seeds(ids, cfg.seed, cfg.deterministic)).values())
    if cfg.plan_tasks and plans:
        plans = [plans[i % len(plans)] for i in range(cfg.plan_tasks)]
    return plans


def embedding_note(settings: Settings, gpus: list[str]) -> str:
    """How LoRA on embed_tokens / lm_head is trained and served in this run ('' when the targets leave them
    out): always LoRA layers, never full modules_to_save copies."""
    from submission.engines.config import EMBEDDING_TARGETS

    train = settings.train
    which = [t for t in train.targets if t in EMBEDDING_TARGETS]
    if not which or settings.run.trainer == "none":
        return ""
    trainer = settings.run.trainer if settings.run.trainer != "auto" else ("unsloth" if gpus else "peft")
    route = ("Unsloth's get_peft_model with a module pattern (a list would become modules_to_save), their LoRA "
             "unfrozen" + (", UNSLOTH_RETURN_LOGITS=1 so the loss runs through lm_head" if "lm_head" in which
                           else "") if trainer == "unsloth" else "PEFT's LoraConfig")
    lr = train.embedding_learning_rate or train.learning_rate
    return (f"LoRA on {', '.join(which)} (LoRA layers, not full copies) at rank {train.lora_rank}, learning rate "
            f"{lr:g}: trained by {trainer} ({route}); served by vLLM multi-LoRA beside the other projections")


def plan(settings: Settings) -> int:
    """Print the per-task plan, predicted wall time and adapter disk; loads no model."""
    from submission.engines.tiny_model import default_model
    from submission.pipeline.adapter_disk import format_disk, plan_waves
    from submission.pipeline.presets import PRESETS, preset_format

    cfg = settings.run
    tasks = load_challenges(cfg.challenges)
    ids = pick_tasks(tasks, cfg)
    gpus = visible_gpus()
    # a named preset planned without --model (the weights are elsewhere): its checkpoint's size and shape,
    # not the tiny model's
    preset = PRESETS[cfg.preset] if cfg.model == str(default_model()) else None
    profile = profile_for(cfg, len(gpus), (preset and preset.params) or model_params(cfg.model))
    shape = (preset and preset.shape) or model_shape(cfg.model)
    fmt = preset_format(cfg.preset, "</s>")  # no tokenizer needed: token counts are estimates
    plans = planned_set(settings, tasks, ids, fmt)
    workers = cfg.workers or max(1, len(gpus))
    per = estimate_bytes(shape, settings.train.targets, settings.train.lora_rank)
    bound = cfg.adapter_disk_gb * GB if cfg.adapter_disk_gb else FREE_SHARE * free_bytes(Path(cfg.out or "runs"))
    _, waves, _ = plan_waves(len(plans), per, bound) if cfg.trainer != "none" else (0, 1, 0)
    wave_s = 2 * profile.engine_start_s * max(0, waves - 1)
    print(format_plan(plans, profile, cfg.budget * workers if cfg.budget else 0, quick=bool(cfg.quick_transforms),
                      extra_starts_s=wave_s * workers))
    print(format_disk(len(plans), per, bound, "--adapter-disk-gb" if cfg.adapter_disk_gb else
                      f"free space of {cfg.out or 'runs'}, less 10%", 2 * profile.engine_start_s))
    if cfg.program_policy != "off":
        from submission.pipeline.programs import describe

        print(describe(len(ids), cfg.dsl_depth, cfg.dsl_seconds, cfg.budget, cfg.program_search, gpus))
    if cfg.induction_model:
        from submission.pipeline import induction

        # planning a GPU box from another machine: its profile's GPUs (the sandbox's cores are this machine's)
        engines = gpus or [str(i) for i in range(cfg.workers or CARD_COUNT.get(cfg.profile, 0))] or None
        print(induction.describe(cfg, [tasks.tasks[t] for t in ids], induction.induction_profile(cfg, bool(gpus)),
                                 engines, cfg.budget, sum(p.ttt_s(profile) for p in plans) / len(engines or [1])))
    if workers > 1:
        print(f"({workers} workers: the budget above is multiplied by {workers} GPU-seconds per second)")
        print(format_makespans(plans, profile, workers, cfg.budget))
    if note := vllm_note(cfg.engine):
        print(note)
    if note := embedding_note(settings, gpus):
        print(note)
    if (card := cfg.profile or ("h100" if gpus else "")) in CARD_BYTES and shape and plans:
        print(gpu_plan(settings, shape, (preset and preset.params) or model_params(cfg.model), list(plans),
                       CARD_BYTES[card]).describe(card))
    return 0


