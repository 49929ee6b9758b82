"""Stage-1 engine parts: load a model to fine-tune (full, PEFT LoRA or Unsloth LoRA, or a new tiny
Llama from scratch) and write/read resumable checkpoints (safetensors only, no pickle)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from submission.engines.config import LORA_TARGETS, pick_device_dtype
from submission.engines.factory import pick_trainer


def load_model(cfg: Any, resume_dir: Path | None):
    """(model, tokenizer, trainer name) ready to train; weights from the checkpoint when resuming."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, dtype = pick_device_dtype(cfg.dtype)
    src = Path(cfg.model)
    if cfg.model == "scratch":
        from submission.engines.tiny_model import write_tiny_model

        src = Path(cfg.out) / "init"
        if not (src / "model.safetensors").is_file():
            write_tiny_model(src, hidden=cfg.scratch_hidden, layers=cfg.scratch_layers, heads=cfg.scratch_heads,
                             seed=cfg.seed, max_positions=8192, init_std=None)
    full = cfg.lora_rank == 0
    trainer = "torch" if full and cfg.trainer == "auto" else pick_trainer(cfg.trainer)
    if full and trainer != "torch":
        raise ValueError(f"--trainer {trainer} is for LoRA (--lora-rank > 0); full fine-tuning uses --trainer torch")
    weights = resume_dir if (full and resume_dir) else src
    if trainer == "unsloth":
        from submission.engines.train_unsloth import import_unsloth

        FastLanguageModel = import_unsloth()
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(src), max_seq_length=cfg.max_tokens, dtype=dtype, load_in_4bit=False,
            local_files_only=True, trust_remote_code=False)
        model = FastLanguageModel.get_peft_model(
            model, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules=list(LORA_TARGETS), bias="none",
            use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False, random_state=cfg.seed)
    else:
        tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(weights, dtype=dtype, local_files_only=True,
                                                     trust_remote_code=False, use_safetensors=True).to(device)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        if not full:
            from peft import LoraConfig, get_peft_model

            from submission.engines.train_peft import present_targets

            torch.manual_seed(cfg.seed)
            model = get_peft_model(model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, bias="none",
                                                     target_modules=present_targets(model, LORA_TARGETS),
                                                     task_type="CAUSAL_LM"))
    if not full and resume_dir:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(resume_dir / "adapter_model.safetensors"))
    return model, tokenizer, trainer


def save_optimizer(opt: Any, path: Path) -> dict:
    """Optimiser tensors as safetensors (no pickle); returns the JSON-able rest (param groups)."""
    from safetensors.torch import save_file

    sd = opt.state_dict()
    tensors = {f"{i}.{k}": v.contiguous() for i, st in sd["state"].items() for k, v in st.items()}
    save_file(tensors, str(path))
    return {"param_groups": sd["param_groups"]}


def load_optimizer(opt: Any, path: Path, groups: dict) -> None:
    from safetensors.torch import load_file

    state: dict[int, dict] = {}
    for key, v in load_file(str(path)).items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def _save_model(model: Any, tokenizer: Any, path: Path) -> None:
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))


def checkpoint(model, tokenizer, opt, ckpt: Path, step: int, config: dict, history: list) -> None:
    """Write OUT/checkpoint atomically (a kill mid-write leaves the previous one intact)."""
    tmp = ckpt.with_name("checkpoint.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _save_model(model, tokenizer, tmp)
    groups = save_optimizer(opt, tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({"step": step, "config": config, "optimizer": groups,
                                                "history": history}))
    old = ckpt.with_name("checkpoint.old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    shutil.rmtree(old, ignore_errors=True)
