"""The training loop both trainers share: tokenise with loss masks from character spans, AdamW,
linear warmup + cosine decay, NaN guard. Works on any causal LM with LoRA layers (PEFT or Unsloth)."""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

from submission.engines.api import TrainExample, TrainResult
from submission.engines.config import TrainConfig

__all__ = ["TrainExample", "NaNLossError", "encode", "pad_batch", "reset_lora", "fit", "train_task"]


class NaNLossError(RuntimeError):
    """Training diverged (loss is NaN or inf)."""


def encode(tokenizer: Any, ex: TrainExample, max_len: int) -> tuple[list[int], list[int]] | None:
    """Token ids and labels (-100 outside the loss spans); None if longer than max_len."""
    enc = tokenizer(ex.text, return_offsets_mapping=True, add_special_tokens=True)
    ids = list(enc["input_ids"])
    if len(ids) > max_len:
        return None
    labels = [-100] * len(ids)
    for i, (a, b) in enumerate(enc["offset_mapping"]):
        if b > a and any(s <= a and b <= e for s, e in ex.loss_spans):
            labels[i] = ids[i]
    return ids, labels


def pad_batch(batch: Sequence[tuple[list[int], list[int]]], pad: int, device: Any):
    """(input_ids, labels, attention_mask) tensors, right-padded to the longest sequence."""
    import torch

    width = max(len(x) for x, _ in batch)
    ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch], device=device)
    labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch], device=device)
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch], device=device)
    return ids, labels, mask


def reset_lora(model: Any, seed: int, adapter: str = "default") -> int:
    """Re-initialise every LoRA layer of `adapter` as PEFT does at creation (one factor random, the other zero,
    so the update starts at 0): a fresh adapter per task. Embedding LoRA keeps its factors in lora_embedding_A/B,
    not lora_A/B."""
    import torch

    torch.manual_seed(seed)
    n = 0
    for m in model.modules():
        if hasattr(m, "reset_lora_parameters") and (adapter in getattr(m, "lora_A", {})
                                                    or adapter in getattr(m, "lora_embedding_A", {})):
            m.reset_lora_parameters(adapter, True)
            n += 1
    if n == 0:
        raise RuntimeError("no LoRA layers found to reset")
    return n


def is_embedding_lora(name: str) -> bool:
    """A parameter of the LoRA on embed_tokens (lora_embedding_A/B) or on lm_head (its lora_A/B)."""
    return "lora_embedding_" in name or ("lm_head" in name and "lora_" in name)


def param_groups(model: Any, cfg: TrainConfig) -> list[dict]:
    """The trainable parameters, the embedding/output LoRA in a group of its own at --embedding-learning-rate."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise RuntimeError("no trainable parameters: the LoRA layers are frozen")
    embed = [p for n, p in trainable if is_embedding_lora(n)]
    rest = [p for n, p in trainable if not is_embedding_lora(n)]
    groups = [{"params": rest}] if rest else []
    if embed:
        groups.append({"params": embed, "lr": cfg.embedding_learning_rate or cfg.learning_rate})
    return groups


def fit(model: Any, tokenizer: Any, examples: Sequence[TrainExample], cfg: TrainConfig, seed: int) -> dict:
    """Train the trainable (LoRA) parameters on the examples; returns loss/step/time stats."""
    import torch

    device = next(p.device for p in model.parameters())
    encoded = (encode(tokenizer, ex, cfg.max_seq_len) for ex in examples)
    data = [e for e in encoded if e and any(label != -100 for label in e[1])]
    if not data:
        raise ValueError("no training example fits max_seq_len with a non-empty loss")
    g = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = max(1, math.ceil(per_epoch * cfg.epochs / cfg.grad_accum))
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    groups = param_groups(model, cfg)
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup_ratio * total))
    def lr_factor(s: int) -> float:  # linear warmup, then cosine decay to 0
        return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.train()
    losses, step, micro, tokens, t0 = [], 0, 0, 0, time.perf_counter()
    while step < total:
        order = torch.randperm(len(data), generator=g).tolist()
        for b in range(0, len(order), cfg.batch_size):
            batch = [data[i] for i in order[b:b + cfg.batch_size]]
            ids, labels, mask = pad_batch(batch, pad, device)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            if not torch.isfinite(loss):
                raise NaNLossError(f"loss is {loss.item()} at step {step}")
            (loss / cfg.grad_accum).backward()
            losses.append(loss.item())
            tokens += int(mask.sum())
            micro += 1
            if micro % cfg.grad_accum == 0:
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                if step >= total:
                    break
    model.eval()
    return {"steps": step, "examples": len(data), "tokens": tokens, "first_loss": losses[0],
            "last_loss": sum(losses[-4:]) / len(losses[-4:]), "train_s": time.perf_counter() - t0}


def train_task(model: Any, tokenizer: Any, examples: Sequence[TrainExample], cfg: TrainConfig, out_dir: Any,
               seed: int) -> TrainResult:
    """Fresh LoRA weights, train, save the adapter (PEFT safetensors) to out_dir. A rank other than
    the loaded adapter's (the fallback ladder) trains a second adapter of that rank on the same base."""
    import shutil
    from dataclasses import replace as dc_replace
    from pathlib import Path

    name, rank = "default", cfg.lora_rank
    if rank != model.peft_config["default"].r:
        name = f"rank{rank}"
        if name not in model.peft_config:
            model.add_adapter(name, dc_replace(model.peft_config["default"], r=rank))
    model.set_adapter(name)
    try:
        reset_lora(model, seed, adapter=name)
        stats = fit(model, tokenizer, examples, cfg, seed)
        out_dir = Path(out_dir)
        if name == "default":
            model.save_pretrained(str(out_dir), safe_serialization=True, save_embedding_layers=False)
        else:  # PEFT writes a non-default adapter into <dir>/<name>/
            tmp = out_dir.with_name(out_dir.name + ".tmp")
            model.save_pretrained(str(tmp), selected_adapters=[name], safe_serialization=True,
                                  save_embedding_layers=False)
            shutil.rmtree(out_dir, ignore_errors=True)
            (tmp / name).rename(out_dir)
            shutil.rmtree(tmp, ignore_errors=True)
        return TrainResult(adapter=str(out_dir), lora_rank=rank, **stats)
    finally:
        model.set_adapter("default")
