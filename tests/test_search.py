"""Threshold search (--search dfs): the pure core against brute force on toy distributions, then
vLLM and HF against a brute-force enumeration on the trained tiny model with TTT adapters, and the
whole pipeline on vLLM."""

import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from submission.arc.data import parse_task
from submission.arc.vote import Prediction, rank
from submission.engines.api import GenRequest, ScoreRequest, SearchRequest, TrainExample
from submission.engines.config import GenerateConfig, TrainConfig
from submission.engines.search import Search

from conftest import SMALL_TASKS

ROOT = Path(__file__).parents[1]
TOL = 1e-4  # log-probabilities: engines vs the reference; and the margin around a threshold

# -- the pure core on toy distributions -------------------------------------------------------------
STOP, VOCAB = 0, 4  # token 0 ends an answer; token VOCAB stands for mass outside the answer vocabulary


def toy_step(seed: int, prefix: tuple, flat: bool = False) -> dict[int, float]:
    """A deterministic next-token distribution over the answer vocabulary (raw: some mass leaks)."""
    rng = random.Random(hash((seed, *prefix)))
    logits = [0.0 if flat else rng.gauss(0, 2.5) for _ in range(VOCAB + 1)]
    z = math.log(sum(math.exp(x) for x in logits))
    return {t: logits[t] - z for t in range(VOCAB)}


def toy_path(seed: int, prefix: tuple, max_tokens: int, limit: float | None, flat: bool = False):
    """Greedy from a prefix, as an engine does: stop token, length limit, or a forced stop once the
    path fell below its prune limit (which the walk must not read as an answer)."""
    tokens, steps, lp = list(prefix), [], 0.0
    while len(tokens) < max_tokens and (len(tokens) == len(prefix) or tokens[-1] != STOP):
        steps.append(toy_step(seed, tuple(tokens), flat))
        forced = limit is not None and lp < limit
        tokens.append(STOP if forced else max(steps[-1], key=steps[-1].get))
        lp += steps[-1][tokens[-1]]
    return tokens[len(prefix):], steps


def toy_search(seed: int, p: float, cap: int, max_tokens: int, flat: bool = False, prune: bool = True) -> Search:
    """Drive Search as the engines do, in rounds, with greedy paths from the toy model."""
    s = Search(p, cap, max_tokens, frozenset({STOP}))
    s.decoded = 0  # tokens the toy engine generated: what pruning saves
    queue = s.take()
    while queue:
        nxt = []
        for b in queue:
            tokens, steps = toy_path(seed, b.prefix, max_tokens, s.limit(b) if prune else None, flat)
            s.add_path(b, tokens, steps)
            s.decoded += len(tokens)
            nxt += s.take()
        queue = nxt
    assert s.done
    return s


def toy_greedy(seed: int, max_tokens: int, flat: bool = False) -> dict[tuple, float]:
    """Plain greedy decoding's answer with its log-probability ({} if it never stops)."""
    tokens, steps = toy_path(seed, (), max_tokens, None, flat)
    lp = sum(step[t] for step, t in zip(steps, tokens))
    return {tuple(tokens[:-1]): lp} if tokens[-1] == STOP else {}


def toy_brute_force(seed: int, p: float, max_tokens: int, flat: bool = False) -> dict[tuple, float]:
    """Every answer with probability >= p, by enumerating every prefix that can still reach p."""
    out, stack = {}, [((), 0.0)]
    while stack:
        prefix, lp = stack.pop()
        for t, step_lp in toy_step(seed, prefix, flat).items():
            if lp + step_lp < math.log(p):
                continue
            if t == STOP:
                out[prefix] = lp + step_lp
            elif len(prefix) + 1 < max_tokens:
                stack.append(((*prefix, t), lp + step_lp))
    return out


