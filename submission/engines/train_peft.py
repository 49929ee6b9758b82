"""PEFT trainer: load the base once (optionally 4-bit), wrap it in one LoRA adapter, and for each
task re-initialise the LoRA weights, train, save as PEFT safetensors that stock vLLM serves."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from submission.engines.api import TrainExample, TrainResult
from submission.engines.config import TrainConfig, pick_device_dtype
from submission.engines.train_loop import train_task


def present_targets(model, targets: Sequence[str]) -> list[str]:
    """The requested LoRA targets that exist in this architecture."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    found = [t for t in targets if t in names]
    if not found:
        raise ValueError(f"none of the LoRA targets {list(targets)} exist in this model")
    return found


def lora_config(model, cfg: TrainConfig):
    from peft import LoraConfig

    # embed_tokens / lm_head become LoRA layers (PEFT's Embedding and Linear), never modules_to_save copies. On a
    # model with tied embeddings (Qwen3-4B) they are two independent LoRAs on the one matrix, PEFT's default
    # (ensure_weight_tying=False): the input side and the output side each adapt, which is what vLLM serves.
    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=present_targets(model, cfg.targets), use_rslora=cfg.use_rslora,
                      bias="none", task_type="CAUSAL_LM")


class PeftTrainer:
    name = "peft"

    def __init__(self, model_path: str | Path, cfg: TrainConfig, dtype: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device, torch_dtype = pick_device_dtype(dtype)
        kwargs = dict(dtype=torch_dtype, local_files_only=True, trust_remote_code=False, use_safetensors=True)
        if cfg.qlora:
            from transformers import BitsAndBytesConfig

            cpu_fp16 = device != "cuda" and torch_dtype == torch.float16  # bitsandbytes has no fp16 CPU compute
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.float32 if cpu_fp16 else torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True, trust_remote_code=False)
        base = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
        self._wrap(base if cfg.qlora or device == "cpu" else base.to(device), tokenizer, cfg)

    @classmethod
    def from_loaded(cls, base, tokenizer, cfg: TrainConfig) -> "PeftTrainer":
        """Wrap a model already in memory (benchmarks build random real-size models this way)."""
        self = cls.__new__(cls)
        self._wrap(base, tokenizer, cfg)
        return self

    def _wrap(self, base, tokenizer, cfg: TrainConfig) -> None:
        from peft import get_peft_model, prepare_model_for_kbit_training

        self.cfg, self.tokenizer = cfg, tokenizer
        if cfg.qlora:
            base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=cfg.gradient_checkpointing)
        elif cfg.gradient_checkpointing:
            base.gradient_checkpointing_enable()
            base.enable_input_require_grads()
        with warnings.catch_warnings():  # independent LoRAs on a tied matrix are the intent (see lora_config)
            warnings.filterwarnings("ignore", message="Model has `tie_word_embeddings=True`")
            self.model = get_peft_model(base, lora_config(base, cfg))

    def train(self, examples: Sequence[TrainExample], out_dir: Path, cfg: TrainConfig, seed: int) -> TrainResult:
        """Fresh LoRA weights, train on this task's examples under `cfg` (rank, lr, epochs, steps may
        differ per task: the fallback ladder), save the adapter to out_dir."""
        return train_task(self.model, self.tokenizer, examples, cfg, out_dir, seed)
