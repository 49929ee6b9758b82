"""What worker processes do with one item: train a task's adapter (TrainItem) or run a batch of
engine requests (GenItem). Each worker builds its engine once (`make_*_handler(init)`); the
supervisor moves items and typed results between the driver and the workers."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from submission.arc.data import Task, safe_name
from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset
from submission.engines.api import Decoding, GenRequest, ScoreRequest, SearchRequest, TrainExample, TrainResult
from submission.engines.config import GenerateConfig, TrainConfig
from submission.pipeline import determinism
from submission.pipeline.pool import faults

LADDER = ("full", "fewer_demos", "small_rank", "no_ttt")  # what each TTT retry gives up
FEWER_DEMOS_SHARE = 4  # fewer_demos: a quarter of the examples, half their length
SMALL_RANK_SHARE = 4  # small_rank: also a quarter of the rank


def ladder_configs(level: int, ttt: TTTDataConfig, train: TrainConfig) -> tuple[TTTDataConfig, TrainConfig]:
    """The TTT settings of a ladder level (0 = as configured)."""
    if level >= 1:
        ttt = replace(ttt, max_examples=max(4, ttt.max_examples // FEWER_DEMOS_SHARE),
                      max_tokens=max(1024, ttt.max_tokens // 2))
    if level >= 2:
        train = replace(train, lora_rank=max(4, train.lora_rank // SMALL_RANK_SHARE))
    return ttt, train


@dataclass(frozen=True)
class TrainInit:
    model: str
    trainer: str  # auto | unsloth | peft
    train: TrainConfig  # what the engine is loaded with (rank of the first adapter, targets, qlora)
    fmt: Any  # the text format of TTT examples
    out: str  # run folder: adapters go to OUT/adapters/<safe task id>
    dtype: str = "auto"


@dataclass(frozen=True)
class TrainItem:
    task: Task
    seed: int
    level: int  # ladder level
    ttt: TTTDataConfig  # ladder-adjusted
    train: TrainConfig  # ladder-adjusted
    shared: tuple[tuple[Task, int], ...] = ()  # --adapter shared: one adapter on all these (task, seed) TTT sets

    def folder(self, out: str) -> Path:
        """Where its adapter goes: OUT/adapters/<task> (a task id can name no folder outside it), or
        OUT/adapter_shared."""
        return Path(out) / "adapter_shared" if self.shared else Path(out) / "adapters" / safe_name(self.task.id)

    def sources(self) -> tuple[tuple[Task, int], ...]:
        return self.shared or ((self.task, self.seed),)


@dataclass(frozen=True)
class Trained:
    result: TrainResult
    trainer: str
    data_s: float  # building the TTT set
    load_s: float  # loading the engine (charged to the worker's first task)
    peak_bytes: int = 0  # peak memory while training: the GPU's allocated bytes, or on CPU the process's RSS


def peak_memory(reset: bool = False) -> int:
    """The GPU's peak allocated bytes since the last reset (CUDA), else this process's peak resident size."""
    import resource

    import torch

    if torch.cuda.is_available():
        if reset:
            torch.cuda.reset_peak_memory_stats()
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def make_train_handler(init: TrainInit):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    faults.at_load()
    determinism.in_worker()
    from submission.engines.factory import make_trainer

    t = time.perf_counter()
    trainer = make_trainer(init.trainer, init.model, init.train, init.dtype)
    load_s = time.perf_counter() - t

    def handle(item: TrainItem) -> Trained:
        nonlocal load_s
        t0 = time.perf_counter()
        examples = [e for task, seed in item.sources() for e in build_ttt_dataset(task, item.ttt, init.fmt, seed)]
        exs = [TrainExample(e.text, e.loss_spans(item.ttt.loss_mode)) for e in examples]
        data_s = time.perf_counter() - t0
        adapter = item.folder(init.out)
        peak_memory(reset=True)
        result = trainer.train(exs, adapter, item.train, item.seed)
        done, load_s = Trained(result, trainer.name, data_s, load_s, peak_memory()), 0.0
        return done

    return faults.hook_train(handle)


@dataclass(frozen=True)
class GenInit:
    model: str
    engine: str  # auto | vllm | hf
    gen: GenerateConfig
    decoding: Decoding
    max_lora_rank: int


@dataclass(frozen=True)
class GenItem:
    key: str  # unique within the run, e.g. "main3"
    task_ids: tuple[str, ...]  # the tasks its requests belong to (logs, fault tests)
    # one kind of request, and its type picks the engine method: GenRequest -> generate and SearchRequest ->
    # search (both stream (index, completions)), ScoreRequest -> score (one list of log-probabilities)
    requests: tuple[GenRequest, ...] | tuple[SearchRequest, ...] | tuple[ScoreRequest, ...]
    max_s: float = 0.0  # generate/search: end the call after this many seconds, keeping what finished (0: never)

    def __post_init__(self):
        kinds = {type(r) for r in self.requests}
        if len(kinds) > 1 or not kinds <= {GenRequest, SearchRequest, ScoreRequest}:
            raise TypeError(f"engine call {self.key}: one kind of request per call, got "
                            f"{', '.join(sorted(k.__name__ for k in kinds))}")


def make_gen_handler(init: GenInit):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    faults.at_load()
    determinism.in_worker()
    from submission.engines.factory import make_generator

    generator = make_generator(init.engine, init.model, init.gen, init.decoding, init.max_lora_rank)
    # one token first: an engine's first call pays one-time costs (vLLM's warm-up: seconds on CPU), which then
    # count as the engine start the run measures, not as the speed of the first real call
    list(generator.generate([GenRequest(tuple(init.decoding.allowed_ids[:8]), None, 1)]))

    def handle(item: GenItem) -> Iterator | list[float]:
        if not item.requests:
            return []
        if isinstance(item.requests[0], ScoreRequest):
            return generator.score(item.requests)
        until = time.monotonic() + item.max_s if item.max_s else math.inf
        serve = generator.search if isinstance(item.requests[0], SearchRequest) else generator.generate
        return serve(item.requests, until)

    return faults.hook_generate(handle)


__all__ = ["LADDER", "GenInit", "GenItem", "GenRequest", "ScoreRequest", "TrainInit", "TrainItem", "Trained",
           "ladder_configs", "make_gen_handler", "make_train_handler"]
