"""`python -m submission run` end to end on the tiny model, with the real engines."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from submission.arc.data import load_challenges, safe_name
from submission.arc.submission_io import validate_submission

from conftest import SMALL_TASKS

FAST = ["--transforms", "2", "--permutations", "2", "--augmentations", "1", "--max-examples", "6",
        "--epochs", "1", "--lora-rank", "8", "--max-new-tokens", "40", "--max-model-len", "2048",
        "--quick-transforms", "1", "--extra-rounds", "0"]
BROKEN = {
    "ragged": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]},
    "colour12": {"train": [{"input": [[1]], "output": [[12]]}], "test": [{"input": [[1]]}]},
    "big31": {"train": [{"input": [[0] * 31] * 31, "output": [[1]]}], "test": [{"input": [[1]]}]},
    "notest": {"train": [{"input": [[1]], "output": [[1]]}], "test": []},
    "../../x": {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]},
}


def run_cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "submission", "run", *args], capture_output=True, text=True,
                          timeout=900, cwd=cwd, env={**__import__("os").environ,
                                                     "PYTHONPATH": str(Path(__file__).parents[1])})


def write_challenges(path, tasks, solutions=None):
    path.write_text(json.dumps(tasks))
    if solutions is not None:
        path.with_name(path.name.replace("_challenges", "_solutions")).write_text(json.dumps(solutions))
    return path


@pytest.mark.parametrize("trainer", ["peft", "unsloth"])
def test_run_end_to_end_with_vllm(tmp_path, tiny_model, trainer):
    """Every phase on vLLM with each trainer. The peft run also selects by PoE (--select poe): candidates
    scored under augmentations with each task's adapter, and the printed score is what `ablate` recomputes
    for the run's rule from the stored predictions and scores (one run serves both)."""
    from submission.pipeline.ablate import ablate

    c = write_challenges(tmp_path / "x_challenges.json", SMALL_TASKS,
                         {"flip": [[[0, 1], [2, 0]]], "recolor": [[[2, 0, 2]], [[0, 2], [2, 2]]]})
    out = tmp_path / "out"
    poe = ["--select", "poe", "--score-augmentations", "4"] if trainer == "peft" else []
    keep = trainer == "unsloth"  # the other run deletes each adapter once its task is answered (the default)
    r = run_cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), "--trainer", trainer,
                 "--engine", "vllm", *FAST, "--extra-rounds", "1", *poe, *(["--keep-adapters"] if keep else [])],
                cwd=tmp_path)  # every phase
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "leaked" not in r.stderr, r.stderr[-2000:]  # every worker released its multiprocessing resources
    sub = json.loads((out / "submission.json").read_text())
    assert validate_submission(sub, load_challenges(c)) == []
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("score: ")
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [x["task_id"] for x in results] == ["flip", "recolor"]
    for rec in results:
        (train,) = rec["train"]
        assert train["trainer"] == trainer and train["steps"] > 0 and "error" not in train
        assert (Path(train["adapter"]) / "adapter_model.safetensors").is_file() == keep
        assert rec["plan"]["prompts"] == 4 * len(rec["tests"]) and rec["plan"]["prompt_tokens"] > 0
        assert rec["outputs"]["main"] == 4 * len(rec["tests"]) and rec["outputs"]["quick"] == len(rec["tests"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["adapters"] == 2 and {"quick", "ttt", "main", "score", "extra"} <= set(summary["times_s"])
    # the extra phase ran to completion: the least certain task got more prompts (with its adapter)
    extra = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    extra = [x for x in extra if x["phase"] == "extra"]
    assert extra and all(rec["outputs"].get("extra", 0) == sum(len(x["grids"]) for x in extra
                                                                if x["task_id"] == rec["task_id"]) for rec in results)
    assert (out / "report.html").is_file()  # written by every run
    if poe:
        scored = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
        assert scored and all(len(lps) == 4 for rec in scored for t in rec["tests"] for _, lps in t)
        with_lp = [c for x in results for t in x["tests"] for c in t["candidates"] if c["logprobs"]]
        assert with_lp and all(len(c["logprobs"]) == 4 for c in with_lp)
        assert ablate(out)["poe"] == pytest.approx(float(lines[-1].split()[1]), abs=1e-4)


def test_broken_tasks_cost_only_themselves(tmp_path, tiny_model):
    c = write_challenges(tmp_path / "c.json", {"flip": SMALL_TASKS["flip"], **BROKEN})
    out = tmp_path / "out"
    before = set(tmp_path.rglob("*"))
    r = run_cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), "--trainer", "peft",
                 "--engine", "hf", *FAST, "--keep-adapters"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    sub = json.loads((out / "submission.json").read_text())
    assert set(sub) == {"flip", *BROKEN} and validate_submission(sub, load_challenges(c)) == []
    for tid in set(BROKEN) - {"../../x"}:  # a hostile id on a valid task is processed, inside OUT
        assert f"quarantined task {tid!r}" in r.stdout
    assert "colour12" in r.stdout and "ragged" in r.stdout
    new = set(tmp_path.rglob("*")) - before
    assert all(p == out or out in p.parents for p in new), [str(p) for p in new if out not in p.parents]
    assert not (tmp_path.parent / "x").exists()
    assert sorted(p.name for p in (out / "adapters").iterdir()) == sorted(["flip", safe_name("../../x")])


def test_file_level_error_is_one_clear_line(tmp_path):
    r = run_cli(["--challenges", str(tmp_path / "missing.json")], cwd=tmp_path)
    assert r.returncode == 2 and "missing.json: file not found" in r.stderr and "Traceback" not in r.stderr


def test_bad_arguments_are_all_reported(tmp_path):
    r = run_cli(["--transforms", "0", "--lora-rank", "0", "--n", "4"], cwd=tmp_path)
    assert r.returncode == 2
    assert "--transforms" in r.stderr and "--lora-rank" in r.stderr and "--n > 1" in r.stderr


def test_all_invalid_or_empty_challenges_still_give_a_valid_submission(tmp_path, tiny_model):
    hostile = {"": BROKEN["ragged"], "x" * 300: BROKEN["notest"], "n": None}
    for name, content in (("bad.json", hostile), ("empty.json", {})):
        c = write_challenges(tmp_path / name, content)
        out = tmp_path / f"out-{name}"
        r = run_cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), "--trainer", "none",
                     "--engine", "hf", *FAST], cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        sub = json.loads((out / "submission.json").read_text())
        assert validate_submission(sub, load_challenges(c)) == [] and set(sub) == set(content)


