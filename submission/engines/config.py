"""Engine configs (pure dataclasses: importable without torch) and device/dtype choice."""

from __future__ import annotations

from dataclasses import dataclass

from submission.knobs import knob

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
EMBEDDING_TARGETS = ("embed_tokens", "lm_head")  # LoRA there: lora_embedding_A/B and an lm_head lora_A/B


@dataclass(frozen=True)
class TrainConfig:
    """Per-task LoRA test-time training. Defaults follow the paper (MARC) unless noted."""

    lora_rank: int = knob(64, "LoRA rank (MARC's 64; PoE/ARChitects 32 with rsLoRA); higher fits harder tasks, "
                              "costs memory")
    lora_alpha: int = knob(16, "LoRA alpha (MARC's 16); with rsLoRA the scale is alpha/sqrt(rank), not alpha/rank")
    lora_dropout: float = knob(0.0, "LoRA dropout; TTT sets are tiny and augmented already")
    use_rslora: bool = knob(False, "rank-stabilised LoRA scaling (the ARChitects, NVARC)")
    targets: tuple[str, ...] = knob(LORA_TARGETS, "LoRA target modules: attention + MLP; add embed_tokens / lm_head "
                                                  "for LoRA on the embeddings and the output layer (LoRA, never full "
                                                  "copies: vLLM serves LoRA there, not modules_to_save)")
    qlora: bool = knob(False, "load the base in 4-bit NF4 (bitsandbytes): ~4x less memory, slower steps")
    learning_rate: float = knob(1e-4, "TTT learning rate (MARC's 1e-4)")
    embedding_learning_rate: float = knob(0.0, "learning rate of the embed_tokens / lm_head LoRA (the ARChitects' "
                                               "1e-5); 0: --learning-rate")
    epochs: int = knob(2, "TTT epochs over the task's augmented set (MARC: 2)")
    batch_size: int = knob(2, "sequences per TTT step (MARC: 2); 1 if memory is short")
    grad_accum: int = knob(1, "micro-batches per optimiser step")
    warmup_ratio: float = knob(0.1, "share of steps with linear warmup, then cosine decay to 0")
    weight_decay: float = knob(0.0, "AdamW weight decay")
    max_seq_len: int = knob(8192, "longest TTT example in tokens; the TTT data builder drops longer ones first")
    max_steps: int = knob(0, ">0 caps optimiser steps per task (time budgets)")
    gradient_checkpointing: bool = knob(False, "trades ~30% speed for memory on long ARC prompts", answers=False)

    def problems(self) -> list[str]:
        out = [] if 1 <= self.lora_rank <= 512 else ["--lora-rank must be in 1..512"]
        if min(self.epochs, self.batch_size, self.grad_accum) < 1:
            out.append("--epochs, --batch-size and --grad-accum must be >= 1")
        if self.learning_rate <= 0:
            out.append("--learning-rate must be > 0")
        if self.embedding_learning_rate < 0:
            out.append("--embedding-learning-rate must be >= 0 (0: --learning-rate)")
        return out


@dataclass(frozen=True)
class GenerateConfig:
    """Batched generation. GPU knobs are explicit so one command fits a T4, an L4 and an H100."""

    max_model_len: int = knob(8192, "prompt + answer tokens; capped at the model's max_position_embeddings")
    gpu_memory_utilization: float = knob(0.85, "vLLM's share of GPU memory (weights + KV cache + LoRA slots)",
                                         answers=False)
    max_num_seqs: int = knob(64, "concurrent sequences in vLLM; lower it on 16 GB cards", answers=False)
    max_loras: int = knob(8, "adapters resident at once in vLLM; more = fewer swaps, more memory", answers=False)
    dtype: str = knob("auto", "auto: bf16 on Ampere+, fp16 on T4 (no bf16), fp32 on CPU",
                      ("auto", "float32", "bfloat16", "float16"))
    max_new_tokens: int = knob(0, "0: per task, 2x its likely answer size (never truncates a known ARC answer), "
                                  "at most 931")
    temperature: float = knob(0.0, "0 is greedy, as in the paper")
    n: int = knob(1, "samples per prompt (n>1 needs temperature>0)")
    enforce_eager: bool = knob(False, "skip CUDA graph capture: faster start, slower decode", answers=False)
    seed: int = knob(0, "sampling seed (set from --seed)")

    def problems(self) -> list[str]:
        out = [] if 0 < self.gpu_memory_utilization <= 1 else ["--gpu-memory-utilization must be in (0, 1]"]
        if self.n > 1 and self.temperature <= 0:
            out.append("--n > 1 needs --temperature > 0 (greedy samples are identical)")
        if self.max_model_len < 1024:
            out.append("--max-model-len must be >= 1024 (a 30x30 answer alone is 931 tokens)")
        if min(self.max_num_seqs, self.max_loras, self.n) < 1:
            out.append("--max-num-seqs, --max-loras and --n must be >= 1")
        return out


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