@pytest.mark.parametrize("prune", [True, False])
@pytest.mark.parametrize("p", [0.01, 0.05, 0.1, 0.3])
def test_search_finds_exactly_the_answers_above_p_and_greedy(p, prune):
    found_any = below = 0
    for seed in range(60):
        s = toy_search(seed, p, cap=1000, max_tokens=7, prune=prune)
        want = {**toy_brute_force(seed, p, 7), **toy_greedy(seed, 7)}
        got = {c.token_ids: c.logprob for c in s.result()}
        assert got.keys() == want.keys(), seed
        assert all(abs(got[k] - want[k]) < 1e-9 for k in got)
        assert [c.logprob for c in s.result()] == sorted(got.values(), reverse=True)
        assert s.paths <= int(1 / p)  # the work bound: at most 1/P greedy paths
        found_any += len(got) > 1
        below += any(v < math.log(p) for v in got.values())  # greedy's answer kept below P
    assert found_any >= (1 if p > 0.2 else 5) and below  # the toy model has several answers, some < P


def test_pruning_decodes_less_and_finds_the_same():
    saved = 0
    for seed in range(40):
        pruned, full = toy_search(seed, 0.05, 1000, 12), toy_search(seed, 0.05, 1000, 12, prune=False)
        assert pruned.result() == full.result() and pruned.decoded <= full.decoded
        saved += full.decoded - pruned.decoded
    assert saved > 0


def test_the_cap_keeps_exactly_the_most_probable_answers():
    for seed in range(60):
        pool = {**toy_brute_force(seed, 0.01, 7), **toy_greedy(seed, 7)}
        want = sorted(pool.items(), key=lambda kv: -kv[1])[:3]
        got = toy_search(seed, 0.01, cap=3, max_tokens=7).result()
        assert [(c.token_ids, c.logprob) for c in got] == want


def test_a_flat_distribution_stops_at_the_cap():
    """Uniform over 5 tokens, P = 0.002: 1 + 3 + 9 = 13 answers clear P; the cap returns 4 and the
    work stays under 1/P paths."""
    assert len(toy_brute_force(0, 0.002, 9, flat=True)) == 13
    s = toy_search(0, 0.002, cap=4, max_tokens=9, flat=True)
    got = s.result()
    assert len(got) == 4 and got[0].token_ids == () and all(len(c.token_ids) == 1 for c in got[1:])
    assert s.paths <= 500


def test_a_stop_token_branch_is_an_answer_without_a_path():
    s = Search(0.1, 8, 5, frozenset({STOP}))
    (root,) = s.take()
    s.add_path(root, [2, STOP], [{2: math.log(0.6), STOP: math.log(0.3)}, {STOP: math.log(0.9), 1: math.log(0.05)}])
    assert s.take() == [] and s.done
    assert {c.token_ids: round(math.exp(c.logprob), 6) for c in s.result()} == {(2,): 0.54, (): 0.3}


def test_search_core_imports_without_torch():
    code = ("import sys\nfor m in ('torch', 'vllm', 'transformers', 'peft', 'unsloth'): sys.modules[m] = None\n"
            "import submission.engines.search, submission.arc.vote")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_search_settings_are_checked_up_front():
    from submission.pipeline.config import SearchConfig

    assert SearchConfig(search="dfs", min_prob=0.1).problems(GenerateConfig()) == []
    assert SearchConfig(search="sample").problems(GenerateConfig(temperature=0.7, n=4)) == []
    bad = SearchConfig(search="dfs", min_prob=0.0, max_candidates=0).problems(GenerateConfig(temperature=0.5))
    assert any("--min-prob" in p for p in bad) and any("--max-candidates" in p for p in bad)
    assert any("--search sample" in p for p in bad)  # a temperature only means something when sampling
    assert any("--temperature > 0" in p for p in SearchConfig(search="sample").problems(GenerateConfig()))
    assert any("'beam'" in p for p in SearchConfig(search="beam").problems())


