"""The run's config: RunConfig plus the stage configs, with the CLI generated from the dataclasses
(each flag's help is the comment beside its field, so defaults and reasons live in one place)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

from submission.data import BUNDLED
from submission.engines.config import GenerateConfig, TrainConfig
from submission.ttt_data import TTTDataConfig
from submission.vote import RULES

STAGES = (TTTDataConfig, TrainConfig, GenerateConfig)


@dataclass
class RunConfig:
    challenges: str = "arc1-eval"  # a *_challenges.json path or a bundled set
    solutions: str | None = None  # defaults to the bundled answers or the *_solutions.json beside the challenges
    model: str | None = None  # a local HF causal-LM folder; default: the embedded tiny model
    out: str | None = None  # run folder; default runs/<timestamp>
    submission: str | None = None  # where submission.json goes; default OUT/submission.json
    limit: int = 0  # process only the first N valid tasks (0 = all); the submission still lists every task
    tasks: str = ""  # comma-separated task ids to process
    trainer: str = "auto"  # auto | unsloth | peft | none (no TTT: base model only)
    engine: str = "auto"  # auto | vllm | hf
    transforms: int = 8  # inference transforms per test input: identity, the 7 other D8, then D8 + colour maps
    permutations: int = 2  # demo orders per transform (the paper's voting uses several)
    select: str = "vote"  # vote (the paper's hierarchical vote) | flat | poe (product of experts) | combined | identity (no augmentation)
    score_augmentations: int = 8  # PoE: augmentations each candidate is scored under (0 = no scoring phase)
    score_candidates: int = 4  # PoE: top candidates per test input (by vote) that get scored
    seed: int = 0
    budget: float = 0  # seconds for the whole run; 0 = unlimited (on Kaggle: 12 h minus 10 min)
    workers: int = 0  # worker processes, one per GPU; 0 = number of visible GPUs (1 on CPU)
    quick_transforms: int = 2  # phase 1: base-model prompts per test input before any TTT (0 = skip)
    extra_rounds: int = 1  # phase 3: rounds of extra augmentations for the least certain quarter, if time is left
    chunk_prompts: int = 512  # prompts per batched generate call; the submission is updated after each
    task_timeout: float = 0  # seconds per TTT task / inference chunk before it is killed; 0 = from the cost model
    profile: str = ""  # cost-model hardware profile: cpu | t4x2 | l4x4 | h100 (default: h100 with a GPU, else cpu)
    ttt_tok_s: float = 0  # override the profile's TTT tokens/s with a measured figure
    prefill_tok_s: float = 0  # override the profile's prompt tokens/s
    decode_tok_s: float = 0  # override the profile's generated tokens/s


CHOICES = {"trainer": ("auto", "unsloth", "peft", "none"), "engine": ("auto", "vllm", "hf"),
           "select": RULES, "profile": ("", "cpu", "t4x2", "l4x4", "h100"), "color_policy": ("keep0", "all", "none"),
           "loss_mode": ("all", "all_but_first", "query"), "dtype": ("auto", "float32", "bfloat16", "float16")}
SKIP = {"seed"}  # stage fields that RunConfig already provides


def field_help(cls: type) -> dict[str, str]:
    """{field: the comment beside it in the class source}."""
    src = inspect.getsource(cls)
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+): [^#\n]*#(.*)$", src, re.M)}


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, skip: set[str] = frozenset()) -> None:
    """One --flag per field; None default means 'keep the dataclass default'."""
    helps = field_help(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{helps.get(f.name, '')} (default: {default})"
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif isinstance(default, tuple):
            group.add_argument(flag, type=lambda s: tuple(x for x in s.split(",") if x), default=None,
                               help=help_text + " (comma-separated)")
        else:
            kind = type(default) if default is not None else str
            group.add_argument(flag, type=kind, default=None, choices=CHOICES.get(f.name), help=help_text)


def from_args(cls: type, args: argparse.Namespace) -> Any:
    """A dataclass from parsed args, keeping defaults for flags not given."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
             if getattr(args, f.name, None) is not None}
    return cls(**given)


def validate(run: RunConfig, ttt: TTTDataConfig, train: TrainConfig, gen: GenerateConfig) -> list[str]:
    """Every problem with the arguments, collected (raised once by the caller)."""
    problems = []
    for name in ("limit", "transforms", "permutations"):
        if getattr(run, name) < (0 if name == "limit" else 1):
            problems.append(f"--{name} must be {'>= 0' if name == 'limit' else '>= 1'}")
    if train.lora_rank < 1 or train.lora_rank > 512:
        problems.append("--lora-rank must be in 1..512")
    if train.epochs < 1 or train.batch_size < 1 or train.grad_accum < 1:
        problems.append("--epochs, --batch-size and --grad-accum must be >= 1")
    if not 0 < gen.gpu_memory_utilization <= 1:
        problems.append("--gpu-memory-utilization must be in (0, 1]")
    if gen.n > 1 and gen.temperature <= 0:
        problems.append("--n > 1 needs --temperature > 0 (greedy samples are identical)")
    if gen.max_model_len < 1024:
        problems.append("--max-model-len must be >= 1024 (a 30x30 answer alone is 931 tokens)")
    if run.challenges not in (*BUNDLED, "kaggle") and not run.challenges.endswith(".json"):
        problems.append(f"--challenges {run.challenges!r}: give a .json file, 'kaggle' or one of {', '.join(BUNDLED)}")
    for name in ("budget", "workers", "quick_transforms", "extra_rounds", "task_timeout", "score_augmentations",
                 "score_candidates"):
        if getattr(run, name) < 0:
            problems.append(f"--{name.replace('_', '-')} must be >= 0")
    if run.chunk_prompts < 1:
        problems.append("--chunk-prompts must be >= 1")
    return problems
