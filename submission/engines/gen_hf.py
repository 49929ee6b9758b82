"""HF generator (transformers + PEFT): the fallback engine and the parity reference for vLLM.
Loads the base once, attaches each task's adapter by name, generates batched per adapter."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Iterator, Sequence

from submission.engines.api import Completion, Decoding, GenRequest, ScoreRequest, SearchRequest
from submission.engines.config import GenerateConfig, pick_device_dtype
from submission.engines.search import Branch, new_search


def by_adapter(requests: Sequence) -> dict[str | None, list[int]]:
    """Request indices grouped by adapter, in first-seen order."""
    groups: dict[str | None, list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        groups[r.adapter].append(i)
    return groups


class HfGenerator:
    name = "hf"

    def __init__(self, model_path: str | Path, cfg: GenerateConfig, decoding: Decoding, batch_size: int = 16):
        from transformers import AutoModelForCausalLM

        self.cfg, self.decoding, self.batch_size = cfg, decoding, batch_size
        self.device, dtype = pick_device_dtype(cfg.dtype)
        self.base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, local_files_only=True,
                                                         trust_remote_code=False, use_safetensors=True).to(self.device)
        self.base.eval()
        self.model = self.base  # becomes a PeftModel once an adapter is loaded
        self._names: dict[str, str] = {}
        self.pad_id = decoding.stop_ids[0]

    def use(self, adapter: str | None):
        """Activate an adapter (loading it once) or the bare base model; a context manager."""
        from peft import PeftModel

        if adapter is None:
            return self.model.disable_adapter() if self.model is not self.base else nullcontext()
        if adapter not in self._names:
            name = f"task{len(self._names) + 1}"
            if self.model is self.base:
                self.model = PeftModel.from_pretrained(self.base, adapter, adapter_name=name, is_trainable=False)
            else:
                self.model.load_adapter(adapter, adapter_name=name, is_trainable=False)
            self._names[adapter] = name
        self.model.set_adapter(self._names[adapter])
        return nullcontext()

    def generate(self, requests: Sequence[GenRequest],
                 until: float = math.inf) -> Iterator[tuple[int, list[Completion]]]:
        """n completions per request, yielded per batch (batched within each adapter); no batch starts
        at or after `until` (time.monotonic())."""
        import torch

        for adapter, idx in by_adapter(requests).items():
            for b in range(0, len(idx), self.batch_size):
                if time.monotonic() >= until:
                    return
                chunk = idx[b:b + self.batch_size]
                with self.use(adapter), torch.no_grad():
                    rows = self._generate_batch([requests[i] for i in chunk])
                for j, i in enumerate(chunk):
                    yield i, rows[j * self.cfg.n:(j + 1) * self.cfg.n]

    def _generate_batch(self, reqs: list[GenRequest]) -> list[Completion]:
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        allowed = torch.tensor(self.decoding.allowed_ids, device=self.device)

        class OnlyAllowed(LogitsProcessor):
            def __call__(self, input_ids, scores):
                masked = torch.full_like(scores, float("-inf"))
                masked[:, allowed] = scores[:, allowed]
                return masked

        width = max(len(r.prompt_ids) for r in reqs)  # left padding
        ids = torch.tensor([[self.pad_id] * (width - len(r.prompt_ids)) + list(r.prompt_ids) for r in reqs],
                           device=self.device)
        mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in reqs],
                            device=self.device)
        sample = self.cfg.temperature > 0
        gen = self.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max(r.max_tokens for r in reqs), do_sample=sample,
            temperature=self.cfg.temperature if sample else None, top_p=None, top_k=None,
            num_return_sequences=self.cfg.n, logits_processor=LogitsProcessorList([OnlyAllowed()]),
            pad_token_id=self.pad_id, eos_token_id=list(self.decoding.stop_ids), output_logits=True,
            return_dict_in_generate=True)
        new = gen.sequences[:, width:]
        logp = torch.stack(gen.logits, dim=1).float().log_softmax(-1)  # raw logits: before the constraint
        out = []
        for j, row in enumerate(new.tolist()):
            limit = reqs[j // self.cfg.n].max_tokens
            row = row[:limit]
            stop = next((k for k, t in enumerate(row) if t in self.decoding.stop_ids), None)
            kept = row if stop is None else row[:stop + 1]
            lp = float(sum(logp[j, k, t] for k, t in enumerate(kept))) if stop is not None else math.nan
            out.append(Completion(tuple(row if stop is None else row[:stop]), lp, stop is not None))
        return out

    def search(self, requests: Sequence[SearchRequest],
               until: float = math.inf) -> Iterator[tuple[int, list[Completion]]]:
        """Threshold search (engines/search.py) in batched rounds per adapter: each round runs every
        queued branch of the adapter's requests as greedy batches from prompt + prefix; a request is
        yielded as soon as nothing of it is queued or running. The reference vLLM's search is tested
        against (with a brute-force enumeration above both)."""
        import torch

        self.search_stats = {"paths": 0, "rounds": 0}
        for adapter, idx in by_adapter(requests).items():
            searches = {i: new_search(requests[i], self.decoding.stop_ids) for i in idx}
            queue = [(i, b) for i in idx for b in searches[i].take()]
            while queue:
                self.search_stats["rounds"] += 1
                nxt = []
                for b0 in range(0, len(queue), self.batch_size):
                    if time.monotonic() >= until:
                        return
                    chunk = queue[b0:b0 + self.batch_size]
                    with self.use(adapter), torch.no_grad():
                        paths = self._greedy_paths([(requests[i], br) for i, br in chunk],
                                                   [searches[i].limit(br) for i, br in chunk])
                    for (i, br), (tokens, steps) in zip(chunk, paths):
                        searches[i].add_path(br, tokens, steps)
                        nxt += [(i, b) for b in searches[i].take()]
                        if searches[i].done:
                            yield i, searches[i].result()
                self.search_stats["paths"] += len(queue)
                queue = nxt

    def _greedy_paths(self, work: list[tuple[SearchRequest, Branch]],
                      prune: list[float | None]) -> list[tuple[list[int], list[dict]]]:
        """Greedy, constrained decoding from prompt + branch prefix, one padded batch: per row its
        tokens (up to and including a stop token, within the request's limit) and per step the raw
        log-probability of every answer token. A row whose log-probability since its branch point
        falls below its `prune` limit (Search.limit; None: never) is stopped there."""
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        allowed, stop_id = list(self.decoding.allowed_ids), self.decoding.stop_ids[0]
        allowed_t = torch.tensor(allowed, device=self.device)
        floors = torch.tensor([-math.inf if x is None else x for x in prune], device=self.device)

        class Prune(LogitsProcessor):  # first in the list: it sees the raw logits
            def __init__(self):
                self.lp, self.prev = torch.zeros_like(floors), None

            def __call__(self, input_ids, scores):
                if self.prev is not None:
                    self.lp = self.lp + self.prev.gather(1, input_ids[:, -1:]).squeeze(1)
                self.prev = scores.float().log_softmax(-1)
                below = self.lp < floors
                scores = scores.clone()
                scores[below] = float("-inf")
                scores[below, stop_id] = 0.0
                return scores

        class OnlyAllowed(LogitsProcessor):
            def __call__(self, input_ids, scores):
                masked = torch.full_like(scores, float("-inf"))
                masked[:, allowed_t] = scores[:, allowed_t]
                return masked

        prompts = [list(r.prompt_ids) + list(b.prefix) for r, b in work]
        limits = [r.max_tokens - len(b.prefix) for r, b in work]
        width = max(map(len, prompts))  # left padding
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        gen = self.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max(limits), do_sample=False, temperature=None,
            top_p=None, top_k=None, logits_processor=LogitsProcessorList([Prune(), OnlyAllowed()]),
            pad_token_id=self.pad_id, eos_token_id=list(self.decoding.stop_ids), output_logits=True,
            return_dict_in_generate=True)
        logp = torch.stack(gen.logits, dim=1).float().log_softmax(-1)[:, :, allowed_t].tolist()  # raw
        out = []
        for j, row in enumerate(gen.sequences[:, width:].tolist()):
            row = row[:limits[j]]
            end = next((k for k, t in enumerate(row) if t in self.decoding.stop_ids), None)
            row = row if end is None else row[:end + 1]
            out.append((row, [dict(zip(allowed, logp[j][k])) for k in range(len(row))]))
        return out

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Sum of completion-token log-probabilities per request: one teacher-forced forward pass
        each, grouped per adapter. The reference the vLLM scorer is checked against."""
        import torch

        out = [0.0] * len(requests)
        for adapter, idx in by_adapter(requests).items():
            with self.use(adapter), torch.no_grad():
                for i in idx:
                    prompt, completion = list(requests[i].prompt_ids), list(requests[i].completion_ids)
                    x = torch.tensor([prompt + completion], device=self.device)
                    logp = torch.log_softmax(self.model(input_ids=x).logits[0, len(prompt) - 1:-1].float(), dim=-1)
                    out[i] = float(logp[torch.arange(len(completion)), x[0, len(prompt):]].sum())
        return out