def test_a_dfs_plan_owes_more_inference_and_moves_the_ttt_cut_off():
    """plan_task is given the search's expected paths: a dfs run plans its TTT knowing what the search costs."""
    import math
    from types import SimpleNamespace

    from submission.arc.data import load_challenges
    from submission.pipeline.budget import PROFILES, CostModel
    from submission.pipeline.config import resolve
    from submission.pipeline.presets import preset_format
    from submission.pipeline.run import ttt_deadline
    from submission.pipeline.start import plan_tasks

    tasks = load_challenges("arc1-eval")
    ids = tasks.ids[:3]
    fmt = preset_format("compact", "</s>")
    seeds = {t: i for i, t in enumerate(ids)}
    greedy = plan_tasks(resolve({}), tasks, ids, fmt, seeds)
    dfs = plan_tasks(resolve({"search": "dfs", "min_prob": 0.05}), tasks, ids, fmt, seeds)
    p = PROFILES["cpu"]
    assert all(dfs[t].infer_s(p) > greedy[t].infer_s(p) for t in ids)
    assert all(dfs[t].ttt_s(p) == greedy[t].ttt_s(p) for t in ids)  # the search costs inference, not training

    class Trained:  # every task has an adapter and owes its main inference
        def adapter(self, tid):
            return f"adapters/{tid}"

        def has(self, tid, phase):
            return False

    def cut_off(plans):
        run = SimpleNamespace(deadline=10_000.0, budget=10_000.0, costs=CostModel(p), ids=ids, plans=plans,
                              state=Trained())
        return ttt_deadline(run)

    assert cut_off(dfs) < cut_off(greedy) < math.inf


def test_cost_model_knows_dfs_paths():
    from submission.pipeline.budget import PROFILES, expected_paths, request_seconds, worst_paths

    assert expected_paths("greedy", 0.1) == expected_paths("sample", 0.01) == 1.0
    assert 1.0 < expected_paths("dfs", 0.2) < expected_paths("dfs", 0.1) < expected_paths("dfs", 0.05) <= 20
    assert worst_paths(SearchRequest((1,), None, 30, 0.1, 8)) == 10 and worst_paths(GenRequest((1,), None, 30)) == 1
    cpu = PROFILES["cpu"]
    assert request_seconds(500, 50, cpu, expected_paths("dfs", 0.1)) > request_seconds(500, 50, cpu)


def test_nvarc_rule_is_count_plus_mean_augmented_logprob():
    from submission.arc.grid import grid_key

    a, b, c = (np.array(g, dtype=np.int8) for g in ([[1]], [[2]], [[3]]))
    preds = [Prediction(a, "t0")] * 3 + [Prediction(b, "t1")] * 2 + [Prediction(c, "t2")] * 4
    scores = {grid_key(a): [-0.5, -1.5], grid_key(b): [-0.1, -0.1]}  # a: 3 - 1 = 2; b: 2 - 0.1 = 1.9
    ranked = rank(preds, "nvarc", scores)
    assert [int(x.grid[0, 0]) for x in ranked] == [1, 2, 3]  # unscored c comes after the scored ones
    assert [int(x.grid[0, 0]) for x in rank(preds, "nvarc")] == [3, 1, 2]  # no scores: the flat count


# -- engines on the trained tiny model ---------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    from submission.engines.tiny_model import TRAINED

    if not (TRAINED / "model.safetensors").is_file():
        pytest.skip("the trained tiny model (models/arc-tiny) is not in this checkout")
    return str(TRAINED)


@pytest.fixture(scope="module")
def setup(model, tmp_path_factory):
    """Tokenizer, format, decoding, and one TTT adapter per small task (the model's own TTT recipe)."""
    from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset
    from submission.engines.train_peft import PeftTrainer
    from submission.pipeline.start import load_tokenizer_format

    tok, fmt, dec = load_tokenizer_format(model)
    cfg = TrainConfig(lora_rank=8, epochs=3, learning_rate=1e-3, batch_size=2)
    trainer, out, adapters = PeftTrainer(model, cfg), tmp_path_factory.mktemp("adapters"), {}
    for tid in SMALL_TASKS:
        task = parse_task(tid, SMALL_TASKS[tid])
        exs = [TrainExample(e.text, e.loss_spans("all_but_first"))
               for e in build_ttt_dataset(task, TTTDataConfig(augmentations=8, max_examples=32), fmt)]
        adapters[tid] = trainer.train(exs, out / tid, cfg, 0).adapter
    return tok, fmt, dec, adapters


