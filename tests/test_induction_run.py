"""The induction phase end to end on CPU: the stand-in induction model (tests/fixtures/induction-tiny) served by
vLLM writes programs, the sandbox runs them, the merge uses them, and a resumed run samples nothing again."""

import json
from pathlib import Path

import numpy as np

from submission.arc.data import load_challenges, load_solutions, solutions_for
from submission.arc.submission_io import validate_submission

from test_run import run_cli, write_challenges

STANDIN = Path(__file__).parent / "fixtures" / "induction-tiny"
RIGHT, WRONG = ("6150a2bd", "74dd1130", "d511f180"), "aabf363d"  # what the stand-in was trained to write


def test_induction_programs_from_a_served_model_answer_tasks_through_the_sandbox(tmp_path):
    tasks = load_challenges("arc1-train")
    truth = load_solutions(solutions_for("arc1-train"))
    ids = [*RIGHT, WRONG]
    c = write_challenges(tmp_path / "i_challenges.json", {t: tasks.raw[t] for t in ids},
                         {t: truth[t] for t in ids})
    out = tmp_path / "out"
    args = ["--challenges", str(c), "--out", str(out), "--engine", "vllm", "--trainer", "none", "--transforms", "1",
            "--permutations", "1", "--quick-transforms", "0", "--extra-rounds", "0", "--score-augmentations", "0",
            "--max-new-tokens", "24", "--max-model-len", "2048", "--induction-model", str(STANDIN),
            "--induction-samples", "1", "--induction-temperature", "0", "--induction-max-tokens", "700"]
    r = run_cli(args, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"induction: 4 tasks x 1 samples from {STANDIN}: ~" in r.stdout  # its plan, then what it does
    assert "for 4 tasks on 1 engine(s), run in the sandbox (1 at once) as they arrive" in r.stdout
    sub = json.loads((out / "submission.json").read_text())
    assert validate_submission(sub, load_challenges(c)) == []
    records = [json.loads(x) for x in (out / "programs.jsonl").read_text().splitlines()]
    induced = {x["task_id"]: x for x in records if x.get("origin") == "induction"}
    assert set(induced) == set(ids)
    for tid in ids:  # one greedy sample each, parsed, run on the demos in the sandbox, every one fits them
        assert {k: induced[tid][k] for k in ("samples", "parsed", "distinct", "verified")} == dict(
            samples=1, parsed=1, distinct=1, verified=1), induced[tid]
        program = induced[tid]["programs"][0]
        assert program["origin"] == "induction" and "def transform" in program["source"]
        right = np.array_equal(np.array(program["test_outputs"][0]), np.array(truth[tid][0]))
        assert right == (tid != WRONG), tid
    for tid in RIGHT:  # a right program's answer is in the submission (the tiny model alone misses these)
        assert any(a == truth[tid][0] for a in sub[tid][0].values()), tid
    summary = json.loads((out / "summary.json").read_text())
    assert summary["programs"]["induction"] == {"samples": 4, "parsed": 4, "distinct": 4, "verified": 4, "tasks": 4}
    assert summary["programs"]["sandbox"]["seccomp"] == "active"
    assert summary["programs"]["sandbox"]["ast"] == summary["programs"]["sandbox"]["audit"] == "active"
    from submission.pipeline.ablate import ablate_programs

    alone = ablate_programs(out)["induction alone"]  # the stand-in's programs without transduction: 3 of 4 right
    assert alone["score"] == 0.75 and sorted(alone["gained"]) == sorted(RIGHT) and alone["lost"] == []
    again = run_cli(args, cwd=tmp_path)  # resume: every task was induced, nothing is sampled again
    assert again.returncode == 0, again.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "programs.jsonl").read_text().splitlines()]
    assert [x["task_id"] for x in lines if x.get("origin") == "induction"] == list(induced)
    assert "induction: " not in again.stdout
