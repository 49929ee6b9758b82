"""The unkillable run, on the tiny model with real engines: injected faults walk the fallback
ladder, kill -9 and resume, a deadline, two workers, Kaggle discovery."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from submission.arc.data import load_challenges
from submission.arc.submission_io import validate_submission
from submission.pipeline import kaggle

from conftest import SMALL_TASKS, parsed_answers
from test_run import FAST, run_cli, write_challenges

ROOT = Path(__file__).parents[1]
TASKS = {**SMALL_TASKS,
         "t3": {"train": [{"input": [[3, 0]], "output": [[0, 3]]}, {"input": [[4, 4, 0]], "output": [[0, 4, 4]]}],
                "test": [{"input": [[5, 0]]}]},
         "t4": {"train": [{"input": [[1]], "output": [[1, 1]]}, {"input": [[2]], "output": [[2, 2]]}],
                "test": [{"input": [[3]]}]},
         "t5": {"train": [{"input": [[6, 6]], "output": [[6]]}], "test": [{"input": [[7, 7]]}]}}
HF = [*FAST, "--engine", "hf", "--trainer", "peft", "--quick-transforms", "0"]


def read_jsonl(p):
    return [json.loads(line) for line in p.read_text().splitlines()]


def test_faults_walk_the_ladder_and_the_run_survives(tmp_path, tiny_model, monkeypatch):
    c = write_challenges(tmp_path / "c.json", TASKS)
    out = tmp_path / "out"
    monkeypatch.setenv("ARC_TTT_FAULTS", "flip=raise;recolor=nan;t3=oom;t4=hang;t5=gen_hang")
    r = run_cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), *HF,
                 "--task-timeout", "15", "--chunk-prompts", "1"], cwd=tmp_path)  # the hangs cost 2 x 15 s
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    sub = json.loads((out / "submission.json").read_text())
    assert validate_submission(sub, load_challenges(c)) == [] and set(sub) == set(TASKS)
    train = {}
    for rec in read_jsonl(out / "train.jsonl"):
        train.setdefault(rec["task_id"], []).append(rec)
    want = {"flip": "RuntimeError: injected", "recolor": "NaNLossError", "t3": "out of memory", "t4": "timeout"}
    for tid, err in want.items():
        first, second = train[tid]
        assert first["step"] == "full" and err in first["error"], first
        assert second["step"] == "fewer_demos" and "adapter" in second, second
        assert f"ladder: task {tid!r}: full failed" in r.stdout
    assert "error" not in train["t5"][0]
    assert "engine call" in r.stdout and "'t5'" in r.stdout and "timeout" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ladder_failures"] == {"full": 4}
    outputs = {x["task_id"]: x["outputs"] for x in read_jsonl(out / "results.jsonl")}
    assert all(outputs[t].get("main", 0) >= 4 for t in want) and "main" not in outputs["t5"]  # t5 keeps [[0]]


def test_small_rank_and_no_ttt_steps(tmp_path, tiny_model, monkeypatch):
    c = write_challenges(tmp_path / "c.json", {"flip": TASKS["flip"], "t3": TASKS["t3"]})
    out = tmp_path / "out"
    monkeypatch.setenv("ARC_TTT_FAULTS", "flip=raise*")  # fails at every level
    r = run_cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), *HF], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    steps = [(x["step"], "error" in x) for x in read_jsonl(out / "train.jsonl") if x["task_id"] == "flip"]
    assert steps == [("full", True), ("fewer_demos", True), ("small_rank", True)]
    assert "-> no_ttt" in r.stdout
    res = {x["task_id"]: x for x in read_jsonl(out / "results.jsonl")}
    assert res["flip"]["answer_from"] in ("main", None) and res["flip"]["outputs"]["main"] == 4  # base model answered


def kill_when(proc, path: Path, lines: int, timeout: float = 400) -> None:
    """SIGKILL the run (the parent and its workers at once) when `path` has `lines` lines."""
    t = time.monotonic()
    while time.monotonic() - t < timeout and (not path.exists() or len(path.read_text().splitlines()) < lines):
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_kill_9_during_ttt_then_resume_loses_nothing(tmp_path, tiny_model, engine):
    c = write_challenges(tmp_path / "c.json", TASKS)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "submission", "run", "--challenges", str(c), "--model", str(tiny_model),
            "--out", str(out), *HF, "--engine", engine]
    # each TTT item takes at least 0.5 s: the kill (polled every 0.1 s) lands before the third task is recorded,
    # however fast the machine trains the tiny model (a quiet CI machine once trained all five between two polls)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARC_TTT_FAULTS": "slow_train_s=0.5"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    kill_when(proc, out / "train.jsonl", 2)
    assert not (out / "summary.json").exists()  # really interrupted before it finished
    done_before = [x["task_id"] for x in read_jsonl(out / "train.jsonl") if "adapter" in x]
    assert 2 <= len(done_before) < len(TASKS)
    assert validate_submission(json.loads((out / "submission.json").read_text()), load_challenges(c)) == []

    r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    trained = [x["task_id"] for x in read_jsonl(out / "train.jsonl") if "adapter" in x]
    assert sorted(trained) == sorted(TASKS)  # every task once: nothing finished was recomputed
    assert validate_submission(json.loads((out / "submission.json").read_text()), load_challenges(c)) == []


def test_kill_9_during_inference_then_resume_generates_only_the_rest(tmp_path, tiny_model):
    """Answers are durable per finished prompt: after a kill mid-inference, the resumed run
    generates exactly the prompts that had not finished (the generator's own count)."""
    c = write_challenges(tmp_path / "c.json", TASKS)
    out, count = tmp_path / "out", tmp_path / "generated"
    args = [sys.executable, "-m", "submission", "run", "--challenges", str(c), "--model", str(tiny_model),
            "--out", str(out), *HF, "--trainer", "none", "--chunk-prompts", "64"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARC_TTT_FAULTS": f"slow_request_s=0.4;count={count}"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    kill_when(proc, out / "predictions.jsonl", 5)
    assert not (out / "summary.json").exists()
    before = len(read_jsonl(out / "predictions.jsonl"))
    count.unlink()
    r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = read_jsonl(out / "predictions.jsonl")
    assert 5 <= before < len(recs)
    assert len(count.read_text().splitlines()) == len(recs) - before  # only what had not finished
    assert len({(x["task_id"], x["key"]) for x in recs}) == len(recs)  # each prompt answered exactly once
    assert {x["task_id"] for x in recs} == set(TASKS)
    assert f"({len({x['task_id'] for x in recs[:before]})} with answers from before)" in r.stdout


@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_deadline_mid_inference_keeps_every_finished_prompt(tmp_path, tiny_model, engine):
    """A slow engine and a budget that ends mid-inference: every prompt that finished before the
    deadline is in predictions.jsonl and in the vote, and the run ends inside its budget."""
    from submission.pipeline.context import task_attempts
    from submission.pipeline.state import RunState

    c = write_challenges(tmp_path / "c.json", TASKS)
    out, budget = tmp_path / "o", 35
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARC_TTT_FAULTS": "slow_request_s=4"}  # ~20 prompts: 80 s of work
    r = subprocess.run([sys.executable, "-m", "submission", "run", "--challenges", str(c), "--model", str(tiny_model),
                        "--out", str(out), *HF, "--engine", engine, "--budget", str(budget), "--trainer", "none"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    times = json.loads((out / "summary.json").read_text())["times_s"]
    assert times["total"] <= budget, times  # the run's own clock: every worker stopped, outputs written
    assert "leaked" not in r.stderr, r.stderr[-2000:]  # workers killed mid-call released their semaphores
    recs = read_jsonl(out / "predictions.jsonl")
    assert 0 < len(recs) < 18, "the deadline must fall mid-inference for this test to mean anything"
    assert "interrupted" in r.stdout
    state, sub = RunState.load(out), json.loads((out / "submission.json").read_text())
    tasks = load_challenges(c)
    policy = json.loads((out / "summary.json").read_text())["config"]["run"]["program_policy"]
    for tid in {x["task_id"] for x in recs}:  # the vote (with the stored programs, as the run merges them)
        tests = task_attempts(state, tid, len(tasks.tasks[tid].test), "vote", policy)
        want = [[g.tolist() for g in attempts] if ranked else None for attempts, ranked in tests]
        got = [[a["attempt_1"], a["attempt_2"]] for a in sub[tid]]
        assert all(w is None or w == g for w, g in zip(want, got)), tid  # the vote used every landed answer


def test_deadline_is_kept(tmp_path, tiny_model):
    """On vLLM; HF keeps a deadline in the mid-inference test above (one engine here: CI time). The run's
    own clock says it ended inside its budget (no wall-clock bound that would count interpreter start-up);
    it trained tasks and their adapter answers landed, and killing workers at the deadline left no
    semaphore for the resource tracker to call leaked."""
    budget = 90  # room for a measured vLLM start (~15 s here) before the adapters' answers
    r = run_cli(["--challenges", "arc1-eval", "--limit", "20", "--model", str(tiny_model), "--out", str(tmp_path / "o"),
                 "--budget", str(budget), "--engine", "vllm"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["budget_s"] == budget and summary["times_s"]["total"] <= budget, summary["times_s"]
    assert summary["adapters"] >= 1 and summary["adapter_answers_landed"] == summary["adapters"], summary
    assert "leaked" not in r.stderr, r.stderr[-2000:]
    sub = json.loads((tmp_path / "o" / "submission.json").read_text())
    assert validate_submission(sub, load_challenges("arc1-eval")) == []


def test_two_workers_match_one(tmp_path):
    """On vLLM: the pool is engine-agnostic, and HF's worker runs in the tests above. The trained model,
    so that the runs answer with grids: two all-[[0]] submissions would be equal for no reason."""
    from submission.engines.tiny_model import TRAINED

    c = write_challenges(tmp_path / "c.json", {k: TASKS[k] for k in ("flip", "recolor", "t3")})
    subs = []
    for n in (1, 2):
        out = tmp_path / f"w{n}"
        r = run_cli(["--challenges", str(c), "--model", str(TRAINED), "--out", str(out), *HF,
                     "--workers", str(n), "--chunk-prompts", "4", "--engine", "vllm"], cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"with {n} worker(s)" in r.stdout and "adapters trained: 3, with adapter answers: 3" in r.stdout
        assert parsed_answers(out) > 0
        subs.append(json.loads((out / "submission.json").read_text()))
    assert subs[0] == subs[1]


@pytest.mark.parametrize("layout", ["arc-prize-2024", "arc-prize-2025", "competitions/arc-prize-2026"])
def test_kaggle_discovery_and_placeholder(tmp_path, layout, monkeypatch):
    folder = tmp_path / layout
    folder.mkdir(parents=True)
    (tmp_path / "some-model" / "deep").mkdir(parents=True)
    train = {"aa": SMALL_TASKS["flip"], "bb": SMALL_TASKS["recolor"]}
    (folder / "arc-agi_training_challenges.json").write_text(json.dumps(train))
    (folder / "arc-agi_training_solutions.json").write_text(json.dumps({"aa": [[[0]]], "bb": [[[0]], [[0]]]}))
    (folder / "arc-agi_test_challenges.json").write_text(json.dumps({"aa": SMALL_TASKS["flip"]}))
    files = kaggle.find_competition_files(tmp_path)
    assert files.test == folder / "arc-agi_test_challenges.json"
    assert files.training_solutions == folder / "arc-agi_training_solutions.json"
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    assert kaggle.is_placeholder(files)
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    assert not kaggle.is_placeholder(files)
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN")
    (folder / "arc-agi_test_challenges.json").write_text(json.dumps({"hidden1": SMALL_TASKS["flip"]}))
    assert not kaggle.is_placeholder(files)
    assert kaggle.find_competition_files(tmp_path / "some-model") is None


def test_kaggle_placeholder_run_is_a_checked_smoke_run(tmp_path, tiny_model):
    comp = tmp_path / "input" / "arc-prize-2025"
    comp.mkdir(parents=True)
    train = {k: TASKS[k] for k in ("flip", "t3", "t4")}
    (comp / "arc-agi_training_challenges.json").write_text(json.dumps(train))
    (comp / "arc-agi_training_solutions.json").write_text(json.dumps({"flip": [[[0, 1], [2, 0]]], "t3": [[[0, 5]]],
                                                                      "t4": [[[3, 3]]]}))
    (comp / "arc-agi_test_challenges.json").write_text(json.dumps(train))
    working = tmp_path / "working"
    working.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARC_TTT_KAGGLE_INPUT": str(tmp_path / "input"),
           "ARC_TTT_KAGGLE_WORKING": str(working)}
    env.pop("KAGGLE_IS_COMPETITION_RERUN", None)
    r = subprocess.run([sys.executable, "-m", "submission", "run", "--challenges", "kaggle", "--model", str(tiny_model),
                        "--limit", "2", *HF], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "placeholder test file" in r.stdout and r.stdout.strip().splitlines()[-1].startswith("score: ")
    sub = json.loads((working / "submission.json").read_text())
    assert set(sub) == set(train)


def test_workers_are_pinned_to_the_visible_gpus(monkeypatch):
    """Each worker process sees only its own card of the ones this process may use: one pinned to GPU "0"
    here, or left with the whole "2,3", would share someone else's card."""
    from test_supervisor import make_env_handler

    from submission.pipeline.pool.supervisor import Pool
    from submission.pipeline.start import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setenv("ARC_TTT_STAGGER_S", "0")  # both workers at once: each must take items
    gpus = visible_gpus()
    assert gpus == ["2", "3"]
    seen = {}
    with Pool(make_env_handler, "CUDA_VISIBLE_DEVICES", workers=2, gpus=gpus) as pool:
        for item, res in pool.run([f"i{k}" for k in range(6)], lambda item: 60, time.monotonic() + 300):
            seen[item] = (res.value["pid"], res.value["value"])
    by_pid = {pid: value for pid, value in seen.values()}
    assert len(by_pid) == 2 and sorted(by_pid.values()) == ["2", "3"], seen
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


def test_answer_limit_never_truncates_a_known_arc_answer():
    """Every arc1 train/eval test answer fits its task's limit (so a model that never stops costs
    about twice the answer, not 931 tokens per prompt)."""
    from submission.arc.data import load_challenges, load_solutions
    from submission.arc.text import TextFormat
    from submission.pipeline.budget import answer_limit

    over = []
    for name in ("arc1-train", "arc1-eval"):
        tasks, sols = load_challenges(name), load_solutions(name)
        for tid, task in tasks.tasks.items():
            for i, g in enumerate(sols[tid]):
                need = len(g) * (len(g[0]) + 1) + 1
                limit = answer_limit(task, i, TextFormat())
                assert need <= limit <= 931, (name, tid, i)
                over.append(limit / need)
    assert sorted(over)[len(over) // 2] < 3  # and is not just the cap


def test_profile_scales_to_the_model_size(tiny_model):
    from submission.engines.model_folder import model_params
    from submission.pipeline.budget import PROFILES, for_model

    n = model_params(tiny_model)
    assert 2e5 < n < 4e5  # from the safetensors header: the random tiny model is ~0.3 M
    cpu = PROFILES["cpu"]
    assert for_model(cpu, n) == cpu  # the profile's own size: unchanged
    big = for_model(cpu, 10 * cpu.ref_params)
    assert big.decode_tok_s == cpu.decode_tok_s / 10 and big.ttt_tok_s == cpu.ttt_tok_s / 10
    assert for_model(PROFILES["h100"], 5e8) == PROFILES["h100"]  # never scaled up


def test_cost_model_fits_the_mean_and_plans_with_the_slowest_recent():
    """The fit is the mean over measurements; decisions that lose work when wrong use the slowest
    of the recent ones (a noisy machine must not make TTT eat the inference's time)."""
    from submission.pipeline.budget import PROFILES, CostModel

    cm = CostModel(PROFILES["cpu"])
    cm.observe_infer(10, 40)  # a busy machine: inference at a quarter of the profile's speed...
    assert cm.pessimistic.ttt_tok_s == pytest.approx(PROFILES["cpu"].ttt_tok_s / 4)  # ...TTT assumed slow too
    cm = CostModel(PROFILES["cpu"])
    for predicted, took in ((10, 5), (10, 5), (10, 20), (10, 5)):  # one call 4x slower than the rest
        cm.observe_infer(predicted, took)
    base = PROFILES["cpu"].decode_tok_s
    assert cm.profile.decode_tok_s == pytest.approx(base * 40 / 35)
    assert cm.pessimistic.decode_tok_s == pytest.approx(base * 0.5)
    cm.observe_infer(10, 0.1)  # too short to mean anything
    assert len(cm.infer) == 4
    cm.observe_ttt(1000, 1.0)
    cm.observe_ttt(1000, 4.0)
    assert cm.profile.ttt_tok_s == pytest.approx(400) and cm.pessimistic.ttt_tok_s == pytest.approx(250)


def test_the_slowest_evidence_includes_ttt_slowdowns_and_engine_starts():
    """Before any engine call is measured, TTT's slowdown against the profile is the inference's too; later, a
    TTT slowdown against the run's own mean (the machine got slower) scales the measured inference; the
    slowest engine start seen replaces the profile's. The plan's best guess (`profile`) keeps the means."""
    from submission.pipeline.budget import PROFILES, CostModel

    p = PROFILES["cpu"]
    cm = CostModel(p)
    cm.observe_ttt(int(p.ttt_tok_s * 10), 30.0)  # TTT 3x slower than the profile, no engine call yet
    assert cm.pessimistic.prefill_tok_s == pytest.approx(p.prefill_tok_s / 3)
    assert cm.profile.prefill_tok_s == p.prefill_tok_s
    cm = CostModel(p)
    cm.observe_infer(10, 10)  # inference at the profile's speed
    for took in (10.0,) * 5 + (40.0,) * 5:  # then TTT at a quarter of its earlier speed
        cm.observe_ttt(int(p.ttt_tok_s * 10), took)
    assert cm.pessimistic.prefill_tok_s == pytest.approx(p.prefill_tok_s * (1.5e6 / 200) / (3e6 / 250))
    assert cm.pessimistic.engine_start_s == p.engine_start_s
    assert cm.start_s("gen") == 2 * p.engine_start_s  # no start seen: twice the profile's
    cm.observe_start("train", 42.0)
    cm.observe_start("train", 20.0)
    assert cm.pessimistic.engine_start_s == 42.0 and cm.profile.engine_start_s == p.engine_start_s
    assert cm.start_s("train") == 42.0 and cm.start_s("gen") == 84.0  # a vLLM start is not a trainer's
    cm.observe_start("gen", 30.0)
    assert cm.start_s("gen") == 30.0


def test_a_machine_slower_than_planned_still_answers_every_trained_task(tmp_path, tiny_model, monkeypatch):
    """#25's slow machine, injected on vLLM: every engine start 8 s slower, an engine call 0.5 s per prompt
    before it answers, every TTT task 1 s, under a budget that a profile 100x too fast for inference says
    is ample, with no quick pass to measure inference before TTT. The run measures the starts, probes with
    one prompt per task first, sizes the next calls from it, and keeps an unmeasured vLLM start's time
    before admitting more TTT: every trained task has an answer from its adapter. (The code before this
    test trained all 5 tasks and answered none: one 62-prompt call, cut by the deadline.)"""
    monkeypatch.setenv("ARC_TTT_FAULTS", "slow_load_s=8;slow_batch_s=0.5;slow_train_s=1")
    budget = 80
    c = write_challenges(tmp_path / "c.json", TASKS)
    r = run_cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(tmp_path / "o"), *FAST,
                 "--budget", str(budget), "--engine", "vllm", "--transforms", "8", "--quick-transforms", "0",
                 "--prefill-tok-s", "2000000", "--decode-tok-s", "200000"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["times_s"]["total"] <= budget
    assert min(x for v in summary["measured"]["engine_starts_s"].values() for x in v) >= 8  # seen
    assert summary["adapters"] >= 1 and summary["adapter_answers_landed"] == summary["adapters"], summary
    recs = read_jsonl(tmp_path / "o" / "predictions.jsonl")
    trained = {x["task_id"] for x in read_jsonl(tmp_path / "o" / "train.jsonl") if x["status"] == "ok"}
    assert trained == {x["task_id"] for x in recs if x["phase"] == "main" and x["adapter"]}


def test_the_ttt_cut_off_leaves_room_for_the_trained_tasks_inference():
    """With TTT on: the cut-off moves earlier as tasks get adapters (their inference is owed), and a task
    is admitted only if its own TTT and inference end before it (pessimistic speeds)."""
    from types import SimpleNamespace

    from submission.arc.data import parse_task
    from submission.arc.ttt.data import TTTDataConfig
    from submission.pipeline.budget import PROFILES, CostModel, TaskPlan
    from submission.pipeline.pool.workers import TrainItem
    from submission.pipeline.run import fits, ttt_deadline

    p = PROFILES["cpu"]
    # each task: 100 s of TTT and 50 s of inference at the profile's speeds
    plan = TaskPlan("t", 3, 10, int(100 * p.ttt_tok_s), 8, int(50 * p.prefill_tok_s / 2),
                    int(50 * p.decode_tok_s / 2))
    ids = ["a", "b", "c"]
    trained = set()
    state = SimpleNamespace(adapter=lambda t: f"adapters/{t}" if t in trained else None, has=lambda t, ph: False)
    now = time.monotonic()
    run = SimpleNamespace(deadline=now + 400.0, budget=400.0, costs=CostModel(p), ids=ids, state=state,
                          plans={t: plan for t in ids})
    slack = 2 * p.engine_start_s + 0.05 * 400.0  # no vLLM start seen yet: twice the profile's
    assert abs(ttt_deadline(run) - (now + 400.0 - slack)) < 1e-6  # nothing trained: nothing owed yet
    trained.add("a")
    assert abs(ttt_deadline(run) - (now + 400.0 - 50.0 - slack)) < 1e-6  # a's 50 s of inference are owed
    item = TrainItem(parse_task("b", SMALL_TASKS["flip"]), 0, 0, TTTDataConfig(max_examples=10), None)
    assert fits(run, item)  # 150 s of its own before a cut-off ~330 s away
    trained.add("b")
    run.deadline = now + 260.0  # later in a slower run: 260 - 100 owed - slack < 150 s needed
    assert not fits(run, TrainItem(parse_task("c", SMALL_TASKS["flip"]), 0, 0, TTTDataConfig(max_examples=10),
                                   None))


def test_a_slow_machine_trims_the_first_tasks_ttt_and_plan_prints_both_makespans(tmp_path):
    """#25 item 4. Admission re-plans: when what is left to train no longer fits before the TTT cut-off, the
    task starting now (largest-first: the widest) trains on fewer examples, never under a quarter; with time
    to spare it trains whole. The queue is largest first. `plan` prints the 4-GPU makespan in the given
    order and largest first, and list scheduling gives the textbook answer."""
    from types import SimpleNamespace

    from submission.arc.data import parse_task
    from submission.arc.ttt.data import TTTDataConfig
    from submission.pipeline.budget import PROFILES, CostModel, TaskPlan, makespan
    from submission.pipeline.pool.workers import TrainItem
    from submission.pipeline.run import admit, ttt_todo

    assert makespan([1, 1, 1, 1, 4], 2) == 6 and makespan([4, 1, 1, 1, 1], 2) == 4
    p = PROFILES["cpu"]

    def plan(ttt_s: float) -> TaskPlan:  # 40 TTT examples; inference negligible
        return TaskPlan("t", 3, 40, int(ttt_s * p.ttt_tok_s), 1, 1, 1)

    ids = ["small", "wide", "mid"]
    state = SimpleNamespace(adapter=lambda t: None, has=lambda t, ph: False, next_level=lambda t: 0)
    events = []
    now = time.monotonic()
    slack = 2 * p.engine_start_s + 0.05 * 1000.0
    run = SimpleNamespace(deadline=now + 1000.0, budget=1000.0, costs=CostModel(p), ids=ids, state=state,
                          plans={"small": plan(50), "wide": plan(400), "mid": plan(150)}, workers=1,
                          cfg=SimpleNamespace(order="largest"), log=events.append)
    assert ttt_todo(run) == ["wide", "mid", "small"]
    item = TrainItem(parse_task("wide", SMALL_TASKS["flip"]), 0, 0, TTTDataConfig(max_examples=64), None)
    assert admit(run, item) is item and not events  # 600 s of TTT before a cut-off ~1000 - slack away
    run.deadline = time.monotonic() + 301.0 + slack  # the machine ran slow: ~300 s left for 600 s of work
    trimmed = admit(run, item)
    assert trimmed.ttt.max_examples == 20 and "trimmed to 20 of 40" in events[-1]  # 40 x 300/600
    run.deadline = time.monotonic() + 90.0 + slack  # 90 s for 600: a quarter (100 s) at least, which does not fit
    assert admit(run, item) is None
    run.cfg.order = "file"
    assert ttt_todo(run) == ids
    r = subprocess.run([sys.executable, "-m", "submission", "plan", "--challenges", "arc1-eval", "--limit", "8",
                        "--plan-tasks", "240", "--profile", "l4x4", "--workers", "4", "--preset", "nvarc",
                        "--budget", "43200"], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("makespan on 4 workers"))
    given, largest = (float(x.split(" h")[0].split()[-1]) for x in line.split(", ")[1:3])
    assert largest <= given


def test_kill_9_during_poe_scoring_then_resume_scores_only_the_rest(tmp_path):
    """PoE scores are durable per task: after a kill mid-scoring, the resumed run scores exactly the tasks
    that had no scores, and each task's scores are recorded once. The trained model (its answers parse,
    so every task has candidates to score); no TTT: scoring with the base model is the same path."""
    from submission.engines.tiny_model import TRAINED

    c = write_challenges(tmp_path / "c.json", {k: TASKS[k] for k in ("flip", "recolor", "t3", "t4")})
    out, scored = tmp_path / "out", tmp_path / "scored"
    args = [sys.executable, "-m", "submission", "run", "--challenges", str(c), "--model", str(TRAINED),
            "--out", str(out), *HF, "--trainer", "none", "--transforms", "1", "--permutations", "1",
            "--score-augmentations", "2", "--score-candidates", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARC_TTT_FAULTS": f"slow_score_s=2;score_count={scored}"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    kill_when(proc, out / "scores.jsonl", 1)
    before = {x["task_id"] for x in read_jsonl(out / "scores.jsonl")}
    scored.unlink()
    r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = read_jsonl(out / "scores.jsonl")
    assert 1 <= len(before) < len(recs) and len(recs) == len({x["task_id"] for x in recs})  # each task once
    again = [line.split()[1] for line in scored.read_text().splitlines()]
    assert sorted(again) == sorted({x["task_id"] for x in recs} - before)  # only the rest was scored