def prompts(setup, p: float, cap: int = 1000, base: bool = True) -> list[SearchRequest]:
    """Two augmented prompts per test input of each small task, with its adapter (and the base)."""
    from submission.arc.prompts import build_prompts

    tok, fmt, _, adapters = setup
    out = []
    for tid in SMALL_TASKS:
        texts = [q.text for q in build_prompts(parse_task(tid, SMALL_TASKS[tid]), 2, 1, fmt)]
        for ids in tok(texts)["input_ids"]:
            out += [SearchRequest(tuple(ids), a, 24, p, cap) for a in (adapters[tid], None)[:2 if base else 1]]
    return out


@pytest.fixture(scope="module")
def hf(model, setup):
    from submission.engines.gen_hf import HfGenerator

    return HfGenerator(model, GenerateConfig(), setup[2], batch_size=8)


@pytest.fixture(scope="module")
def vllm(model, setup):
    from submission.engines.gen_vllm import VllmGenerator

    return VllmGenerator(model, GenerateConfig(max_model_len=2048, max_loras=2), setup[2], max_lora_rank=8)


def brute_force(hf, req: SearchRequest, dec, renormalise: bool = False) -> dict[tuple, float]:
    """Every answer with probability >= P, by scoring every prefix that can still reach P with a full
    forward pass (no greedy paths, no search): the reference. renormalise: over the answer vocabulary."""
    import torch

    allowed, floor, found, level = list(dec.allowed_ids), math.log(req.min_prob), {}, [((), 0.0)]
    with hf.use(req.adapter), torch.no_grad():
        while level:  # one length per level: no padding
            x = torch.tensor([list(req.prompt_ids) + list(prefix) for prefix, _ in level])
            logp = hf.model(input_ids=x).logits[:, -1].float().log_softmax(-1)[:, allowed]
            if renormalise:
                logp = logp - logp.logsumexp(-1, keepdim=True)
            nxt = []
            for (prefix, lp), row in zip(level, logp.tolist()):
                for t, step_lp in zip(allowed, row):
                    if lp + step_lp >= floor and t in dec.stop_ids:
                        found[prefix] = lp + step_lp
                    elif lp + step_lp >= floor and len(prefix) + 1 < req.max_tokens:
                        nxt.append(((*prefix, t), lp + step_lp))
            level = nxt
    return found


def assert_same_answers(got: dict, want: dict, floor: float) -> None:
    """Equal sets and log-probabilities, except answers within TOL of the threshold (rounding)."""
    clear = lambda d: {k for k, v in d.items() if abs(v - floor) > TOL}  # noqa: E731
    assert clear(got) == clear(want) and clear(got) <= want.keys() and clear(want) <= got.keys()
    assert all(abs(got[k] - want[k]) < TOL for k in got.keys() & want.keys())


@pytest.mark.vllm_compat
@pytest.mark.parametrize("engine", ["vllm", "hf"])
def test_search_equals_brute_force_plus_the_greedy_answer(engine, request, hf, setup):
    gen, dec = request.getfixturevalue(engine), setup[2]
    several = 0
    for p in (0.02, 0.05, 0.2):
        reqs = prompts(setup, p)
        got = dict(gen.search(reqs))
        assert sorted(got) == list(range(len(reqs)))  # every request answered exactly once
        greedy = dict(gen.generate([GenRequest(r.prompt_ids, r.adapter, r.max_tokens) for r in reqs]))
        for i, r in enumerate(reqs):
            answers = {c.token_ids: c.logprob for c in got[i]}
            (g,) = greedy[i]
            stopped = {g.token_ids: g.logprob} if not math.isnan(g.logprob) else {}
            assert_same_answers(answers, {**brute_force(hf, r, dec), **stopped}, math.log(p))
            assert [c.logprob for c in got[i]] == sorted(answers.values(), reverse=True)
            if stopped:  # greedy decoding's answer is always a candidate, above P or not
                assert abs(answers[g.token_ids] - g.logprob) < TOL
            several += len(answers) >= 2 and any(answers)
    assert several >= 3  # the test has teeth: prompts with several non-empty answers above P


