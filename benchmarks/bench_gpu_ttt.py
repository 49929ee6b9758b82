"""Per-task TTT time and peak GPU memory for real model *shapes* (random weights: no hub here),
with the PEFT trainer and the pipeline's own TTT data, on real ARC-AGI-1 eval tasks; plus HF
greedy decode throughput. Random weights change nothing about time or memory per step.

    python benchmarks/bench_gpu_ttt.py --shape llama-1b --tasks 5 [--challenges FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

SHAPES = {  # (hidden, layers, heads, kv_heads, intermediate)
    "qwen-0.5b": (896, 24, 14, 2, 4864),
    "llama-1b": (2048, 16, 32, 8, 8192),
    "llama-3b": (3072, 28, 24, 8, 8192),
    "llama-8b": (4096, 32, 32, 8, 14336),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="llama-1b", choices=SHAPES)
    ap.add_argument("--tasks", type=int, default=5)
    ap.add_argument("--challenges", default="arc1-eval")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--max-examples", type=int, default=64)
    ap.add_argument("--decode", type=int, default=64, help="prompts for the HF decode measurement (0: skip)")
    args = ap.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from submission.data import load_challenges
    from submission.engines.config import TrainConfig
    from submission.engines.tiny_model import build_tokenizer
    from submission.engines.train_loop import TrainExample
    from submission.engines.train_peft import PeftTrainer
    from submission.text import TextFormat
    from submission.ttt_data import TTTDataConfig, build_ttt_dataset

    hidden, layers, heads, kv, inter = SHAPES[args.shape]
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv, intermediate_size=inter, max_position_embeddings=16384,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters()) / 1e9
    cfg = TrainConfig(gradient_checkpointing=args.gradient_checkpointing)
    trainer = PeftTrainer.from_loaded(model, tok, cfg)
    fmt = TextFormat()
    ts = load_challenges(args.challenges)
    print(f"{torch.cuda.get_device_name(0)}  shape {args.shape} ({params:.2f} B params, bf16)  LoRA r{cfg.lora_rank} "
          f"all linear  epochs {cfg.epochs} batch {cfg.batch_size}  grad-ckpt {cfg.gradient_checkpointing}")
    print(f"{'task':>10} {'examples':>8} {'tokens':>8} {'steps':>5} {'seconds':>8} {'tok/s':>8} {'peak GiB':>8}")
    total = 0.0
    for tid in ts.ids[: args.tasks]:
        exs = build_ttt_dataset(ts.tasks[tid], TTTDataConfig(max_examples=args.max_examples), fmt)
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        t = time.perf_counter()
        st = trainer.train([TrainExample(e.text, e.loss_spans("all_but_first")) for e in exs], f"/tmp/bench_ad/{tid}")
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        total += dt
        print(f"{tid:>10} {st['examples']:>8} {st['tokens']:>8} {st['steps']:>5} {dt:>8.1f} {st['tokens'] / dt:>8.0f} "
              f"{torch.cuda.max_memory_allocated() / 2**30:>8.1f}")
    print(f"mean TTT seconds per task: {total / args.tasks:.1f}")
    if args.decode:
        from submission.prompts import build_prompts

        model = trainer.model
        model.eval()
        tok.padding_side = "left"
        prompts = [p.text for p in build_prompts(ts.tasks[ts.ids[0]], 8, 8, fmt)][: args.decode]
        enc = tok(prompts, return_tensors="pt", padding=True).to("cuda")
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=256, min_new_tokens=256, do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        n = (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
        print(f"HF greedy decode, batch {len(prompts)} x 256 new tokens, prompt {enc['input_ids'].shape[1]} tokens: "
              f"{n / dt:.0f} generated tok/s")


if __name__ == "__main__":
    main()
