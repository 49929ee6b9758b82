"""PoE candidate scoring on the tiny model: candidates scored per second by one batched
multi-LoRA vLLM call (teacher-forced decoding, see gen_vllm._vllm_score) vs per-candidate HF
forward passes, on the same requests; and the largest difference between the two.

    python benchmarks/bench_scoring.py [--tasks 8] [--candidates 4] [--augmentations 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

from bench_engines import FMT, TRAIN, TTT, small_tasks  # noqa: E402

from submission.arc.prompts import inference_transforms  # noqa: E402
from submission.engines.config import GenerateConfig  # noqa: E402
from submission.engines.gen_hf import ScoreRequest  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--augmentations", type=int, default=8)
    args = ap.parse_args()
    from submission.engines.tiny_model import write_tiny_model
    from submission.pipeline.pool.workers import TrainInit, TrainItem, make_train_handler

    tmp = Path(tempfile.mkdtemp())
    model = str(write_tiny_model(tmp / "model"))
    tasks = small_tasks(args.tasks)
    train = make_train_handler(TrainInit(model, "peft", TTT, TRAIN, FMT, str(tmp)))
    for i, t in enumerate(tasks):
        train(TrainItem(t, seed=i))
    rng = np.random.default_rng(0)
    reqs = []
    for task in tasks:
        adapter = str(tmp / "adapters" / task.id)
        demos = task.train
        for k in range(args.candidates):  # candidates: the first demo output, perturbed
            cand = demos[0].output.copy()
            cand[rng.integers(cand.shape[0]), rng.integers(cand.shape[1])] = k
            for t in inference_transforms(args.augmentations, rng):
                prompt = FMT.prompt([(t(p.input), t(p.output)) for p in demos], t(task.test[0].input))
                reqs.append(ScoreRequest(prompt, FMT.target(t(cand)), adapter))
    from submission.engines.gen_hf import HfGenerator
    from submission.engines.gen_vllm import VllmGenerator

    vllm = VllmGenerator(model, GenerateConfig(max_model_len=4096, max_loras=args.tasks), max_lora_rank=TRAIN.lora_rank)
    vllm.score(reqs[:4])  # warm-up
    t = time.perf_counter()
    v = np.array(vllm.score(reqs))
    v_s = time.perf_counter() - t
    hf = HfGenerator(model, GenerateConfig())
    t = time.perf_counter()
    h = np.array(hf.score(reqs))
    h_s = time.perf_counter() - t
    print(f"{len(reqs)} scorings ({args.tasks} tasks x {args.candidates} candidates x "
          f"{args.augmentations} augmentations, {args.tasks} adapters)")
    print(f"vLLM, one batched call     : {v_s:6.2f} s = {len(reqs) / v_s:7.1f} scorings/s")
    print(f"HF, one forward per request: {h_s:6.2f} s = {len(reqs) / h_s:7.1f} scorings/s")
    print(f"ratio vLLM / HF            : {h_s / v_s:.2f}x   max |logp difference|: {np.abs(v - h).max():.2e}")


if __name__ == "__main__":
    main()