@pytest.mark.vllm_compat
@pytest.mark.parametrize("engine", ["vllm", "hf"])
def test_mixed_adapters_and_base_in_one_search_equal_separate_runs(engine, request, setup):
    gen = request.getfixturevalue(engine)
    reqs = prompts(setup, 0.05)
    together = dict(gen.search(reqs))
    groups = {}
    for i, r in enumerate(reqs):
        groups.setdefault(r.adapter, []).append(i)
    for idx in groups.values():
        alone = dict(gen.search([reqs[i] for i in idx]))
        for k, i in enumerate(idx):
            assert [c.token_ids for c in alone[k]] == [c.token_ids for c in together[i]]
            assert np.allclose([c.logprob for c in alone[k]], [c.logprob for c in together[i]], atol=TOL)
    tuned = [together[i] for i in groups[setup[3]["flip"]]]
    base = [together[i + 1] for i in groups[setup[3]["flip"]]]
    assert tuned != base  # the adapter is applied in the search


def test_logprobs_are_raw_softmax_not_renormalised(hf, setup):
    """A candidate's log-probability is the model's full softmax (what PoE scoring sums, stop token
    included), which is <= the one renormalised over the answer vocabulary; so raw thresholds keep
    a subset of the renormalised candidates."""
    dec = setup[2]
    reqs = prompts(setup, 0.05, base=False)
    got = dict(hf.search(reqs))
    scored = hf.score([ScoreRequest(r.prompt_ids, c.token_ids + dec.stop_ids[:1], r.adapter)
                       for i, r in enumerate(reqs) for c in got[i]])
    flat = [c.logprob for i in range(len(reqs)) for c in got[i]]
    assert flat and np.allclose(flat, scored, atol=TOL)
    for i, r in enumerate(reqs):
        renorm = brute_force(hf, r, dec, renormalise=True)
        for c in got[i]:
            if c.logprob >= math.log(0.05):  # greedy's answer may be below P; the others are not
                assert c.token_ids in renorm and c.logprob <= renorm[c.token_ids] + TOL  # float32 sums


@pytest.mark.vllm_compat
@pytest.mark.parametrize("engine", ["vllm", "hf"])
def test_an_answer_cut_at_its_token_limit_is_no_answer(engine, request, setup):
    """Greedy answers cut after their first row by the token limit: the cut text still parses as a
    grid (the hazard), but the engine marks it unstopped and the pipeline keeps no grid from it, as
    the threshold search keeps only completions that stop."""
    from submission.pipeline.infer import answer_grid

    gen, (tok, fmt, _, _) = request.getfixturevalue(engine), setup
    reqs = [GenRequest(r.prompt_ids, r.adapter, r.max_tokens) for r in prompts(setup, 0.1)]
    full = {i: c for i, (c,) in gen.generate(reqs)}
    newline = {t for i in full for t in full[i].token_ids if tok.decode([t]) == "\n"}
    rows = {i: next(k for k, t in enumerate(c.token_ids) if t in newline) + 1 for i, c in full.items()
            if answer_grid(fmt, tok, c) is not None and newline & set(c.token_ids[:-2])}  # a row, then more
    assert rows and all(full[i].stopped and not math.isnan(full[i].logprob) for i in rows)
    cut = {i: c for i, (c,) in gen.generate([GenRequest(reqs[i].prompt_ids, reqs[i].adapter, rows[i])
                                             for i in rows])}
    hazards = 0
    for k, i in enumerate(rows):
        c = cut[k]
        assert not c.stopped and math.isnan(c.logprob) and c.token_ids == full[i].token_ids[:rows[i]]
        hazards += fmt.parse(tok.decode(list(c.token_ids), skip_special_tokens=False)) is not None
        assert answer_grid(fmt, tok, c) is None
    assert hazards  # the test has teeth: some cut texts parse


