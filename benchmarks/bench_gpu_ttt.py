"""LoRA test-time training on a GPU for real model shapes: time per step and per task, and peak
memory, with each model's real vocabulary (embedding, lm_head and the logits of every position are
in the peak; a reduced vocabulary is its own shape). Random weights (no hub here): time and memory
per step do not depend on the values.

Self-contained on purpose (torch + transformers + peft only): PEFT LoRA on every linear layer of
the blocks, bf16, AdamW, batch 1 for the step figures, and for the per-task figures the token
counts of the pipeline's default TTT data (leave-one-out x 16 augmentations, <= 64 examples of
<= 8,192 tokens, <= 400k tokens, 2 epochs, batch 2, character-level tokens) on real ARC tasks.

    python benchmarks/bench_gpu_ttt.py --list                      # vocab + parameters (CPU, no weights)
    python benchmarks/bench_gpu_ttt.py --steps qwen3-4b,llama-3-8b --seq 2048,8192 --ckpt both
    python benchmarks/bench_gpu_ttt.py --tasks 05a7bcf2,0a1d4ef5 --task-shapes qwen3-4b --ckpt on
Results also go, one JSON object a line, to --jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

# name: (config class, vocabulary, hidden, layers, heads, kv heads, head dim, intermediate, tied embeddings)
SHAPES = {
    "qwen2.5-0.5b": ("Qwen2Config", 151936, 896, 24, 14, 2, 64, 4864, True),
    "llama-3.2-1b": ("LlamaConfig", 128256, 2048, 16, 32, 8, 64, 8192, True),
    "llama-3.2-3b": ("LlamaConfig", 128256, 3072, 28, 24, 8, 128, 8192, True),
    "qwen3-4b": ("Qwen3Config", 151936, 2560, 36, 32, 8, 128, 9728, True),  # NVARC's base
    "qwen3-4b-16tok": ("Qwen3Config", 16, 2560, 36, 32, 8, 128, 9728, True),  # NVARC's 16-token variant
    "minitron-8b": ("MistralConfig", 131072, 4096, 40, 32, 8, 128, 11520, False),  # the ARChitects' base
    "minitron-8b-77tok": ("MistralConfig", 77, 4096, 40, 32, 8, 128, 11520, False),  # their reduced vocabulary
    "llama-3-8b": ("LlamaConfig", 128256, 4096, 32, 32, 8, 128, 14336, False),  # MARC's base
    "tiny": ("LlamaConfig", 151936, 64, 2, 4, 2, 16, 128, False),  # CPU smoke test of this script
}


def model_config(name: str):
    """The transformers config of a shape."""
    import transformers

    cls, vocab, hidden, layers, heads, kv, head_dim, inter, tied = SHAPES[name]
    extra = {"sliding_window": None} if cls == "MistralConfig" else {}  # Mistral-NeMo attends to all tokens
    return getattr(transformers, cls)(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv, head_dim=head_dim, intermediate_size=inter, tie_word_embeddings=tied,
        max_position_embeddings=16384, bos_token_id=0, eos_token_id=0, pad_token_id=0, **extra)


def param_count(name: str) -> int:
    """Parameters of a shape, counted on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config(name))
    return sum(p.numel() for p in model.parameters())


