"""Engines side by side on the tiny model, same prompts (8 tasks x 16 prompts, 8 adapters):
generated tokens/s of one batched multi-LoRA vLLM call vs a per-task HF generate loop (batched
within a task), and TTT seconds per task for PEFT vs Unsloth (CPU fallback here).

    python benchmarks/bench_engines.py [--tasks 8] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from submission.arc.data import load_challenges  # noqa: E402
from submission.arc.prompts import build_prompts  # noqa: E402
from submission.arc.text import TextFormat  # noqa: E402
from submission.arc.ttt.data import TTTDataConfig  # noqa: E402
from submission.engines.config import GenerateConfig, TrainConfig  # noqa: E402
from submission.engines.gen_hf import GenRequest  # noqa: E402

FMT = TextFormat()
TTT = TTTDataConfig(augmentations=8, max_examples=16)
TRAIN = TrainConfig(lora_rank=16, epochs=1)


def small_tasks(n: int):
    """The n smallest ARC-AGI-1 eval tasks (by characters), so the tiny model's context fits."""
    ts = load_challenges("arc1-eval")
    size = lambda t: sum(p.input.size + (p.output.size if p.output is not None else 0) for p in t.train + t.test)  # noqa: E731
    return sorted(ts.tasks.values(), key=size)[:n]


def train_child(trainer: str, model: str, out: str, n: int, q) -> None:
    from submission.pipeline.pool.workers import TrainInit, TrainItem, make_train_handler

    t = time.perf_counter()
    handle = make_train_handler(TrainInit(model, trainer, TTT, TRAIN, FMT, out))
    for i, task in enumerate(small_tasks(n)):
        handle(TrainItem(task, seed=i))
    q.put(time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    from submission.engines.tiny_model import write_tiny_model

    tmp = Path(tempfile.mkdtemp())
    model = str(write_tiny_model(tmp / "model"))
    ttt = {}
    for trainer in ("peft", "unsloth"):  # each in its own process: unsloth and vLLM never share one
        q = mp.get_context("spawn").Queue()
        (tmp / trainer).mkdir()
        p = mp.get_context("spawn").Process(target=train_child,
                                            args=(trainer, model, str(tmp / trainer), args.tasks, q))
        p.start()
        p.join()
        ttt[trainer] = q.get() / args.tasks

    tasks = small_tasks(args.tasks)
    reqs = [GenRequest(p.text, str(tmp / "peft" / "adapters" / t.id), args.max_tokens)
            for t in tasks for p in build_prompts(t, 8, 2, FMT)[:16]]
    from submission.engines.gen_hf import HfGenerator
    from submission.engines.gen_vllm import VllmGenerator

    gcfg = GenerateConfig(max_model_len=4096, max_loras=args.tasks)
    vllm = VllmGenerator(model, gcfg, max_lora_rank=TRAIN.lora_rank)
    vllm.generate(reqs[:4])  # warm-up
    t = time.perf_counter()
    v_out = vllm.generate(reqs)
    v_s = time.perf_counter() - t
    hf = HfGenerator(model, gcfg, batch_size=16)
    t = time.perf_counter()
    h_out = []
    for task in tasks:  # the per-task loop a naive pipeline runs: one adapter, one batch at a time
        h_out += hf.generate([r for r in reqs if r.adapter.endswith("/" + task.id)])
    h_s = time.perf_counter() - t
    ntok = lambda outs: sum(len(vllm.tokenizer.encode(o[0], add_special_tokens=False)) + 1 for o in outs)  # noqa: E731
    v_tok, h_tok = ntok(v_out), ntok(h_out)
    print(f"{len(tasks)} tasks x 16 prompts = {len(reqs)} prompts, {args.tasks} adapters, "
          f"max {args.max_tokens} new tokens")
    print(f"vLLM, one multi-LoRA batch : {v_tok:6d} tokens in {v_s:6.2f} s = {v_tok / v_s:7.0f} tok/s")
    print(f"HF, per-task generate loop : {h_tok:6d} tokens in {h_s:6.2f} s = {h_tok / h_s:7.0f} tok/s")
    print(f"ratio vLLM / HF            : {(v_tok / v_s) / (h_tok / h_s):.1f}x   (same outputs: {v_out == h_out})")
    print(f"TTT per task (incl. model load / {args.tasks}): PEFT {ttt['peft']:.2f} s, Unsloth {ttt['unsloth']:.2f} s, "
          f"ratio {ttt['unsloth'] / ttt['peft']:.2f}")


if __name__ == "__main__":
    main()
