"""The committed stand-in for BARC's induction model (tests/fixtures/induction-tiny, built by
`tiny-model DIR --preset induction`): HF greedy decoding of its four tasks' BARC-format prompts gives programs
that the sandbox runs; three are right on the test input, the fourth fits every demo and is wrong there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from submission.arc.data import load_challenges, load_solutions
from submission.engines.memorise import greedy
from submission.pipeline.induction_standin import PROGRAMS, SOURCE, answer
from submission.programs.barc import extract_programs, induction_prompt
from submission.programs.sandbox import Sandbox, verify

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "induction-tiny"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(FIXTURE, local_files_only=True)


def test_fixture_is_small_and_says_how_to_rebuild_it():
    assert (FIXTURE / "model.safetensors").stat().st_size <= 3 * 2**20
    rebuild = json.loads((FIXTURE / "rebuild.json").read_text())
    assert rebuild["command"].startswith("python -m submission tiny-model DIR --preset induction")
    assert set(rebuild["tasks"]) == set(PROGRAMS)


def test_tokenizer_covers_the_prompts(tokenizer):
    tasks = load_challenges(SOURCE).tasks
    for tid, (src, _) in PROGRAMS.items():
        prompt = induction_prompt(tasks[tid], tokenizer.apply_chat_template)
        ids = tokenizer(prompt + answer(src), add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, tid
        assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
        assert tokenizer.decode(ids) == prompt + answer(src)


@pytest.mark.parametrize("task_id", list(PROGRAMS))
def test_greedy_answer_is_a_program_that_runs(task_id, tokenizer):
    task = load_challenges(SOURCE).tasks[task_id]
    truth = [np.array(g) for g in load_solutions(SOURCE)[task_id]]
    text = greedy(FIXTURE, induction_prompt(task, tokenizer.apply_chat_template), max_new_tokens=900)
    [program] = extract_programs(text)
    assert program == PROGRAMS[task_id][0]
    with Sandbox() as sandbox:
        result = verify(sandbox, program, task, "induction")
    right = PROGRAMS[task_id][1]
    assert result.verified, (task_id, text)
    assert [o is not None and np.array_equal(o, t) for o, t in zip(result.test_outputs, truth)] == [right], task_id


@pytest.mark.vllm_compat
def test_vllm_serves_it_and_writes_the_same_programs(tokenizer, monkeypatch):
    """vLLM greedy (the engine the induction phase uses) writes the programs HF greedy writes above."""
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams

    tasks = load_challenges(SOURCE).tasks
    prompts = [induction_prompt(tasks[tid], tokenizer.apply_chat_template) for tid in PROGRAMS]
    llm = LLM(model=str(FIXTURE), dtype="float32", max_model_len=4096, enforce_eager=True,
              gpu_memory_utilization=0.1, seed=0)
    outs = llm.generate([{"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts],
                        SamplingParams(temperature=0.0, max_tokens=900))
    assert [extract_programs(o.outputs[0].text) for o in outs] == [[src] for src, _ in PROGRAMS.values()]