def build(name: str, rank: int, device: str, embed: bool = False):
    """A random bf16 model of a shape with LoRA adapters on every linear layer of its blocks (and with
    `embed`, on the input embedding and the output layer too, as NVARC's and the ARChitects' recipes)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(model_config(name), dtype=torch.bfloat16)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    targets += ["embed_tokens", "lm_head"] if embed else []
    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM"))


def set_ckpt(model, on: bool) -> None:
    if on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()
    model.config.use_cache = False


def train_steps(model, opt, lengths: list[int], batch: int, device: str) -> tuple[float, int]:
    """Optimiser steps over examples of these token lengths (random ids, loss on the second half,
    as on an output grid); returns (seconds, tokens)."""
    import torch

    vocab = model.config.vocab_size
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0, tokens = time.perf_counter(), 0
    for i in range(0, len(lengths), batch):
        width = max(lengths[i:i + batch])
        ids = torch.randint(1, vocab, (len(lengths[i:i + batch]), width), device=device)
        labels = ids.clone()
        labels[:, : width // 2] = -100
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += ids.numel()
    sync()
    return time.perf_counter() - t0, tokens


def peak_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def grid_tokens(g) -> int:
    return g.shape[0] * (g.shape[1] + 1) + 2  # a newline per row + begin/end markers (character tokens)


def ttt_lengths(task, augmentations: int = 16, max_examples: int = 64, max_tokens: int = 8192,
                max_total: int = 400_000) -> list[int]:
    """Token lengths of a task's default TTT set: every demo in turn is the query after the others
    (largest context demos dropped until it fits), x augmentations, capped (longest first dropped)."""
    sizes = [grid_tokens(p.input) + grid_tokens(p.output) for p in task.train]
    one_round = []
    for q in range(len(sizes)):
        ctx = sorted(s for i, s in enumerate(sizes) if i != q)
        while ctx and sum(ctx) + sizes[q] > max_tokens:
            ctx.pop()
        if sum(ctx) + sizes[q] <= max_tokens:
            one_round.append(sum(ctx) + sizes[q])
    out = sorted(one_round * augmentations)[:max_examples]
    while sum(out) > max_total:
        out.pop()
    return out


def record(path: str | None, rec: dict) -> None:
    print(json.dumps(rec), flush=True)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def bench_steps(name: str, seqs: list[int], ckpts: list[bool], args, device: str) -> None:
    """Step time and peak memory per (sequence length, checkpointing) for one shape."""
    import torch

    reset_peak(device)
    model = build(name, args.rank, device, args.embed)
    weights = peak_gib(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for ckpt in ckpts:
        set_ckpt(model, ckpt)
        for seq in seqs:
            rec = {"kind": "step", "shape": name, "vocab": SHAPES[name][1], "seq": seq, "ckpt": ckpt,
                   "rank": args.rank, "embed": args.embed, "weights_gib": weights}
            try:
                train_steps(model, opt, [seq], 1, device)  # warm-up (kernels, allocator)
                reset_peak(device)
                dt, tokens = train_steps(model, opt, [seq] * args.repeats, 1, device)
                rec.update(s_per_step=dt / args.repeats, tok_s=tokens / dt, peak_gib=peak_gib(device))
            except torch.OutOfMemoryError:
                rec.update(error="out of memory")
                opt.zero_grad(set_to_none=True)
            # the logits alone: bf16 output + its fp32 copy in the loss, per token
            rec["logits_gib"] = seq * SHAPES[name][1] * 6 / 2**30
            record(args.jsonl, rec)
    del model, opt
    reset_peak(device)


def bench_tasks(name: str, task_ids: list[str], ckpt: bool, args, device: str) -> None:
    """Whole TTT runs (2 epochs, batch 2) at the default TTT data's token counts, per task."""
    import torch

    from submission.arc.data import load_challenges

    ts = load_challenges("arc1-eval")
    for tid in task_ids:
        reset_peak(device)
        model = build(name, args.rank, device, args.embed)
        set_ckpt(model, ckpt)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        lengths = ttt_lengths(ts.tasks[tid])
        rec = {"kind": "task", "shape": name, "task": tid, "examples": len(lengths), "max_len": max(lengths),
               "tokens_per_epoch": sum(lengths), "ckpt": ckpt, "rank": args.rank,
               "embed": args.embed}
        try:
            dt, tokens = train_steps(model, opt, lengths * 2, 2, device)
            rec.update(seconds=dt, tok_s=tokens / dt, peak_gib=peak_gib(device))
        except torch.OutOfMemoryError:
            rec.update(error="out of memory")
        record(args.jsonl, rec)
        del model, opt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="print every shape's vocabulary and parameters")
    ap.add_argument("--steps", default="", help="shapes for the step benchmark, comma-separated")
    ap.add_argument("--seq", default="2048,8192", help="sequence lengths (tokens) for the step benchmark")
    ap.add_argument("--ckpt", default="both", choices=("on", "off", "both"), help="gradient checkpointing")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per setting (after one warm-up)")
    ap.add_argument("--rank", type=int, default=64, help="LoRA rank (the pipeline's default, MARC's 64)")
    ap.add_argument("--embed", action="store_true", help="LoRA on embed_tokens and lm_head too (NVARC's recipe)")
    ap.add_argument("--tasks", default="", help="ARC-AGI-1 eval task ids for whole-task TTT runs")
    ap.add_argument("--task-shapes", default="qwen3-4b", help="shapes for the whole-task runs")
    ap.add_argument("--jsonl", default=None, help="also append every result to this file")
    args = ap.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    ckpts = {"on": [True], "off": [False], "both": [True, False]}[args.ckpt]
    if args.list:
        for name in SHAPES:
            rec = {"kind": "shape", "shape": name, "vocab": SHAPES[name][1], "params_b": param_count(name) / 1e9}
            record(args.jsonl, rec)
    env = {"kind": "env", "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
           "torch": torch.__version__, "transformers": __import__("transformers").__version__,
           "peft": __import__("peft").__version__}
    if args.steps or args.tasks:
        record(args.jsonl, env)
    for name in filter(None, args.steps.split(",")):
        bench_steps(name, [int(s) for s in args.seq.split(",")], ckpts, args, device)
    for name in filter(None, args.task_shapes.split(",") if args.tasks else []):
        bench_tasks(name, args.tasks.split(","), ckpts[0], args, device)


if __name__ == "__main__":
    main()
