"""HF generator (transformers + PEFT): the fallback engine and the parity reference for vLLM.
Loads the base once, attaches each task's adapter by name, and generates batched per adapter."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from submission.engines.config import GenerateConfig, pick_device_dtype

GRID_SYMBOLS = [*"0123456789", "\n"]


@dataclass(frozen=True)
class GenRequest:
    prompt: str
    adapter: str | None  # a PEFT adapter folder, or None for the base model
    max_tokens: int


@dataclass(frozen=True)
class ScoreRequest:
    prompt: str
    completion: str  # scored: the sum of log-probabilities of its tokens given the prompt
    adapter: str | None


def score_ids(tokenizer: Any, r: ScoreRequest) -> tuple[list[int], list[int]]:
    """Prompt ids and completion ids, tokenised apart so the boundary is exact."""
    prompt = tokenizer(r.prompt, add_special_tokens=True)["input_ids"]
    return list(prompt), list(tokenizer(r.completion, add_special_tokens=False)["input_ids"])


def allowed_ids(tokenizer: Any) -> list[int]:
    """Token ids of the grid symbols and end-of-sequence: the only tokens generation may emit."""
    ids = {tokenizer.encode(s, add_special_tokens=False)[0] for s in GRID_SYMBOLS}
    return sorted(ids | {tokenizer.eos_token_id})


def model_max_len(model_path: str | Path) -> int:
    """max_position_embeddings from the model's config.json (8192 if absent)."""
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    return int(cfg.get("max_position_embeddings") or 8192)


class HfGenerator:
    name = "hf"

    def __init__(self, model_path: str | Path, cfg: GenerateConfig, batch_size: int = 16):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg, self.batch_size = cfg, batch_size
        self.device, dtype = pick_device_dtype(cfg.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True, trust_remote_code=False)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, local_files_only=True,
                                                         trust_remote_code=False, use_safetensors=True).to(self.device)
        self.base.eval()
        self.model = self.base  # becomes a PeftModel once an adapter is loaded
        self._names: dict[str, str] = {}
        self._allowed = allowed_ids(self.tokenizer)

    def _use(self, adapter: str | None):
        """Activate an adapter (loading it once) or the bare base model."""
        from peft import PeftModel

        if adapter is None:
            return self.model.disable_adapter() if self.model is not self.base else _nullcontext()
        if adapter not in self._names:
            name = f"task{len(self._names) + 1}"
            if self.model is self.base:
                self.model = PeftModel.from_pretrained(self.base, adapter, adapter_name=name, is_trainable=False)
            else:
                self.model.load_adapter(adapter, adapter_name=name, is_trainable=False)
            self._names[adapter] = name
        self.model.set_adapter(self._names[adapter])
        return _nullcontext()

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        """n texts per request, in request order; batched within each adapter."""
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        allowed = torch.tensor(self._allowed, device=self.device)

        class OnlyGrid(LogitsProcessor):
            def __call__(self, input_ids, scores):
                masked = torch.full_like(scores, float("-inf"))
                masked[:, allowed] = scores[:, allowed]
                return masked

        groups: dict[str | None, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[r.adapter].append(i)
        out: list[list[str]] = [[] for _ in requests]
        sample = self.cfg.temperature > 0
        for adapter, idx in groups.items():
            with self._use(adapter), torch.no_grad():
                for b in range(0, len(idx), self.batch_size):
                    chunk = idx[b:b + self.batch_size]
                    enc = self.tokenizer([requests[i].prompt for i in chunk], return_tensors="pt", padding=True).to(self.device)
                    gen = self.model.generate(
                        **enc, max_new_tokens=max(requests[i].max_tokens for i in chunk), do_sample=sample,
                        temperature=self.cfg.temperature if sample else None, top_p=None, top_k=None,
                        num_return_sequences=self.cfg.n, logits_processor=LogitsProcessorList([OnlyGrid()]),
                        pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
                    new = gen[:, enc["input_ids"].shape[1]:]
                    for j, row in enumerate(new.tolist()):
                        i = chunk[j // self.cfg.n]
                        row = row[:requests[i].max_tokens]
                        if self.tokenizer.eos_token_id in row:
                            row = row[:row.index(self.tokenizer.eos_token_id)]
                        out[i].append(self.tokenizer.decode(row, skip_special_tokens=True))
        return out


def _hf_score(self, requests: Sequence[ScoreRequest]) -> list[float]:
    """Sum of completion-token log-probabilities per request: one teacher-forced forward pass
    each, grouped per adapter. The reference the vLLM scorer is checked against."""
    import torch

    groups: dict[str | None, list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        groups[r.adapter].append(i)
    out = [0.0] * len(requests)
    for adapter, idx in groups.items():
        with self._use(adapter), torch.no_grad():
            for i in idx:
                prompt, completion = score_ids(self.tokenizer, requests[i])
                x = torch.tensor([prompt + completion], device=self.device)
                logp = torch.log_softmax(self.model(input_ids=x).logits[0, len(prompt) - 1:-1].float(), dim=-1)
                out[i] = float(logp[torch.arange(len(completion)), x[0, len(prompt):]].sum())
    return out


HfGenerator.score = _hf_score


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