@pytest.fixture(scope="module")
def flat_model(tiny_model, tmp_path_factory):
    """The tiny model with a zero output layer: every token equally likely (1/18) at every step."""
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("flat") / "model"
    shutil.copytree(tiny_model, out)
    weights = load_file(out / "model.safetensors")
    weights["lm_head.weight"].zero_()
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return str(out)


@pytest.mark.vllm_compat
@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_flat_answer_distribution_hits_the_cap_not_a_hang(engine, flat_model):
    """P = 0.002: the empty answer (1/18) and 11 one-token answers (1/324) clear it; the cap is 8."""
    from submission.pipeline.start import load_tokenizer_format

    tok, _, dec = load_tokenizer_format(flat_model)
    if engine == "hf":
        from submission.engines.gen_hf import HfGenerator

        gen = HfGenerator(flat_model, GenerateConfig(), dec, batch_size=16)
    else:
        from submission.engines.gen_vllm import VllmGenerator

        gen = VllmGenerator(flat_model, GenerateConfig(max_model_len=2048, max_loras=1), dec, max_lora_rank=8)
    req = SearchRequest(tuple(tok("I\n12\nO\n")["input_ids"]), None, 30, 0.002, 8)
    ((i, got),) = list(gen.search([req]))
    assert i == 0 and len(got) == 8
    assert got[0].token_ids == () and abs(got[0].logprob + math.log(18)) < TOL
    assert all(len(c.token_ids) == 1 and abs(c.logprob + 2 * math.log(18)) < TOL for c in got[1:])
    assert gen.search_stats["paths"] <= 500  # <= 1/P: bounded work whatever the model


# -- the whole pipeline -------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_search_dfs_end_to_end_on_vllm(tmp_path, model):
    """`run --search dfs --min-prob 0.1` on vLLM with TTT: several answers per prompt, each with its
    log-probability (>= log 0.1 but greedy's), the run's nvarc score is what ablate recomputes,
    oracle >= all."""
    from submission.pipeline.ablate import ablate

    c = tmp_path / "x_challenges.json"
    c.write_text(json.dumps(SMALL_TASKS))
    (tmp_path / "x_solutions.json").write_text(json.dumps({"flip": [[[0, 1], [2, 0]]],
                                                           "recolor": [[[2, 0, 2]], [[0, 2], [2, 2]]]}))
    out = tmp_path / "out"
    args = ["--challenges", str(c), "--model", model, "--out", str(out), "--trainer", "peft", "--engine", "vllm",
            "--search", "dfs", "--min-prob", "0.1", "--select", "nvarc", "--score-augmentations", "2",
            "--transforms", "2", "--permutations", "2", "--max-model-len", "2048", "--quick-transforms", "1",
            "--extra-rounds", "0"]  # the model's own TTT recipe (arc_ttt.json): weaker TTT answers "" at p > 0.5
    r = subprocess.run([sys.executable, "-m", "submission", "run", *args], capture_output=True, text=True,
                       timeout=900, cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    recs = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    main = [x for x in recs if x["phase"] == "main"]
    assert len(main) == 4 * 3  # every prompt of the TTT pass finished
    lps = [lp for x in recs for lp in x["logprobs"]]
    assert lps and None not in lps  # every answer carries its log-probability
    assert all(sum(lp < math.log(0.1) - TOL for lp in x["logprobs"]) <= 1 for x in recs)  # only greedy's < P
    assert any(len(x["grids"]) >= 2 for x in recs)  # more than one answer per prompt somewhere
    scores = ablate(out)
    assert {"nvarc", "oracle"} <= scores.keys() and scores["oracle"] >= max(scores.values()) - 1e-9
    assert scores["nvarc"] == pytest.approx(float(r.stdout.strip().splitlines()[-1].split()[1]), abs=1e-4)
