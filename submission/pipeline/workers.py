"""What worker processes do with one item: train a task's adapter (at a ladder level) or
generate a chunk of prompts. Built once per worker by the supervisor's `make_handler(init)`.

Fault injection for tests: ARC_TTT_FAULTS="task=raise;other=hang;x=nan;y=oom;z=gen_hang"
fires at ladder level 0 (append '*' to fire at every level).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from submission.data import Task, safe_name
from submission.engines.config import GenerateConfig, TrainConfig
from submission.text import TextFormat
from submission.ttt_data import TTTDataConfig, build_ttt_dataset

LADDER = ("full", "fewer_demos", "small_rank", "no_ttt")  # what each TTT retry gives up


def faults() -> dict[str, str]:
    spec = os.environ.get("ARC_TTT_FAULTS", "")
    return dict(kv.split("=", 1) for kv in spec.split(";") if "=" in kv)


def inject(task_id: str, level: int, kinds: tuple[str, ...]) -> str | None:
    """The fault to fire for this task at this level, if a test asked for one."""
    f = faults().get(task_id)
    if not f:
        return None
    kind, every = f.rstrip("*"), f.endswith("*")
    return kind if kind in kinds and (every or level == 0) else None


@dataclass
class TrainInit:
    model: str
    trainer: str
    ttt: TTTDataConfig
    train: TrainConfig
    fmt: TextFormat
    out: str
    dtype: str = "auto"


@dataclass
class TrainItem:
    task: Task
    seed: int
    level: int = 0


def ladder_configs(level: int, ttt: TTTDataConfig, train: TrainConfig) -> tuple[TTTDataConfig, TrainConfig]:
    """Level 1: a quarter of the examples, half the length. Level 2: also a quarter of the rank."""
    if level >= 1:
        ttt = replace(ttt, max_examples=max(4, ttt.max_examples // 4), max_tokens=max(1024, ttt.max_tokens // 2))
    if level >= 2:
        train = replace(train, lora_rank=max(4, train.lora_rank // 4))
    return ttt, train


def make_train_handler(init: TrainInit):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from submission.pipeline.stages import make_trainer, pick_trainer

    name = pick_trainer(init.trainer)
    t = time.perf_counter()
    trainer = make_trainer(name, init.model, init.train, init.dtype)
    load_s = time.perf_counter() - t

    def handle(item: TrainItem) -> dict:
        nonlocal load_s
        ttt, train = ladder_configs(item.level, init.ttt, init.train)
        rec = {"task_id": item.task.id, "level": item.level, "step": LADDER[item.level], "trainer": name,
               "load_s": load_s}
        load_s = 0.0
        fault = inject(item.task.id, item.level, ("raise", "hang", "nan", "oom"))
        if fault == "hang":
            time.sleep(1e9)
        if fault == "raise":
            raise RuntimeError("injected fault")
        if fault == "oom":
            import torch

            raise getattr(torch.cuda, "OutOfMemoryError", RuntimeError)("CUDA out of memory (injected)")
        if fault == "nan":
            train = replace(train, learning_rate=1e20, max_steps=4)  # weights blow up: a real NaN/inf loss
        t0 = time.perf_counter()
        examples = build_ttt_dataset(item.task, ttt, init.fmt, seed=item.seed)
        rec["data_s"] = time.perf_counter() - t0
        adapter = Path(init.out) / "adapters" / safe_name(item.task.id)
        from submission.engines.train_loop import TrainExample

        exs = [TrainExample(e.text, e.loss_spans(ttt.loss_mode)) for e in examples]
        rec.update(trainer.train(exs, adapter, seed=item.seed, rank=train.lora_rank, lr=train.learning_rate,
                                 max_steps=train.max_steps))
        rec["adapter"] = str(adapter)
        return rec

    return handle


@dataclass
class GenInit:
    model: str
    engine: str
    gen: GenerateConfig
    max_lora_rank: int


@dataclass
class GenItem:
    key: str  # chunk id
    task_ids: tuple[str, ...]
    requests: list  # GenRequest to generate, or ScoreRequest to score
    kind: str = "generate"  # generate | score


def make_gen_handler(init: GenInit):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from submission.pipeline.stages import make_generator

    generator = make_generator(init.engine, init.model, init.gen, init.max_lora_rank)

    def handle(item: GenItem) -> dict:
        if any(inject(t, 0, ("gen_hang",)) for t in item.task_ids):
            time.sleep(1e9)
        t = time.perf_counter()
        if item.kind == "score":
            return {"scores": generator.score(item.requests), "gen_s": time.perf_counter() - t}
        texts = generator.generate(item.requests)
        return {"texts": texts, "gen_s": time.perf_counter() - t, "engine": generator.name}

    return handle