def test_missing_model_is_one_clear_error_after_the_fallback(tmp_path):
    c = write_challenges(tmp_path / "c.json", {"flip": SMALL_TASKS["flip"]})
    r = run_cli(["--challenges", str(c), "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], cwd=tmp_path)
    assert r.returncode == 2 and "not a local HF model folder" in r.stderr and "Traceback" not in r.stderr
    assert validate_submission(json.loads((tmp_path / "o" / "submission.json").read_text()), load_challenges(c)) == []


def test_prompts_longer_than_the_context_are_skipped_not_fatal(tmp_path, tiny_model):
    big = {"train": [{"input": [[1] * 30] * 30, "output": [[2] * 30] * 30}] * 2, "test": [{"input": [[3] * 30] * 30}]}
    c = write_challenges(tmp_path / "c.json", {"big": big, "flip": SMALL_TASKS["flip"]})
    out = tmp_path / "o"
    args = [a for a in FAST if a not in ("--max-model-len", "2048")]
    r = run_cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), "--trainer", "none",
                 "--engine", "vllm", *args, "--max-model-len", "1024"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "exceed --max-model-len 1024" in r.stdout
    res = {x["task_id"]: x for x in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert res["flip"]["outputs"]["main"] > 0 and "main" not in res["big"]["outputs"]


def test_paper_ablations_through_the_cli(tmp_path, tiny_model):
    """--adapter shared trains one adapter on every task's TTT set (here end-to-end pairs plus MARC's
    augmenters) and every task answers with it; --transform-colors with_d8 colours every non-identity
    prompt."""
    from submission.arc.ttt.data import TTTDataConfig, build_ttt_dataset
    from submission.pipeline.start import load_tokenizer_format

    c = write_challenges(tmp_path / "x_challenges.json", SMALL_TASKS)
    out = tmp_path / "out"
    r = run_cli(["--challenges", str(c), "--model", str(tiny_model), "--out", str(out), "--trainer", "peft",
                 "--engine", "hf", *FAST, "--adapter", "shared", "--ttt-data", "e2e", "--extra-augment-share", "0.5",
                 "--transform-colors", "with_d8"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [t["task_id"] for t in train] == ["flip", "recolor"]
    assert {t["adapter"] for t in train} == {str(out / "adapter_shared")} and all(t["shared_by"] == 2 for t in train)
    cfg = TTTDataConfig(augmentations=1, max_examples=6, ttt_data="e2e", extra_augment_share=0.5)
    tasks = load_challenges(c).tasks
    fmt = load_tokenizer_format(str(tiny_model))[1]
    sets = [build_ttt_dataset(tasks[t], cfg, fmt, seed=i) for i, t in enumerate(["flip", "recolor"])]
    assert train[0]["examples"] == sum(map(len, sets)) > max(map(len, sets))
    assert all(len(e.output_spans) == 1 for s in sets for e in s)
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    main = [p for p in preds if p["phase"] == "main"]
    assert {p["task_id"] for p in main} == {"flip", "recolor"}
    assert all(("+c" in p["transform"]) != p["is_identity"] for p in main)
    assert json.loads((out / "summary.json").read_text())["adapter_answers_landed"] == 2
