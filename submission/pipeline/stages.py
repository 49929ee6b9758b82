"""Heavy stages of a run. TTT runs in a spawned child process: its model, Unsloth's patches and
its GPU memory are gone before vLLM starts, and a crash there costs adapters, not the run."""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from submission.data import Task, safe_name
from submission.engines.config import GenerateConfig, TrainConfig
from submission.engines.train_loop import TrainExample
from submission.text import TextFormat
from submission.ttt_data import TTTDataConfig, build_ttt_dataset


@dataclass
class TrainJob:
    model: str
    trainer: str  # auto | unsloth | peft
    tasks: list[Task]
    ttt: TTTDataConfig
    train: TrainConfig
    fmt: TextFormat
    out: str  # run folder: adapters/<safe id>/ and train.jsonl go here
    seed: int
    dtype: str = "auto"


def pick_trainer(name: str) -> str:
    """auto: Unsloth on a GPU when installed, otherwise PEFT (Unsloth's CPU path is plain HF anyway)."""
    if name != "auto":
        return name
    import torch

    return "unsloth" if torch.cuda.is_available() and find_spec("unsloth") else "peft"


def make_trainer(name: str, model: str, cfg: TrainConfig, dtype: str):
    if name == "unsloth":
        from submission.engines.train_unsloth import UnslothTrainer

        return UnslothTrainer(model, cfg, dtype)
    from submission.engines.train_peft import PeftTrainer

    return PeftTrainer(model, cfg, dtype)


def train_all(job: TrainJob) -> None:
    """Child-process entry: load the base once, then per task: TTT data -> fresh LoRA -> adapter.
    Appends one JSON line per task to train.jsonl (flushed), errors included."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tqdm import tqdm

    log = Path(job.out) / "train.jsonl"
    name = pick_trainer(job.trainer)
    t0 = time.perf_counter()
    trainer = make_trainer(name, job.model, job.train, job.dtype)
    load_s = time.perf_counter() - t0
    with open(log, "a", encoding="utf-8") as f:
        for i, task in enumerate(tqdm(job.tasks, desc=f"TTT ({name})", unit="task")):
            rec = {"task_id": task.id, "trainer": name, "load_s": load_s if i == 0 else 0.0}
            try:
                t1 = time.perf_counter()
                examples = build_ttt_dataset(task, job.ttt, job.fmt, seed=job.seed + i)
                rec["data_s"] = time.perf_counter() - t1
                adapter = Path(job.out) / "adapters" / safe_name(task.id)
                rec.update(trainer.train([TrainExample(e.text, e.loss_spans(job.ttt.loss_mode)) for e in examples],
                                         adapter, seed=job.seed + i))
                rec["adapter"] = str(adapter)
            except Exception as e:  # one task's failure costs only that task (it falls back to the base)
                rec["error"] = f"{type(e).__name__}: {e}"
                rec["traceback"] = traceback.format_exc(limit=3)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())


def run_training(job: TrainJob) -> dict[str, dict]:
    """Train in a spawned child; returns {task_id: record} read back from train.jsonl."""
    import multiprocessing as mp

    log = Path(job.out) / "train.jsonl"
    proc = mp.get_context("spawn").Process(target=train_all, args=(job,), name="ttt")
    proc.start()
    proc.join()
    records = {}
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            records[rec["task_id"]] = rec
    if proc.exitcode != 0:
        print(f"warning: the TTT process exited with code {proc.exitcode} after {len(records)} of "
              f"{len(job.tasks)} tasks; the rest use the base model")
    return records


def make_generator(engine: str, model: str, cfg: GenerateConfig, max_lora_rank: int):
    """vLLM when available (auto), else the HF engine; a vLLM start-up failure falls back to HF."""
    if engine in ("auto", "vllm") and find_spec("vllm"):
        try:
            from submission.engines.gen_vllm import VllmGenerator

            return VllmGenerator(model, cfg, max_lora_rank)
        except Exception as e:
            if engine == "vllm":
                raise
            print(f"warning: vLLM failed to start ({type(e).__name__}: {e}); using the HF engine")
    elif engine == "vllm":
        raise RuntimeError("--engine vllm: vLLM is not installed")
    from submission.engines.gen_hf import HfGenerator

    return HfGenerator(model, cfg)
