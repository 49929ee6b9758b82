"""Engine configs (pure dataclasses: importable without torch) and device/dtype choice."""

from __future__ import annotations

from dataclasses import dataclass

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig:
    """Per-task LoRA test-time training. Defaults follow the paper (MARC) unless noted."""

    lora_rank: int = 64  # MARC's; PoE (ARChitects) uses 32 with rsLoRA. Higher fits harder tasks, costs memory
    lora_alpha: int = 16  # MARC's; with rsLoRA the scale is alpha/sqrt(rank) instead of alpha/rank
    lora_dropout: float = 0.0  # TTT sets are tiny and augmented already
    use_rslora: bool = False  # rank-stabilised scaling (PoE)
    targets: tuple[str, ...] = LORA_TARGETS  # attention + MLP; no embeddings: stock vLLM can't serve modules_to_save
    qlora: bool = False  # load the base in 4-bit NF4 (bitsandbytes): ~4x less memory, slower steps
    learning_rate: float = 1e-4  # MARC's TTT lr
    epochs: int = 2  # MARC: 2 for TTT
    batch_size: int = 2  # MARC: 2 (per device); one sequence per step if memory is short
    grad_accum: int = 1
    warmup_ratio: float = 0.1  # linear warmup, then cosine decay to 0
    weight_decay: float = 0.0
    max_seq_len: int = 8192  # longer examples are dropped by the TTT data builder before this
    max_steps: int = 0  # >0 caps optimiser steps per task (time budgets)
    gradient_checkpointing: bool = False  # trades ~30% speed for memory on long ARC prompts


@dataclass
class GenerateConfig:
    """Batched generation. GPU knobs are explicit so one command fits a T4, an L4 and an H100."""

    max_model_len: int = 8192  # prompt + answer tokens; capped at the model's max_position_embeddings
    gpu_memory_utilization: float = 0.85  # vLLM's share of GPU memory (weights + KV cache + LoRA slots)
    max_num_seqs: int = 64  # concurrent sequences in vLLM; lower it on 16 GB cards
    max_loras: int = 8  # adapters resident at once in vLLM; more = fewer swaps, more memory
    dtype: str = "auto"  # auto: bf16 on Ampere+, fp16 on T4 (no bf16), fp32 on CPU
    max_new_tokens: int = 0  # 0: per task, 2x its likely answer size (never truncates a known ARC answer), at most 931
    temperature: float = 0.0  # greedy, as in the paper
    n: int = 1  # samples per prompt (n>1 needs temperature>0)
    enforce_eager: bool = False  # True skips CUDA graph capture: faster start, slower decode
    seed: int = 0


def vllm_rank(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds `rank`."""
    return next(r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank)


def pick_device_dtype(requested: str = "auto"):
    """(device, torch dtype): bf16 where the GPU supports it, fp16 on older GPUs, fp32 on CPU."""
    import torch

    if not torch.cuda.is_available():
        return "cpu", {"auto": torch.float32}.get(requested) or getattr(torch, _DTYPES[requested])
    if requested != "auto":
        return "cuda", getattr(torch, _DTYPES[requested])
    return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "half": "float16"}
